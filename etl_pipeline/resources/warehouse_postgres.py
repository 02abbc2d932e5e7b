"""The PostgreSQL warehouse backend: advisory locks per table, ``COPY ... FROM STDIN`` of CSV into the staging
table, ``COMMENT ON`` for the model's comments."""

from __future__ import annotations

import io
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.csv as pacsv

from etl_pipeline.core.warehouse_model import WarehouseTable
from etl_pipeline.resources.warehouse_backend import WarehouseBackend
from etl_pipeline.resources.warehouse_sql import column_definitions, quote, quoted_list

#: Bytes COPY asks for per read of the CSV stream.
COPY_READ_BYTES = 1 << 20


class PostgresBackend(WarehouseBackend):
    types = {"text": "text", "bigint": "bigint", "integer": "integer", "double": "double precision", "date": "date",
             "boolean": "boolean"}
    distinct = "IS DISTINCT FROM"

    @contextmanager
    def transaction(self, tables: Sequence[WarehouseTable]) -> Iterator[psycopg2.extensions.cursor]:
        raw = self.engine.raw_connection()
        try:
            cursor = raw.cursor()
            # Serializes loads of a table (concurrent CREATE TABLE IF NOT EXISTS can fail); readers never wait.
            # Locks are taken in name order, so that two loads of overlapping tables cannot deadlock.
            for name in sorted(table.name for table in tables):
                lock_key = zlib.crc32(f"etl_pipeline.warehouse.{name}".encode())
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (lock_key,))
            yield cursor
            raw.commit()
        except BaseException:
            try:
                raw.rollback()
            except psycopg2.Error:
                raw.invalidate()  # the connection is gone (the server rolls back); keep it out of the pool
            raise
        finally:
            raw.close()

    def create_table(self, cursor, table: WarehouseTable) -> None:
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {quote(table.name)} ({column_definitions(table, self.types)})")

    def comment(self, cursor, table: WarehouseTable) -> None:
        name = quote(table.name)
        cursor.execute(f"COMMENT ON TABLE {name} IS %s", (table.comment,))
        for c in table.columns:
            cursor.execute(f"COMMENT ON COLUMN {name}.{quote(c.name)} IS %s", (c.comment,))

    def existing_columns(self, cursor, table: WarehouseTable) -> list[tuple[str, str]]:
        cursor.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name = %s ORDER BY ordinal_position",
                       (table.name,))
        return [tuple(row) for row in cursor.fetchall()]

    def create_stage(self, cursor, table: WarehouseTable, stage: str) -> None:
        cursor.execute(f"CREATE TEMP TABLE {stage} ({column_definitions(table, self.types)}) ON COMMIT DROP")

    def bulk_load(self, cursor, table: WarehouseTable, stage: str, batches: Iterator[pa.RecordBatch]) -> None:
        stream = _CsvStream(batches)
        try:
            cursor.copy_expert(f"COPY {stage} ({quoted_list(table.column_names)}) FROM STDIN WITH (FORMAT csv)",
                               stream, size=COPY_READ_BYTES)
        except psycopg2.errors.QueryCanceled:
            if stream.error is not None:  # the input's own error (psycopg2 passes only its text to the server)
                raise stream.error from None
            raise

    def drop_stage(self, cursor, stage: str) -> None:
        """Nothing to do: the staging table is ``ON COMMIT DROP``."""

    def qualified_name(self, cursor, table: WarehouseTable) -> str:
        cursor.execute("SELECT current_database(), current_schema()")
        database, schema = cursor.fetchone()
        return f"{database}.{schema}.{table.name}"

    def to_arrow(self, values: list, type_: pa.DataType) -> pa.Array:
        return pa.array(values, type_)


class _CsvStream(io.RawIOBase):
    """A readable file whose content is the CSV of ``batches`` (no header; NULL is an unquoted empty field,
    strings are always quoted so '' stays ''), rendered one batch at a time as ``COPY`` reads it.

    An error raised while producing a batch (bad input) is kept in ``error``: psycopg2 sends only its text
    to the server and raises ``QueryCanceled``.
    """

    def __init__(self, batches: Iterator[pa.RecordBatch]) -> None:
        super().__init__()
        self._batches = batches
        self._pending = memoryview(b"")
        self.error: Exception | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            try:
                batch = next(self._batches, None)
            except Exception as exc:
                self.error = exc
                raise
            if batch is None:
                return 0
            sink = pa.BufferOutputStream()
            pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
            self._pending = memoryview(sink.getvalue().to_pybytes())
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size
