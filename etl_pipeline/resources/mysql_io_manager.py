"""MySQL IO manager: the source database (MySQL in deployment, SQLite embedded).

Storage contract:
- Each source asset ``[source, medical, <table>]`` is the table ``<table>`` of ``SOURCE_DB_URL``, with the
  typed columns and primary key of :mod:`etl_pipeline.transforms.source_schema`. Only those four table
  names are ever used as identifiers.
- Reading (``load_input``) streams the table in key order as a :class:`pyarrow.RecordBatchReader` of
  ``CHUNK_ROWS`` rows, so bronze extraction never holds a whole table in memory.
- Writing (:meth:`MySQLIOManager.replace_tables`, used by ``covid-etl seed``) replaces whole tables
  atomically: MySQL bulk-loads staging tables with ``LOAD DATA LOCAL INFILE`` (or batched ``executemany``
  with a warning when the server refuses local infile) and swaps them in with one ``RENAME TABLE``;
  SQLite deletes and re-inserts inside one transaction. A failed load leaves the previous rows. A table
  comes as a DataFrame or as chunks (:class:`TableChunks`, e.g. a validated file too large for memory);
  it is loaded chunk by chunk.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

import dagster as dg
import pandas as pd
import pyarrow as pa
import pymysql.cursors
import sqlalchemy as sa

from etl_pipeline.resources.db import check_connection, describe_url, get_engine
from etl_pipeline.retries import retry_only_transient
from etl_pipeline.transforms.source_schema import MAX_TEXT_LENGTH, SOURCE_TABLES, TableSchema, arrow_schema

log = logging.getLogger(__name__)

CHUNK_ROWS = 100_000
INSERT_BATCH_ROWS = 10_000

_SQL_TYPES = {"str": sa.String(MAX_TEXT_LENGTH), "int": sa.BigInteger(), "float": sa.Double(), "date": sa.Date()}
# Error codes meaning "LOAD DATA LOCAL is disabled on the server or the client": MySQL's, and MariaDB's 4166
# (ER_LOAD_INFILE_CAPABILITY_DISABLED, MariaDB >= 10.5).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 3950, 4166}


class SourceLoadError(RuntimeError):
    """Loading the source database failed; its previous content is unchanged."""


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


def in_schema_order(schema: TableSchema, frame: pd.DataFrame) -> pd.DataFrame:
    """The frame's columns in the schema's order; any other set of columns is refused before a name reaches SQL."""
    if sorted(map(str, frame.columns)) != sorted(schema.column_names):
        raise ValueError(f"the columns {list(frame.columns)} are not those of source table {schema.name} "
                         f"({schema.column_names})")
    return frame[schema.column_names]


class TableChunks(Protocol):
    """A table to load: its row count and its rows as DataFrames, chunk by chunk
    (:class:`~etl_pipeline.transforms.source_validation.ValidatedTable` is one)."""

    rows: int

    def chunks(self) -> Iterable[pd.DataFrame]: ...


@dataclass(frozen=True)
class _Ordered:
    """A table's chunks with their columns in the schema's order (checked by :func:`in_schema_order`)."""

    schema: TableSchema
    table: TableChunks

    @property
    def rows(self) -> int:
        return self.table.rows

    def chunks(self) -> Iterator[pd.DataFrame]:
        for chunk in self.table.chunks():
            yield in_schema_order(self.schema, chunk)


@dataclass(frozen=True)
class _Frame:
    """A DataFrame as a table of one chunk."""

    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)

    def chunks(self) -> list[pd.DataFrame]:
        return [self.frame]


class MySQLIOManager(dg.ConfigurableIOManager):
    """Reads source tables for bronze; writes the seeded tables (see the module docstring)."""

    url: str

    @property
    def _engine(self) -> sa.Engine:
        return get_engine(self.url)

    # -- reading ------------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> pa.RecordBatchReader:
        """Streamed lazily: the query runs, and may fail, while the bronze step writes the batches."""
        with retry_only_transient(f"reading source table {context.asset_key.path[-1]}"):
            check_connection(self.url)  # fail here, clearly, when the server is down
            return self.read_table(context.asset_key.path[-1])

    def read_table(self, name: str, chunk_rows: int = CHUNK_ROWS) -> pa.RecordBatchReader:
        schema = table_schema(name)
        target = arrow_schema(schema)
        table = sql_table(schema)
        select = sa.select(*table.c).order_by(*(table.c[k] for k in schema.primary_key))
        query = str(select.compile(dialect=self._engine.dialect))  # quotes reserved names such as `long`

        def batches() -> Iterator[pa.RecordBatch]:
            raw = self._engine.raw_connection()
            try:
                cursor = raw.cursor(pymysql.cursors.SSCursor) if self._is_mysql else raw.cursor()
                try:
                    cursor.execute(query)
                    while rows := cursor.fetchmany(chunk_rows):
                        yield _to_batch(rows, target)
                finally:
                    cursor.close()
            finally:
                raw.close()

        return pa.RecordBatchReader.from_batches(target, batches())

    def row_count(self, name: str) -> int | None:
        """Rows in a source table, or None if the table does not exist yet."""
        schema = table_schema(name)
        if not sa.inspect(self._engine).has_table(schema.name):
            return None
        with self._engine.connect() as conn:
            return conn.execute(sa.text(f"SELECT COUNT(*) FROM {schema.name}")).scalar_one()

    # -- writing ------------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: pd.DataFrame) -> None:
        with retry_only_transient(f"writing source table {context.asset_key.path[-1]}"):
            self.replace_tables({context.asset_key.path[-1]: obj})
        context.add_output_metadata({"dagster/row_count": len(obj)})

    def replace_tables(self, frames: Mapping[str, pd.DataFrame | TableChunks]) -> None:
        """Replace the content of each named table by the validated rows, all or nothing."""
        schemas = {name: table_schema(name) for name in frames}
        frames = {name: _Frame(in_schema_order(schemas[name], rows)) if isinstance(rows, pd.DataFrame)
                  else _Ordered(schemas[name], rows) for name, rows in frames.items()}
        try:
            if self._is_mysql:
                self._replace_mysql(schemas, frames)
            else:
                self._replace_generic(schemas, frames)
        except sa.exc.SQLAlchemyError as exc:
            raise SourceLoadError(
                f"loading {', '.join(frames)} into {describe_url(self.url)} failed; previous content kept: {exc.orig or exc}"
            ) from exc

    @property
    def _is_mysql(self) -> bool:
        return self._engine.dialect.name == "mysql"

    def _replace_generic(self, schemas: Mapping[str, TableSchema], frames: Mapping[str, TableChunks]) -> None:
        metadata = sa.MetaData()
        tables = {name: sql_table(schema, metadata=metadata) for name, schema in schemas.items()}
        metadata.create_all(self._engine)
        with self._engine.begin() as conn:
            for name, table in tables.items():
                conn.execute(table.delete())
                _insert_batches(conn, table, frames[name])

    def _replace_mysql(self, schemas: Mapping[str, TableSchema], frames: Mapping[str, TableChunks]) -> None:
        metadata = sa.MetaData()
        for schema in schemas.values():
            sql_table(schema, metadata=metadata)  # the final tables too, so that create_all makes missing ones
        stages = {name: sql_table(schema, f"_stage_{name}", metadata) for name, schema in schemas.items()}
        metadata.drop_all(self._engine, tables=list(stages.values()))
        metadata.create_all(self._engine)  # staging tables, and final tables if missing, so RENAME can swap
        try:
            with self._engine.begin() as conn:
                for name, stage in stages.items():
                    _bulk_load_mysql(conn, stage, frames[name])
                    loaded = conn.execute(sa.select(sa.func.count()).select_from(stage)).scalar_one()
                    if loaded != frames[name].rows:
                        raise SourceLoadError(f"{name}: staged {loaded} rows, expected {frames[name].rows}")
            swaps = []
            for name in frames:
                swaps += [f"{name} TO _old_{name}", f"_stage_{name} TO {name}"]
            with self._engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {', '.join(f'_old_{n}' for n in frames)}"))
                conn.execute(sa.text("RENAME TABLE " + ", ".join(swaps)))  # one statement: atomic
                conn.execute(sa.text(f"DROP TABLE {', '.join(f'_old_{n}' for n in frames)}"))
        finally:
            metadata.drop_all(self._engine, tables=list(stages.values()), checkfirst=True)


def _to_batch(rows: list[tuple], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for field, values in zip(schema, zip(*rows)):
        if pa.types.is_date32(field.type) and any(isinstance(v, str) for v in values):
            arrays.append(pa.array(values, pa.string()).cast(pa.date32()))  # SQLite returns ISO strings
        else:
            arrays.append(pa.array(values, field.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _rows(frame: pd.DataFrame, table: sa.Table, dialect: sa.Dialect) -> list[tuple]:
    """The frame's rows as the driver takes them: NULL for missing values, each column through its SQL type's
    bind processor (as SQLAlchemy would; e.g. dates become ISO text on SQLite), in the table's column order."""
    columns = []
    for column in table.columns:
        values = frame[column.name]
        values = values.astype(object).where(values.notna(), None).tolist()
        if process := column.type.bind_processor(dialect):
            values = [process(v) for v in values]
        columns.append(values)
    return list(zip(*columns))


