"""One warehouse load, and the steps whose SQL differs between PostgreSQL and SQLite (the backends implement them).

A load makes a table equal to its input: create the table if missing (refusing one whose columns differ from the
model), stage the rows in a temporary table with the same primary key, upsert new and changed rows, delete the
rows whose key is no longer staged. Several tables load in one transaction.
"""

from __future__ import annotations

import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass

import adbc_driver_manager
import psycopg2
import pyarrow as pa
import sqlalchemy as sa

from etl_pipeline.core.warehouse_model import WarehouseTable
from etl_pipeline.resources.warehouse_input import arrow_schema
from etl_pipeline.resources.warehouse_sql import (
    delete_sql,
    index_statements,
    new_rows_sql,
    quote,
    select_sql,
    upsert_sql,
)


class TableLoadError(Exception):
    """Raised from the error that failed loading ``table`` (inside the transaction that is rolled back)."""

    def __init__(self, table: str) -> None:
        super().__init__(table)
        self.table = table


@dataclass(frozen=True)
class LoadStats:
    """What one load did. ``table`` is the qualified name (``database.schema.table`` on PostgreSQL)."""

    table: str
    rows: int
    inserted: int
    updated: int
    deleted: int

    @property
    def unchanged(self) -> int:
        return self.rows - self.inserted - self.updated


def stage_name(table: WarehouseTable) -> str:
    """The (unquoted) name of ``table``'s temporary staging table."""
    return f"_stage_{table.name}"


class WarehouseBackend(ABC):
    """One load, and what differs between PostgreSQL and SQLite around it."""

    #: Declared type -> the database's column type (as its catalog reports it back).
    types: dict[str, str]
    #: NULL-safe "differs" operator between row values.
    distinct: str

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def load(self, loads: Sequence[tuple[WarehouseTable, Iterator[pa.RecordBatch]]]) -> list[LoadStats]:
        """Each table made equal to its batches, all in one transaction; an error while loading a table is raised
        as :class:`TableLoadError` naming it, from that error."""
        with self.transaction([table for table, _ in loads]) as cursor:
            stats = []
            for table, batches in loads:
                try:
                    stats.append(self._load_one(cursor, table, batches))
                except (ValueError, pa.ArrowException, psycopg2.Error, sqlite3.Error,
                        adbc_driver_manager.Error) as exc:
                    raise TableLoadError(table.name) from exc
            return stats

    def _load_one(self, cursor, table: WarehouseTable, batches: Iterator[pa.RecordBatch]) -> LoadStats:
        stage = quote(stage_name(table))
        self.create_table(cursor, table)
        self.check_existing(cursor, table)
        self.comment(cursor, table)
        for statement in index_statements(table):
            cursor.execute(statement)
        self.create_stage(cursor, table, stage)
        self.bulk_load(cursor, table, stage, batches)
        cursor.execute(f"SELECT count(*) FROM {stage}")
        rows = cursor.fetchone()[0]
        cursor.execute(new_rows_sql(table, stage))
        inserted = cursor.fetchone()[0]
        cursor.execute(upsert_sql(table, stage, self.distinct))
        changed = self.affected_rows(cursor)  # rows inserted or updated
        cursor.execute(delete_sql(table, stage))
        deleted = self.affected_rows(cursor)
        self.drop_stage(cursor, stage)
        return LoadStats(self.qualified_name(cursor, table), rows, inserted, changed - inserted, deleted)

    def affected_rows(self, cursor) -> int:
        """The rows the last INSERT, UPDATE or DELETE changed."""
        return cursor.rowcount

    def check_existing(self, cursor, table: WarehouseTable) -> None:
        """Refuse a table whose columns differ from the model's, except that columns the model appends after the
        existing ones are added (``ALTER TABLE ... ADD COLUMN``, in the load's transaction): a warehouse built by
        an earlier release gains the new measures on its next load. They are added without ``NOT NULL``, which a
        table holding rows cannot take without a default; the load's input is held to the model's NOT NULLs."""
        expected = [(c.name, self.types[c.type]) for c in table.columns]
        found = self.existing_columns(cursor, table)
        if found != expected[:len(found)]:
            raise ValueError(f"the existing table {table.name} has the columns {found} but the warehouse model "
                             f"declares {expected}; migrate or drop it (loads only ever append missing columns)")
        for column in table.columns[len(found):]:
            cursor.execute(f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {self.types[column.type]}")

    def read(self, table: WarehouseTable) -> pa.Table:
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            cursor.execute(select_sql(table))
            rows = cursor.fetchall()
        finally:
            raw.close()
        schema = arrow_schema(table)
        columns = list(zip(*rows)) or [() for _ in schema]
        return pa.Table.from_arrays([self.to_arrow(list(v), f.type) for v, f in zip(columns, schema)], schema=schema)

    @abstractmethod
    def transaction(self, tables: Sequence[WarehouseTable]) -> AbstractContextManager:
        """A cursor in a transaction that holds the write locks of ``tables``, commits on success and rolls back
        on any error."""

    @abstractmethod
    def create_table(self, cursor, table: WarehouseTable) -> None:
        """Create the table if missing."""

    @abstractmethod
    def comment(self, cursor, table: WarehouseTable) -> None:
        """Record the model's comments on the table and its columns."""

    @abstractmethod
    def existing_columns(self, cursor, table: WarehouseTable) -> list[tuple[str, str]]:
        """(name, type) of the table's columns, in order."""

    @abstractmethod
    def create_stage(self, cursor, table: WarehouseTable, stage: str) -> None:
        """A temporary table with the table's columns and primary key."""

    @abstractmethod
    def bulk_load(self, cursor, table: WarehouseTable, stage: str, batches: Iterator[pa.RecordBatch]) -> None:
        """Insert every batch into the staging table."""

    @abstractmethod
    def drop_stage(self, cursor, stage: str) -> None:
        """Drop the staging table before the commit (if the database does not)."""

    @abstractmethod
    def qualified_name(self, cursor, table: WarehouseTable) -> str:
        """The table's name for the ``dagster/table_name`` metadata."""

    @abstractmethod
    def to_arrow(self, values: list, type_: pa.DataType) -> pa.Array:
        """A column as read back by the driver, as Arrow."""
