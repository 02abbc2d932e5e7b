"""The SQLite warehouse backend (embedded mode): ``BEGIN IMMEDIATE`` for the write lock, batched ``executemany``
into the staging table, STRICT tables whose schema text keeps the model's comments."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import pyarrow as pa

from etl_pipeline.core.warehouse_model import WarehouseTable
from etl_pipeline.resources.warehouse_backend import WarehouseBackend
from etl_pipeline.resources.warehouse_sql import column_definitions, one_line, quote, quoted_list


class SQLiteBackend(WarehouseBackend):
    #: STRICT tables know no BOOLEAN: a boolean is an INTEGER 0 or 1, as SQLite itself stores TRUE and FALSE.
    types = {"text": "TEXT", "bigint": "INTEGER", "integer": "INTEGER", "double": "REAL", "date": "TEXT",
             "boolean": "INTEGER"}
    distinct = "IS NOT"

    @contextmanager
    def transaction(self, tables: Sequence[WarehouseTable]) -> Iterator[sqlite3.Cursor]:
        raw = self.engine.raw_connection()
        connection: sqlite3.Connection = raw.driver_connection
        previous = connection.isolation_level
        # pysqlite opens transactions only before INSERT/UPDATE/DELETE, so CREATE TABLE would commit on its own:
        # take over transaction control and issue BEGIN/COMMIT/ROLLBACK explicitly.
        connection.isolation_level = None
        try:
            cursor = connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")  # the write lock now: other writers wait, readers see the old rows
            try:
                yield cursor
                cursor.execute("COMMIT")
            except BaseException:
                if connection.in_transaction:  # SQLite rolls back by itself after some errors
                    cursor.execute("ROLLBACK")
                raise
        finally:
            connection.isolation_level = previous
            raw.close()

    def create_table(self, cursor, table: WarehouseTable) -> None:
        """STRICT enforces the declared types; the comments stay in the schema text (``sqlite_master.sql``)."""
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {quote(table.name)} (  -- {one_line(table.comment)}"
                       f"{column_definitions(table, self.types, comments=True)}) STRICT, WITHOUT ROWID")

    def comment(self, cursor, table: WarehouseTable) -> None:
        """Nothing to do: SQLite has no COMMENT; the comments are part of the CREATE TABLE text."""

    def existing_columns(self, cursor, table: WarehouseTable) -> list[tuple[str, str]]:
        cursor.execute(f"PRAGMA main.table_info({quote(table.name)})")
        return [(name, type_) for _, name, type_, *_ in cursor.fetchall()]

    def create_stage(self, cursor, table: WarehouseTable, stage: str) -> None:
        cursor.execute(f"CREATE TEMP TABLE {stage} ({column_definitions(table, self.types)}) STRICT, WITHOUT ROWID")

    def bulk_load(self, cursor, table: WarehouseTable, stage: str, batches: Iterator[pa.RecordBatch]) -> None:
        placeholders = ", ".join("?" for _ in table.columns)
        insert = f"INSERT INTO {stage} ({quoted_list(table.column_names)}) VALUES ({placeholders})"
        for batch in batches:
            columns = [c.cast(pa.string()) if pa.types.is_date(c.type) else c for c in batch.columns]  # ISO text
            cursor.executemany(insert, zip(*(c.to_pylist() for c in columns)))

    def drop_stage(self, cursor, stage: str) -> None:
        cursor.execute(f"DROP TABLE temp.{stage}")  # a temp table lives as long as the (pooled) connection

    def qualified_name(self, cursor, table: WarehouseTable) -> str:
        return f"main.{table.name}"

    def to_arrow(self, values: list, type_: pa.DataType) -> pa.Array:
        if pa.types.is_date(type_):
            return pa.array(values, pa.string()).cast(type_)
        if pa.types.is_boolean(type_):
            return pa.array(values, pa.int8()).cast(type_)
        return pa.array(values, type_)