#: The positional placeholder of each DBAPI parameter style the source databases' drivers use.
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}


def _insert_batches(conn: sa.Connection, table: sa.Table, rows: TableChunks) -> None:
    """``executemany`` straight on the driver, chunk by chunk: positional parameters, no dict per row."""
    quote = conn.dialect.identifier_preparer.quote
    placeholders = ", ".join(_PLACEHOLDERS[conn.dialect.paramstyle] for _ in table.columns)
    statement = (f"INSERT INTO {quote(table.name)} ({', '.join(quote(c.name) for c in table.columns)}) "
                 f"VALUES ({placeholders})")
    for frame in rows.chunks():
        for start in range(0, len(frame), INSERT_BATCH_ROWS):
            conn.exec_driver_sql(statement, _rows(frame.iloc[start:start + INSERT_BATCH_ROWS], table, conn.dialect))


def _bulk_load_mysql(conn: sa.Connection, table: sa.Table, rows: TableChunks) -> None:
    """``LOAD DATA LOCAL INFILE`` from a temporary CSV written chunk by chunk; batched inserts when the server
    refuses it."""
    if not rows.rows:  # the infile text would be one empty line, which LOAD DATA reads as a row
        return
    handle, path = tempfile.mkstemp(suffix=".csv")
    try:
        with open(handle, "w", encoding="utf-8", newline="") as infile:
            for chunk in rows.chunks():
                infile.write(_mysql_infile_text(chunk))
        columns = ", ".join(f"`{c.name}`" for c in table.columns)
        statement = (
            f"LOAD DATA LOCAL INFILE %s INTO TABLE `{table.name}` CHARACTER SET utf8mb4 "
            "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
            f"LINES TERMINATED BY '\\n' ({columns})"
        )
        try:
            conn.exec_driver_sql(statement, (path,))
        except sa.exc.DBAPIError as exc:
            code = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
            if code not in _LOCAL_INFILE_REFUSED:
                raise
            log.warning("the MySQL server refuses LOAD DATA LOCAL INFILE (%s); loading %s with batched inserts "
                        "instead (slower); enable local_infile on the server for bulk loads", exc.orig, table.name)
            _insert_batches(conn, table, rows)
            return
        warnings = conn.exec_driver_sql("SHOW WARNINGS").fetchall()
        if warnings:
            raise SourceLoadError(f"LOAD DATA into {table.name} reported warnings: {warnings[:5]}")
    finally:
        os.unlink(path)


def _mysql_infile_text(frame: pd.DataFrame) -> str:
    """The frame in the format the LOAD DATA statement above reads: quoted text, backslash escapes, ``\\N`` NULL."""
    columns = []
    for _, values in frame.items():
        if values.dtype == object:  # text and dates
            text = values.astype(str).str.replace("\\", "\\\\").str.replace('"', '\\"')
            text = '"' + text + '"'
        else:
            text = values.astype(str)
        columns.append(text.where(values.notna(), "\\N"))
    return columns[0].str.cat(columns[1:], sep=",").str.cat(sep="\n") + "\n"
