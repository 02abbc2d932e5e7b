"""The SQL text of a warehouse load, built from the warehouse model (pure: no database, no driver).

Identifiers come only from :mod:`etl_pipeline.core.warehouse_model` and are always double-quoted; the same text
runs on PostgreSQL and SQLite, except the column types and the NULL-safe inequality operator, which the caller
(the backend) passes in.
"""

from __future__ import annotations

from collections.abc import Iterable

from etl_pipeline.core.warehouse_model import WarehouseTable


def quote(name: str) -> str:
    """A double-quoted SQL identifier (PostgreSQL and SQLite); names come from the warehouse model only."""
    return '"' + name.replace('"', '""') + '"'


def quoted_list(names: Iterable[str], prefix: str = "") -> str:
    """``"a", "b"``; each name after ``prefix`` (e.g. a table name and a dot)."""
    return ", ".join(prefix + quote(n) for n in names)


def _keys_match(table: WarehouseTable, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in table.primary_key)


def one_line(text: str) -> str:
    """``text`` with its runs of whitespace (line breaks included) as single spaces: a ``--`` comment's body."""
    return " ".join(text.split())


def column_definitions(table: WarehouseTable, types: dict[str, str], comments: bool = False,
                       primary_key: bool = True) -> str:
    """The body of ``CREATE TABLE``: typed columns, NOT NULL, the primary key (unless not ``primary_key``);
    optionally ``--`` comments per line."""
    definitions = [f"{quote(c.name)} {types[c.type]}{'' if c.nullable else ' NOT NULL'}" for c in table.columns]
    notes = [f"  -- {one_line(c.comment)}" if comments else "" for c in table.columns]
    if primary_key:
        definitions.append(f"PRIMARY KEY ({quoted_list(table.primary_key)})")
        notes.append("")
    lines = [f"{d}{',' if i < len(definitions) - 1 else ''}{n}" for i, (d, n) in enumerate(zip(definitions, notes))]
    return "\n  ".join(["", *lines]) + "\n"


def index_statements(table: WarehouseTable) -> list[str]:
    return [f"CREATE INDEX IF NOT EXISTS {quote('ix_' + table.name + '__' + '_'.join(columns))} "
            f"ON {quote(table.name)} ({quoted_list(columns)})" for columns in table.indexes]


def new_rows_sql(table: WarehouseTable, stage: str) -> str:
    """Count of staged rows whose key is not in the table yet."""
    target = quote(table.name)
    return (f"SELECT count(*) FROM {stage} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {_keys_match(table, target, stage)})")


def upsert_sql(table: WarehouseTable, stage: str, distinct: str) -> str:
    """Insert new rows, update rows where some value differs (``distinct``: the NULL-safe inequality operator).

    ``WHERE true`` is what SQLite needs to parse ``INSERT ... SELECT ... ON CONFLICT``; PostgreSQL accepts it. The
    rows go in key order, so that the table's key index grows at its end instead of at random places (SQLite, 4.9 M
    location rows: 5 s instead of 54 s).
    """
    target = quote(table.name)
    columns = quoted_list(table.column_names)
    values = [c for c in table.column_names if c not in table.primary_key]
    keys = quoted_list(table.primary_key)
    sql = f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} WHERE true ORDER BY {keys} ON CONFLICT ({keys}) "
    if not values:
        return sql + "DO NOTHING"
    assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in values)
    return sql + (f"DO UPDATE SET {assignments} "
                  f"WHERE ({quoted_list(values, target + '.')}) {distinct} ({quoted_list(values, 'excluded.')})")


def delete_sql(table: WarehouseTable, stage: str) -> str:
    """Delete the rows whose key is not staged."""
    target = quote(table.name)
    return (f"DELETE FROM {target} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {stage} WHERE {_keys_match(table, stage, target)})")


def select_sql(table: WarehouseTable) -> str:
    return (f"SELECT {quoted_list(table.column_names)} FROM {quote(table.name)} "
            f"ORDER BY {quoted_list(table.primary_key)}")
