"""Postgres IO manager: gold tables -> the warehouse (PostgreSQL in deployment, SQLite embedded).

Storage contract:
- The gold asset ``[gold, medical, <table>]`` is the table ``<table>`` of ``WAREHOUSE_DB_URL``, as declared in
  :mod:`etl_pipeline.warehouse_model`: column types, NOT NULL, primary key, comments (PostgreSQL ``COMMENT ON``;
  SQLite keeps them as ``--`` comments in its schema text) and secondary indexes. No identifier outside that
  allow-list reaches SQL. The table is created on the first load; an existing table whose columns differ from
  the model is refused, never altered.
- Input: a ``pyarrow.RecordBatchReader`` (streamed, bounded memory), ``pyarrow.Table`` or pandas DataFrame with
  exactly the declared columns, in any order. Values are cast to the declared types; a cast that would change a
  value (1.5 into a bigint, a timestamp with a time of day into a date) is an error, not a truncation.
- A load makes the table equal to the input: the rows go into a temporary staging table with the same primary
  key (PostgreSQL ``COPY ... FROM STDIN`` fed CSV one batch at a time; SQLite batched ``executemany``), then new
  and changed rows are upserted (unchanged rows are not rewritten) and rows whose key is no longer in the input
  are deleted. :meth:`PostgresIOManager.load_tables` loads several tables this way in **one** transaction (the
  warehouse publication: all six tables or none); ``handle_output`` and :meth:`~PostgresIOManager.load_table`
  load one. Readers see every table's previous content until the commit, then every new one; a failed load
  raises :class:`WarehouseError` naming the table and the redacted URL, and no table changes. Loads of a table
  are serialized (PostgreSQL advisory locks, taken in table-name order; SQLite ``BEGIN IMMEDIATE``).
- ``load_input`` returns the table as a pandas DataFrame ordered by primary key, dates as ``datetime.date``
  objects, integer columns with NULLs as float64 (pyarrow's ``to_pandas`` defaults).
"""

from __future__ import annotations

import io
import sqlite3
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

import dagster as dg
import pandas as pd
import psycopg2
import psycopg2.errors
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa

from etl_pipeline.resources.arrow_input import Tabular, as_reader
from etl_pipeline.resources.db import (
    CONNECT_TIMEOUT_S,
    DatabaseUnavailableError,
    check_connection,
    describe_url,
    get_engine,
)
from etl_pipeline.retries import retry_only_transient
from etl_pipeline.settings import redact
from etl_pipeline.warehouse_model import WarehouseTable, warehouse_table

#: Rows per batch sent to the database (larger input batches are sliced, zero-copy).
BATCH_ROWS = 50_000
#: Bytes COPY asks for per read of the CSV stream.
COPY_READ_BYTES = 1 << 20

_ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "double": pa.float64(),
                "date": pa.date32()}


class WarehouseError(RuntimeError):
    """A warehouse load or read failed; the message names the table and the redacted database URL."""


class _TableLoadError(Exception):
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


# -- input: columns, types, NULLs (pure) ------------------------------------------------------------------


def arrow_schema(table: WarehouseTable) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])


def check_columns(names: Sequence[str], table: WarehouseTable) -> None:
    """Raise ValueError naming every missing, unexpected or repeated column."""
    declared = set(table.column_names)
    problems = []
    if missing := [c for c in table.column_names if c not in names]:
        problems.append(f"missing {missing}")
    if extra := [c for c in names if c not in declared]:
        problems.append(f"unexpected {extra}")
    if repeated := sorted({c for c in names if names.count(c) > 1}):
        problems.append(f"repeated {repeated}")
    if problems:
        raise ValueError(f"the columns do not match the warehouse model of {table.name}: {'; '.join(problems)}")


