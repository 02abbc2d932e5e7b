"""Replacing whole source tables, all or nothing (``covid-etl seed``, through
:meth:`~etl_pipeline.resources.mysql_io_manager.MySQLIOManager.replace_tables`).

MySQL bulk-loads staging tables with ``LOAD DATA LOCAL INFILE`` (or batched ``executemany`` with a warning when
the server refuses local infile) and swaps them in with one ``RENAME TABLE``; SQLite deletes and re-inserts (Arrow
through the ADBC driver) inside one transaction. A failed load leaves the previous rows. A table comes as a
DataFrame or as chunks (:class:`TableChunks`); it is loaded chunk by chunk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import adbc_driver_manager
import pandas as pd
import pyarrow as pa
import sqlalchemy as sa

from etl_pipeline.core.engines import adbc_sqlite_connection, describe_url, get_engine, sqlite_file
from etl_pipeline.core.source_schema import TableSchema, arrow_schema, frame_of
from etl_pipeline.resources.source_tables import in_schema_order, sql_table, table_schema

log = logging.getLogger(__name__)

INSERT_BATCH_ROWS = 10_000

# Error codes meaning "LOAD DATA LOCAL is disabled on the server or the client": MySQL's, and MariaDB's 4166
# (ER_LOAD_INFILE_CAPABILITY_DISABLED, MariaDB >= 10.5).
_LOCAL_INFILE_REFUSED = {1148, 2068, 3948, 3950, 4166}


class SourceLoadError(RuntimeError):
    """Loading the source database failed; its previous content is unchanged."""


class TableChunks(Protocol):
    """A table to load: its row count and its rows as Arrow tables in the source schema's types
    (:func:`~etl_pipeline.core.source_schema.arrow_schema`), chunk by chunk
    (:class:`~etl_pipeline.transforms.source_validation.ValidatedTable` is one)."""

    rows: int

    def batches(self) -> Iterable[pa.Table]: ...


@dataclass(frozen=True)
class _Ordered:
    """A table's chunks with their columns in the schema's order (checked by
    :func:`~etl_pipeline.resources.source_tables.in_schema_order`)."""

    schema: TableSchema
    table: TableChunks

    @property
    def rows(self) -> int:
        return self.table.rows

    def batches(self) -> Iterator[pa.Table]:
        for batch in self.table.batches():
            yield in_schema_order(self.schema, batch)


@dataclass(frozen=True)
class _Frame:
    """A DataFrame as a table of one chunk, in the schema's Arrow types."""

    schema: TableSchema
    frame: pd.DataFrame

    @property
    def rows(self) -> int:
        return len(self.frame)

    def batches(self) -> list[pa.Table]:
        ordered = in_schema_order(self.schema, self.frame)
        return [pa.Table.from_pandas(ordered, schema=arrow_schema(self.schema), preserve_index=False)]


def replace_tables(url: str, frames: Mapping[str, pd.DataFrame | TableChunks]) -> None:
    """Replace the content of each named table of the source database ``url`` (MySQL or a SQLite file) by the
    validated rows, all or nothing."""
    schemas = {name: table_schema(name) for name in frames}
    frames = {name: _Frame(schemas[name], rows) if isinstance(rows, pd.DataFrame)
              else _Ordered(schemas[name], rows) for name, rows in frames.items()}
    try:
        engine = get_engine(url)
        if engine.dialect.name == "mysql":
            _replace_mysql(engine, schemas, frames)
        elif (path := sqlite_file(url)) is not None:
            _replace_sqlite(engine, path, schemas, frames)
        else:
            raise SourceLoadError(f"{describe_url(url)}: the source database is MySQL/MariaDB or a SQLite file")
    except (sa.exc.SQLAlchemyError, adbc_driver_manager.Error) as exc:
        reason = exc.orig or exc if isinstance(exc, sa.exc.SQLAlchemyError) else exc
        raise SourceLoadError(
            f"loading {', '.join(frames)} into {describe_url(url)} failed; previous content kept: {reason}"
        ) from exc


def _replace_sqlite(
    engine: sa.Engine, path: Path, schemas: Mapping[str, TableSchema], frames: Mapping[str, TableChunks]
) -> None:
    """Delete and insert in one transaction. The rows go in as Arrow through the ADBC SQLite driver, which binds
    them in C: ``executemany`` spent half the seeding time at 100x making and binding a Python object per value.
    Dates are stored as ISO text and NaN as NULL, as SQLAlchemy would."""
    metadata = sa.MetaData()
    for schema in schemas.values():
        sql_table(schema, metadata=metadata)
    metadata.create_all(engine)
    with adbc_sqlite_connection(path) as conn:  # not autocommit: one transaction
        with contextlib.closing(conn.cursor()) as cursor:
            for name, schema in schemas.items():
                cursor.execute(f'DELETE FROM "{name}"')
                for batch in frames[name].batches():
                    cursor.adbc_ingest(name, batch, mode="append")
        conn.commit()


def _replace_mysql(
    engine: sa.Engine, schemas: Mapping[str, TableSchema], frames: Mapping[str, TableChunks]
) -> None:
    metadata = sa.MetaData()
    for schema in schemas.values():
        sql_table(schema, metadata=metadata)  # the final tables too, so that create_all makes missing ones
    stages = {name: sql_table(schema, f"_stage_{name}", metadata) for name, schema in schemas.items()}
    metadata.drop_all(engine, tables=list(stages.values()))
    metadata.create_all(engine)  # staging tables, and final tables if missing, so RENAME can swap
    try:
        with engine.begin() as conn:
            for name, stage in stages.items():
                _bulk_load_mysql(conn, stage, frames[name])
                loaded = conn.execute(sa.select(sa.func.count()).select_from(stage)).scalar_one()
                if loaded != frames[name].rows:
                    raise SourceLoadError(f"{name}: staged {loaded} rows, expected {frames[name].rows}")
        swaps = []
        for name in frames:
            swaps += [f"{name} TO _old_{name}", f"_stage_{name} TO {name}"]
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {', '.join(f'_old_{n}' for n in frames)}"))
            conn.execute(sa.text("RENAME TABLE " + ", ".join(swaps)))  # one statement: atomic
            conn.execute(sa.text(f"DROP TABLE {', '.join(f'_old_{n}' for n in frames)}"))
    finally:
        metadata.drop_all(engine, tables=list(stages.values()), checkfirst=True)


def _rows(frame: pd.DataFrame, table: sa.Table, dialect: sa.Dialect) -> list[tuple]:
    """The frame's rows as the driver takes them: NULL for missing values, each column through its SQL type's
    bind processor (as SQLAlchemy would), in the table's column order."""
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
    for frame in map(frame_of, rows.batches()):
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
            for batch in rows.batches():
                infile.write(_mysql_infile_text(frame_of(batch)))
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
