"""The source tables as SQLAlchemy tables: the allow-list of names and the typed columns of the source schema."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from etl_pipeline.core.source_schema import MAX_TEXT_LENGTH, SOURCE_TABLES, TableSchema

_SQL_TYPES = {"str": sa.String(MAX_TEXT_LENGTH), "int": sa.BigInteger(), "float": sa.Double(), "date": sa.Date()}


def sql_table(schema: TableSchema, name: str | None = None, metadata: sa.MetaData | None = None) -> sa.Table:
    """The SQLAlchemy table for a source schema (optionally under another name, e.g. a staging table)."""
    return sa.Table(
        name or schema.name,
        metadata or sa.MetaData(),
        *[
            sa.Column(c.name, _SQL_TYPES[c.type], nullable=c.nullable, primary_key=c.name in schema.primary_key)
            for c in schema.columns
        ],
        mysql_engine="InnoDB",
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",  # keys compare exactly, as in the CSV ("Brunei" != "brunei")
    )


def table_schema(name: str) -> TableSchema:
    """The schema of a source table, refusing any name outside the fixed allow-list."""
    try:
        return SOURCE_TABLES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a source table (expected one of {sorted(SOURCE_TABLES)})") from None


def in_schema_order(schema: TableSchema, frame: pd.DataFrame | pa.Table) -> pd.DataFrame | pa.Table:
    """The frame's (or Arrow table's) columns in the schema's order; any other set of columns is refused before a
    name reaches SQL."""
    names = frame.column_names if isinstance(frame, pa.Table) else list(map(str, frame.columns))
    if sorted(names) != sorted(schema.column_names):
        raise ValueError(f"the columns {names} are not those of source table {schema.name} ({schema.column_names})")
    return frame.select(schema.column_names) if isinstance(frame, pa.Table) else frame[schema.column_names]