def conform(
    reader: pa.RecordBatchReader, table: WarehouseTable, max_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The input as batches of at most ``max_rows`` rows with the declared column order, types and NOT NULLs.

    The columns are checked at once; while iterating, a ValueError names the column and the (1-based) input
    row of the first value that breaks the model.
    """
    check_columns(reader.schema.names, table)
    return _conformed(reader, arrow_schema(table), max_rows)


def _conformed(reader: pa.RecordBatchReader, schema: pa.Schema, max_rows: int) -> Iterator[pa.RecordBatch]:
    first_row = 1
    for batch in reader:
        for start in range(0, batch.num_rows, max_rows):
            part = batch.slice(start, max_rows)
            columns = [_conform_column(part.column(f.name), f, first_row) for f in schema]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
            first_row += part.num_rows


def _conform_column(values: pa.Array, field: pa.Field, first_row: int) -> pa.Array:
    try:
        result = _exact_cast(values, field.type)
    except pa.ArrowInvalid as exc:
        row = first_row + _first_uncastable(values, field.type)
        raise ValueError(f"column {field.name!r}, input row {row:,}: {values[row - first_row]} is not a valid "
                         f"{field.type} ({exc})") from None
    if not field.nullable and result.null_count:
        row = first_row + pc.index(result.is_null(), True).as_py()
        raise ValueError(f"column {field.name!r}, input row {row:,}: NULL in a NOT NULL column")
    return result


def _exact_cast(values: pa.Array, type_: pa.DataType) -> pa.Array:
    """Arrow's safe cast, which also refuses to drop the time of day when casting a timestamp to a date."""
    result = values.cast(type_)
    if pa.types.is_timestamp(values.type) and pa.types.is_date(type_):
        if pc.any(pc.not_equal(result.cast(values.type), values)).as_py():
            raise pa.ArrowInvalid("a timestamp with a time of day is not a date")
    return result


def _first_uncastable(values: pa.Array, type_: pa.DataType) -> int:
    """Index of the first value that does not cast (binary search: only run once a cast has failed)."""
    low, high = 0, len(values)  # the first bad value is in values[low:high]
    while high - low > 1:
        middle = (low + high) // 2
        try:
            _exact_cast(values.slice(low, middle - low), type_)
            low = middle
        except pa.ArrowInvalid:
            high = middle
    return low


# -- SQL text (pure) ------------------------------------------------------------------------------------


def quote(name: str) -> str:
    """A double-quoted SQL identifier (PostgreSQL and SQLite); names come from the warehouse model only."""
    return '"' + name.replace('"', '""') + '"'


def _names(names: Iterable[str], prefix: str = "") -> str:
    return ", ".join(prefix + quote(n) for n in names)


def _keys_match(table: WarehouseTable, left: str, right: str) -> str:
    return " AND ".join(f"{left}.{quote(k)} = {right}.{quote(k)}" for k in table.primary_key)


def column_definitions(table: WarehouseTable, types: dict[str, str], comments: bool = False) -> str:
    """The body of ``CREATE TABLE``: typed columns, NOT NULL, primary key; optionally ``--`` comments per line."""
    lines = [f"{quote(c.name)} {types[c.type]}{'' if c.nullable else ' NOT NULL'},"
             + (f"  -- {_one_line(c.comment)}" if comments else "") for c in table.columns]
    lines.append(f"PRIMARY KEY ({_names(table.primary_key)})")
    return "\n  ".join(["", *lines]) + "\n"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def index_statements(table: WarehouseTable) -> list[str]:
    return [f"CREATE INDEX IF NOT EXISTS {quote('ix_' + table.name + '__' + '_'.join(columns))} "
            f"ON {quote(table.name)} ({_names(columns)})" for columns in table.indexes]


def new_rows_sql(table: WarehouseTable, stage: str) -> str:
    """Count of staged rows whose key is not in the table yet."""
    target = quote(table.name)
    return (f"SELECT count(*) FROM {stage} "
            f"WHERE NOT EXISTS (SELECT 1 FROM {target} WHERE {_keys_match(table, target, stage)})")


def upsert_sql(table: WarehouseTable, stage: str, distinct: str) -> str:
    """Insert new rows, update rows where some value differs (``distinct``: the NULL-safe inequality operator).

    ``WHERE true`` is what SQLite needs to parse ``INSERT ... SELECT ... ON CONFLICT``; PostgreSQL accepts it.
    """
    target = quote(table.name)
    columns = _names(table.column_names)
    values = [c for c in table.column_names if c not in table.primary_key]
    sql = (f"INSERT INTO {target} ({columns}) SELECT {columns} FROM {stage} WHERE true "
           f"ON CONFLICT ({_names(table.primary_key)}) ")
    if not values:
        return sql + "DO NOTHING"
    assignments = ", ".join(f"{quote(c)} = excluded.{quote(c)}" for c in values)
    return sql + (f"DO UPDATE SET {assignments} "
                  f"WHERE ({_names(values, target + '.')}) {distinct} ({_names(values, 'excluded.')})")


def delete_sql(table: WarehouseTable, stage: str) -> str:
    """Delete the rows whose key is not staged."""
    target = quote(table.name)
    return f"DELETE FROM {target} WHERE NOT EXISTS (SELECT 1 FROM {stage} WHERE {_keys_match(table, stage, target)})"


def select_sql(table: WarehouseTable) -> str:
    return f"SELECT {_names(table.column_names)} FROM {quote(table.name)} ORDER BY {_names(table.primary_key)}"


def column_schema(table: WarehouseTable) -> dg.TableSchema:
    """The table as Dagster ``dagster/column_schema`` metadata: declared types, comments, NOT NULL, primary key."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=c.comment,
                                constraints=dg.TableColumnConstraints(nullable=c.nullable)) for c in table.columns],
        constraints=dg.TableConstraints(other=[f"PRIMARY KEY ({', '.join(table.primary_key)})"]),
    )


# -- the two databases -------------------------------------------------------------------------------------


class _Backend(ABC):
    """One load, and what differs between PostgreSQL and SQLite around it."""

    #: Declared type -> the database's column type (as its catalog reports it back).
    types: dict[str, str]
    #: NULL-safe "differs" operator between row values.
    distinct: str

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    def load(self, loads: Sequence[tuple[WarehouseTable, Iterator[pa.RecordBatch]]]) -> list[LoadStats]:
        """Each table made equal to its batches, all in one transaction; an error while loading a table is raised
        as :class:`_TableLoadError` naming it, from that error."""
        with self.transaction([table for table, _ in loads]) as cursor:
            stats = []
            for table, batches in loads:
                try:
                    stats.append(self._load_one(cursor, table, batches))
                except (ValueError, pa.ArrowException, psycopg2.Error, sqlite3.Error) as exc:
                    raise _TableLoadError(table.name) from exc
            return stats

    def _load_one(self, cursor, table: WarehouseTable, batches: Iterator[pa.RecordBatch]) -> LoadStats:
        stage = quote(f"_stage_{table.name}")
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
        changed = cursor.rowcount  # rows inserted or updated
        cursor.execute(delete_sql(table, stage))
        deleted = cursor.rowcount
        self.drop_stage(cursor, stage)
        return LoadStats(self.qualified_name(cursor, table), rows, inserted, changed - inserted, deleted)

    def check_existing(self, cursor, table: WarehouseTable) -> None:
        expected = [(c.name, self.types[c.type]) for c in table.columns]
        found = self.existing_columns(cursor, table)
        if found != expected:
            raise ValueError(f"the existing table {table.name} has the columns {found} but the warehouse model "
                             f"declares {expected}; migrate or drop it (loads never alter a table)")

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


class _Postgres(_Backend):
    types = {"text": "text", "bigint": "bigint", "integer": "integer", "double": "double precision", "date": "date"}
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
            cursor.copy_expert(f"COPY {stage} ({_names(table.column_names)}) FROM STDIN WITH (FORMAT csv)",
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


class _SQLite(_Backend):
    types = {"text": "TEXT", "bigint": "INTEGER", "integer": "INTEGER", "double": "REAL", "date": "TEXT"}
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
        cursor.execute(f"CREATE TABLE IF NOT EXISTS {quote(table.name)} (  -- {_one_line(table.comment)}"
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
        insert = f"INSERT INTO {stage} ({_names(table.column_names)}) VALUES ({placeholders})"
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
        return pa.array(values, type_)


_BACKENDS: dict[str, type[_Backend]] = {"postgresql+psycopg2": _Postgres, "sqlite+pysqlite": _SQLite}


def wait_for_server(url: str, wait_s: float) -> None:
    """Retry connecting for up to ``wait_s`` seconds (a server still starting refuses connections), each attempt
    bounded by ``CONNECT_TIMEOUT_S``; then raise :class:`DatabaseUnavailableError` naming the redacted URL."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            check_connection(url)
            return
        except DatabaseUnavailableError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)


