"""The bottom floor: the source schema, the warehouse model, database engines, redaction and the shared errors.

Storage (``etl_pipeline.resources``), assets, transforms and the dashboard may all import it; it imports no other
part of ``etl_pipeline`` (an import-linter contract in ``pyproject.toml`` keeps it so).
"""
