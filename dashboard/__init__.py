"""Dash app over the warehouse: spread map and synthetic-control study."""