# -- the IO manager ----------------------------------------------------------------------------------------


class PostgresIOManager(dg.ConfigurableIOManager):
    """Gold -> warehouse tables, loaded and upserted in one transaction (see the module docstring)."""

    url: str
    #: Seconds to keep retrying a refused connection before a load fails.
    connect_wait_s: float = CONNECT_TIMEOUT_S

    def handle_output(self, context: dg.OutputContext, obj: Tabular) -> None:
        name = context.asset_key.path[-1]
        with retry_only_transient(f"loading warehouse table {name}"):
            stats = self.load_table(name, obj)
        context.add_output_metadata(self.metadata(name, stats))

    def metadata(self, name: str, stats: LoadStats) -> dict[str, object]:
        """What a load of table ``name`` did, as the Dagster metadata of its warehouse asset."""
        return {
            "dagster/row_count": stats.rows,
            "dagster/table_name": stats.table,
            "dagster/column_schema": column_schema(warehouse_table(name)),
            "inserted": stats.inserted,
            "updated": stats.updated,
            "deleted": stats.deleted,
            "unchanged": stats.unchanged,
            "database": describe_url(self.url),
        }

    def load_input(self, context: dg.InputContext) -> pd.DataFrame:
        with retry_only_transient(f"reading warehouse table {context.asset_key.path[-1]}"):
            return self.read_table(context.asset_key.path[-1]).to_pandas()

    def load_table(self, name: str, obj: Tabular) -> LoadStats:
        """Make warehouse table ``name`` equal to ``obj``, all or nothing."""
        return self.load_tables({name: obj})[name]

    def load_tables(self, contents: Mapping[str, Tabular]) -> dict[str, LoadStats]:
        """Make each warehouse table named in ``contents`` equal to its content, in one transaction: every table
        changes, or (on any error) none does."""
        tables = {name: warehouse_table(name) for name in contents}  # refuses any other name before connecting
        failed: str | None = None
        try:
            loads = [(tables[name], conform(as_reader(obj), tables[name])) for name, obj in contents.items()]
            backend = self._backend()
            wait_for_server(self.url, self.connect_wait_s)
            return dict(zip(contents, backend.load(loads)))
        except _TableLoadError as exc:
            failed, cause = exc.table, exc.__cause__
        except (ValueError, pa.ArrowException, psycopg2.Error, sqlite3.Error, sa.exc.SQLAlchemyError) as exc:
            cause = exc
        kept = ("its previous content is unchanged" if len(contents) == 1
                else f"none of the {len(contents)} tables ({', '.join(contents)}) was changed")
        raise WarehouseError(f"loading {failed or ', '.join(contents)} into {describe_url(self.url)} failed; "
                             f"{kept}: {redact(str(cause))}") from cause

    def read_table(self, name: str) -> pa.Table:
        """The whole table in primary-key order, typed as declared."""
        table = warehouse_table(name)
        try:
            return self._backend().read(table)
        except (psycopg2.Error, sqlite3.Error, sa.exc.SQLAlchemyError) as exc:
            raise WarehouseError(f"reading {name} from {describe_url(self.url)} failed: {redact(str(exc))}") from exc

    def _backend(self) -> _Backend:
        engine = get_engine(self.url)
        kind = f"{engine.dialect.name}+{engine.dialect.driver}"
        if kind not in _BACKENDS:
            raise ValueError(f"the warehouse must be postgresql+psycopg2 or sqlite, not {describe_url(self.url)}")
        return _BACKENDS[kind](engine)
