"""IO managers and resources: one storage rule per module."""
