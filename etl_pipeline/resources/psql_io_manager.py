"""Postgres IO manager: gold tables -> the warehouse (PostgreSQL in deployment, SQLite embedded).

Storage contract:
- The gold asset ``[gold, medical, <table>]`` is the table ``<table>`` of ``WAREHOUSE_DB_URL``, as declared in
  :mod:`etl_pipeline.core.warehouse_model`: column types, NOT NULL, primary key, comments (PostgreSQL
  ``COMMENT ON``; SQLite keeps them as ``--`` comments in its schema text) and secondary indexes. No identifier
  outside that allow-list reaches SQL. The table is created on the first load; an existing table whose columns
  differ from the model is refused, except that columns the model appends are added (a warehouse built by an
  earlier release gains new measures).
- Input: a ``pyarrow.RecordBatchReader`` (streamed, bounded memory), ``pyarrow.Table`` or pandas DataFrame with
  exactly the declared columns, in any order. Values are cast to the declared types; a cast that would change a
  value (1.5 into a bigint, a timestamp with a time of day into a date) is an error, not a truncation.
- A load makes the table equal to the input: the rows go into a temporary staging table with the same primary
  key (PostgreSQL ``COPY ... FROM STDIN`` fed CSV one batch at a time; SQLite batched ``executemany``), then new
  and changed rows are upserted (unchanged rows are not rewritten) and rows whose key is no longer in the input
  are deleted. :meth:`PostgresIOManager.load_tables` loads several tables this way in **one** transaction (the
  warehouse publication: all six tables or none); ``handle_output`` and :meth:`~PostgresIOManager.load_table`
  load one. Readers see every table's previous content until the commit, then every new one; a failed load
  raises :class:`~etl_pipeline.core.errors.WarehouseError` naming the table and the redacted URL, and no table
  changes. Loads of a table are serialized (PostgreSQL advisory locks, taken in table-name order; SQLite
  ``BEGIN IMMEDIATE``).
- ``load_input`` returns the table as a pandas DataFrame ordered by primary key, dates as ``datetime.date``
  objects, integer columns with NULLs as float64 (pyarrow's ``to_pandas`` defaults).

Where each part lives: input conformance in :mod:`~etl_pipeline.resources.warehouse_input`, the SQL text in
:mod:`~etl_pipeline.resources.warehouse_sql`, the load steps in :mod:`~etl_pipeline.resources.warehouse_backend`
and the two databases in :mod:`~etl_pipeline.resources.warehouse_postgres` and
:mod:`~etl_pipeline.resources.warehouse_sqlite`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping

import adbc_driver_manager
import dagster as dg
import pandas as pd
import psycopg2
import pyarrow as pa
import sqlalchemy as sa

from etl_pipeline.core.engines import CONNECT_TIMEOUT_S, describe_url, get_engine, wait_for_server
from etl_pipeline.core.errors import WarehouseError
from etl_pipeline.core.redaction import redact
from etl_pipeline.core.warehouse_model import WarehouseTable, warehouse_table
from etl_pipeline.resources.arrow_input import Tabular, as_reader
from etl_pipeline.resources.warehouse_backend import LoadStats, TableLoadError, WarehouseBackend
from etl_pipeline.resources.warehouse_input import conform
from etl_pipeline.resources.warehouse_postgres import PostgresBackend
from etl_pipeline.resources.warehouse_sqlite import SQLiteBackend
from etl_pipeline.retries import retry_only_transient

_BACKENDS: dict[str, type[WarehouseBackend]] = {
    "postgresql+psycopg2": PostgresBackend,
    "sqlite+pysqlite": SQLiteBackend,
}


def column_schema(table: WarehouseTable) -> dg.TableSchema:
    """The table as Dagster ``dagster/column_schema`` metadata: declared types, comments, NOT NULL, primary key."""
    return dg.TableSchema(
        columns=[dg.TableColumn(c.name, c.type, description=c.comment,
                                constraints=dg.TableColumnConstraints(nullable=c.nullable)) for c in table.columns],
        constraints=dg.TableConstraints(other=[f"PRIMARY KEY ({', '.join(table.primary_key)})"]),
    )


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
        except TableLoadError as exc:
            failed, cause = exc.table, exc.__cause__
        except (ValueError, pa.ArrowException, psycopg2.Error, sqlite3.Error, adbc_driver_manager.Error,
                sa.exc.SQLAlchemyError) as exc:
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

    def _backend(self) -> WarehouseBackend:
        engine = get_engine(self.url)
        kind = f"{engine.dialect.name}+{engine.dialect.driver}"
        if kind not in _BACKENDS:
            raise ValueError(f"the warehouse must be postgresql+psycopg2 or sqlite, not {describe_url(self.url)}")
        return _BACKENDS[kind](engine)
