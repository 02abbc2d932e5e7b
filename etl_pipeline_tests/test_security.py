"""Secrets and SQL, against the real servers on 127.0.0.1.

- No password or secret key appears in anything a run prints, logs, records in Dagster's event log or writes
  to disk: a deployment-like run (MySQL user and PostgreSQL role with their own passwords, an S3 secret key),
  first killed midway, then run again to completion, is searched for every secret.
- SQL identifiers come only from the allow-lists (``SOURCE_TABLES``, ``WAREHOUSE_TABLES``) and values travel
  only as bound parameters: every statement the pipeline's own code sends to MySQL, PostgreSQL and SQLite
  while it seeds, reads and loads every table with hostile values is recorded at the driver and checked.
- ``covid-etl dashboard`` listens on 127.0.0.1 only unless told otherwise.

Covered elsewhere, not repeated here: the dashboard runs without Dash's dev tools (dashboard/test_app.py), reads
the warehouse as the read-only role (test_deployment.py: compose wiring and the role's privileges on the real
server), the lake bucket is created private (resources/test_minio_io_manager.py, test_deployment.py), and
secrets reach the Definitions only as ``EnvVar`` (test_definitions.py).
"""

from __future__ import annotations

import ast
import contextlib
import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import adbc_driver_manager.dbapi as adbc_dbapi
import dagster as dg
import pandas as pd
import psutil
import psycopg2
import psycopg2.extensions
import pyarrow as pa
import pymysql
import pymysql.connections
import pytest
import sqlalchemy as sa

from etl_pipeline.core.engines import get_engine
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.run import run_pipeline
from etl_pipeline.seed import needs_seed, seed_source
from etl_pipeline.settings import Settings
from etl_pipeline.transforms.source_validation import parse_source_csv
from etl_pipeline_tests.conftest import DEPLOYMENT_VARIABLES, REPO_ROOT, embedded_env, free_port, wait_for_port
from etl_pipeline_tests.test_idempotency import consecutive_versions
from etl_pipeline_tests.test_seed import write_dataset
from etl_pipeline_tests.test_warehouse_end_to_end import content_digest
from etl_pipeline_tests.transforms.test_source_validation import small_files  # noqa: F401 - a fixture

PACKAGE = REPO_ROOT / "etl_pipeline"


# -- secrets ------------------------------------------------------------------------------------------------
@dataclass
class Accounts:
    """A MySQL user and a PostgreSQL role of their own, each with a distinctive password and a database."""

    source_url: str
    warehouse_url: str
    secrets: dict[str, str]


@pytest.fixture(scope="module")
def accounts(mysql_server_url: str, postgres_server_url: str) -> Iterator[Accounts]:
    name = f"etl_sec_{uuid.uuid4().hex[:8]}"
    mysql_password, postgres_password = f"MySQL-Pw-{uuid.uuid4().hex}", f"Postgres-Pw-{uuid.uuid4().hex}"
    mysql = sa.create_engine(mysql_server_url, poolclass=sa.NullPool)
    postgres = sa.create_engine(f"{postgres_server_url}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
    with mysql.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        conn.execute(sa.text(f"CREATE USER '{name}'@'%' IDENTIFIED BY :password"), {"password": mysql_password})
        conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON `{name}`.* TO '{name}'@'%'"))
    with postgres.connect() as conn:
        # PostgreSQL trusts 127.0.0.1 here: the password is not checked, but it is in every URL the run sees.
        conn.execute(sa.text(f"CREATE ROLE {name} LOGIN PASSWORD '{postgres_password}'"))
        conn.execute(sa.text(f"CREATE DATABASE {name} OWNER {name}"))
    host = sa.make_url(mysql_server_url)
    try:
        yield Accounts(
            source_url=f"mysql+pymysql://{name}:{mysql_password}@{host.host}:{host.port or 3306}/{name}",
            warehouse_url=f"postgresql+psycopg2://{name}:{postgres_password}@127.0.0.1:5432/{name}",
            secrets={"MySQL password": mysql_password, "PostgreSQL password": postgres_password,
                     "S3 secret key": f"S3-Secret-{uuid.uuid4().hex}"},
        )
    finally:
        with mysql.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
            conn.execute(sa.text(f"DROP USER IF EXISTS '{name}'@'%'"))
        with postgres.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(sa.text(f"DROP ROLE IF EXISTS {name}"))
        mysql.dispose()
        postgres.dispose()


@dataclass
class Runs:
    home: Path
    dagster_home: Path
    accounts: Accounts
    #: Name -> text: what the killed run printed, what the complete run printed, its event log and run record.
    texts: dict[str, str] = field(default_factory=dict)
    success: bool = False


@contextlib.contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Everything printed written to ``path``: file descriptors 1 and 2 (this process's and its children's, e.g.
    the Spark JVM's) and ``sys.stdout``/``sys.stderr``, which pytest points elsewhere."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    try:
        with open(path, "wb") as sink:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with open(1, "w", closefd=False) as out, open(2, "w", closefd=False) as err, \
                    contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


def kill_once_spark_writes(command: list[str], env: dict[str, str], lake: Path, log: Path) -> None:
    """Start ``command`` in its own process group and kill the whole group (the Spark JVM included) as soon as
    Spark writes data files of a silver table: a crash in the middle of a write."""
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        deadline = time.monotonic() + 600
        while not any(lake.glob("silver/medical/*/part-*.parquet")):
            assert process.poll() is None, f"the run ended before Spark wrote anything:\n{log.read_text()}"
            assert time.monotonic() < deadline, "Spark wrote nothing within 10 minutes"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=60)


@pytest.fixture(scope="module")
def runs(accounts: Accounts, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """``covid-etl run`` killed while Spark writes, then the pipeline run again to completion in this process
    with a Dagster instance on disk, both against the accounts above and with an S3 secret key set."""
    root = tmp_path_factory.mktemp("secret_runs")
    runs = Runs(home=root / "etl_home", dagster_home=root / "dagster_home", accounts=accounts)
    env = embedded_env(runs.home, SOURCE_DB_URL=accounts.source_url, WAREHOUSE_DB_URL=accounts.warehouse_url,
                       S3_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", AWS_ACCESS_KEY_ID="etl-access-key",
                       AWS_SECRET_ACCESS_KEY=accounts.secrets["S3 secret key"])
    killed_log = root / "killed.log"
    kill_once_spark_writes([sys.executable, "-m", "etl_pipeline.cli", "run", "--verbose", "--data-dir",
                            str(data_dir)], env, runs.home / "lake", killed_log)  # verbose: step logs to search
    runs.texts["output of the killed run"] = killed_log.read_text(errors="replace")

    complete_log = root / "complete.log"
    runs.dagster_home.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        for name in DEPLOYMENT_VARIABLES:
            patch.delenv(name, raising=False)
        for name, value in env.items():
            patch.setenv(name, value)
        with dg.DagsterInstance.local_temp(tempdir=str(runs.dagster_home)) as instance:
            with output_to(complete_log):
                summary = run_pipeline(Settings.from_env(), data_dir, instance=instance)
                print(summary.format())
            runs.success = summary.success
            records = instance.get_runs()  # the sources' observation, then the assets' run
            assert len(records) == 2
            runs.texts["run record"] = "\n".join(dg.serialize_value(record) for record in records)
            runs.texts["event log"] = "\n".join(dg.serialize_value(e) for record in records
                                                for e in instance.all_logs(record.run_id))
    runs.texts["output of the complete run"] = complete_log.read_text(errors="replace")
    yield runs


def files_under(*roots: Path) -> Iterator[tuple[Path, bytes]]:
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                yield path, path.read_bytes()


def test_the_run_after_a_crash_completes_and_stores_what_an_undisturbed_run_stores(runs: Runs, embedded_run) -> None:
    """Also what makes the search below meaningful: it searched a real, complete run."""
    reference, _ = embedded_run
    assert runs.success, runs.texts["output of the complete run"]
    assert "source database already seeded from these files; not reloaded" in runs.texts["output of the complete run"]
    assert content_digest(runs.accounts.warehouse_url) == content_digest(f"sqlite:///{reference / 'warehouse.db'}")
    # every commit of the killed run and of the complete one is whole: each table's versions are consecutive
    for table, versions in consecutive_versions(runs.home).items():
        assert versions == list(range(len(versions) - 1, -1, -1)), table


def test_no_output_event_record_or_file_of_the_runs_holds_a_secret(runs: Runs) -> None:
    user = sa.make_url(runs.accounts.warehouse_url).username
    # the places searched hold the (redacted) URLs: the search looks where a secret would be
    assert f"{user}:***@127.0.0.1:5432/{user}" in runs.texts["event log"]
    assert "STEP_START" in runs.texts["output of the killed run"]
    assert "SUCCESS" in runs.texts["output of the complete run"]
    for what, secret in runs.accounts.secrets.items():
        for place, text in runs.texts.items():
            assert secret not in text, f"the {what} appears in the {place}"
        for path, content in files_under(runs.home, runs.dagster_home):
            assert secret.encode() not in content, f"the {what} appears in {path}"


# -- SQL: identifiers from the allow-lists, values bound ---------------------------------------------------
#: Text values that would change a statement if they were ever formatted into it.
LOCATIONS = "fact_location_daily"
HOSTILE = ["Robert'); DROP TABLE covid19_time_series; --", 'Korea, "South"', "back\\slash %s %(x)s ? :x", "semi;colon"]


@dataclass
class Statement:
    sql: str
    parameters: object


class StatementLog:
    """Every SQL text the pipeline's own code hands to a database, as the driver receives it: through raw DBAPI
    cursors (the warehouse loads, the streamed source read), ADBC cursors (the SQLite loads; the rows an
    ``adbc_ingest`` binds are Arrow, never SQL text) or through a SQLAlchemy connection (``text``,
    ``exec_driver_sql``). What SQLAlchemy writes itself (Core statements, reflection, ``create_all``, dialect
    set-up) is left out: its identifiers come from SQLAlchemy ``Table`` objects built from the allow-lists."""

    def __init__(self) -> None:
        self.statements: list[Statement] = []
        self._cursor_classes: dict[type, type] = {}

    def attach(self, url: str) -> None:
        """Record on the pipeline's engine for ``url`` (a URL no connection was made to yet)."""
        engine = get_engine(url)
        sa.event.listen(engine, "do_connect", self._connect)
        sa.event.listen(engine, "before_cursor_execute", self._before_cursor_execute)

    def attach_adbc(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Record what the pipeline executes on ADBC cursors (SQLite)."""
        log, execute = self, adbc_dbapi.Cursor.execute

        def recording(cursor, sql, *args, **kwargs):
            log._recorded(sql, args)
            return execute(cursor, sql, *args, **kwargs)

        monkeypatch.setattr(adbc_dbapi.Cursor, "execute", recording)

    # raw DBAPI cursors: record what a frame of the pipeline executes directly
    def _recorded(self, sql: str, parameters: object) -> None:
        if sys._getframe(2).f_globals.get("__name__", "").startswith("etl_pipeline"):
            self.statements.append(Statement(sql, parameters))

    def _cursor_class(self, base: type) -> type:
        if base not in self._cursor_classes:
            log = self

            class Recording(base):
                def execute(self, sql, *args, **kwargs):
                    log._recorded(sql, args)
                    return super().execute(sql, *args, **kwargs)

                def executemany(self, sql, *args, **kwargs):
                    log._recorded(sql, args)
                    return super().executemany(sql, *args, **kwargs)

                if hasattr(base, "copy_expert"):
                    def copy_expert(self, sql, *args, **kwargs):
                        log._recorded(sql, "<data stream>")
                        return super().copy_expert(sql, *args, **kwargs)

            self._cursor_classes[base] = Recording
        return self._cursor_classes[base]

    def _connect(self, dialect, connection_record, cargs, cparams):
        cursor_class = self._cursor_class
        if dialect.name == "postgresql":
            return psycopg2.connect(*cargs, cursor_factory=cursor_class(psycopg2.extensions.cursor), **cparams)
        if dialect.name == "sqlite":
            recording = cursor_class(sqlite3.Cursor)

            class Connection(sqlite3.Connection):
                def cursor(self, factory=None):
                    return super().cursor(factory or recording)

            return sqlite3.connect(*cargs, factory=Connection, **cparams)

        class MySQLConnection(pymysql.connections.Connection):
            def cursor(self, cursor=None):
                return cursor_class(cursor or self.cursorclass)(self)

        return MySQLConnection(*cargs, **cparams)

    # SQLAlchemy connections: record the SQL text a frame of the pipeline passes to Connection.execute (``text``)
    # or Connection.exec_driver_sql
    def _before_cursor_execute(self, conn, cursor, statement, parameters, context, executemany) -> None:
        if context.compiled is not None and not isinstance(context.compiled.statement, sa.TextClause):
            return  # a Core statement: SQLAlchemy wrote it from Table objects
        frame = sys._getframe(1)
        while frame is not None and not (frame.f_globals.get("__name__") == "sqlalchemy.engine.base"
                                         and frame.f_code.co_name in {"execute", "exec_driver_sql"}):
            frame = frame.f_back
        caller = frame.f_back if frame is not None else None
        if caller is not None and caller.f_globals.get("__name__", "").startswith("etl_pipeline"):
            self.statements.append(Statement(statement, parameters))


#: Not the pipeline: the benchmark's plain-pandas baseline, on SQLite files of its own.
NOT_THE_PIPELINE = ("bench",)


def pipeline_sources() -> Iterator[tuple[Path, ast.AST]]:
    """Each module of the pipeline's package, parsed."""
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] not in NOT_THE_PIPELINE:
            yield path, ast.parse(path.read_text(), filename=str(path))


def code_strings() -> list[str]:
    """Every string constant in the package's source, f-string parts included: the text its authors wrote."""
    found = []
    for _, tree in pipeline_sources():
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
    return found


def allowed_identifiers() -> set[str]:
    """The allow-lists, and the names the IO managers derive from them (staging, swap and index names)."""
    names = set()
    for table in SOURCE_TABLES.values():
        names |= {table.name, f"_stage_{table.name}", f"_old_{table.name}", *table.column_names}
    for table in WAREHOUSE_TABLES.values():
        names |= {table.name, f"_stage_{table.name}", f"_stage_{table.name}_key", *table.column_names}
        names |= {f"ix_{table.name}__{'_'.join(columns)}" for columns in table.indexes}
    return names


_LITERAL = re.compile(r"'(?:[^'\\]|\\.|'')*'")
_QUOTED_IDENTIFIER = re.compile(r'"((?:[^"]|"")+)"|`([^`]+)`')
_PLACEHOLDER = re.compile(r"%\(\w+\)s|%s|\?|(?<![:\w]):\w+")
_COMMENT = re.compile(r"--[^\n]*")
_WORD = re.compile(r"\w+")


def policy_violations(sql: str, identifiers: set[str], code_words: set[str], code_text: str) -> list[str]:
    """What in ``sql`` does not come from the allow-lists or from the package's own text."""
    problems = [f"comment {c!r}" for c in _COMMENT.findall(sql) if not set(_WORD.findall(c)) <= code_words]
    sql = _COMMENT.sub(" ", sql)
    problems += [f"literal {lit}" for lit in _LITERAL.findall(sql) if lit not in code_text]
    sql = _LITERAL.sub(" ", sql)
    for double, back in _QUOTED_IDENTIFIER.findall(sql):
        name = (double or back).replace('""', '"')
        if name not in identifiers:
            problems.append(f"identifier {name!r}")
    sql = _PLACEHOLDER.sub(" ", _QUOTED_IDENTIFIER.sub(" ", sql))
    problems += [f"word {w!r}" for w in _WORD.findall(sql) if w not in identifiers and w not in code_words]
    return problems


def hostile_source_frames(small_files: dict[str, bytes]) -> dict[str, pd.DataFrame]:  # noqa: F811
    """The small source files, validated, with hostile text in a column of every table."""
    frames = {name: parse_source_csv(SOURCE_TABLES[name], content, file_name=name)
              for name, content in small_files.items()}
    for frame in frames.values():
        frame["who_region"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(frame))]
    return frames


def hostile_warehouse_table(name: str, rows: int = 8) -> pa.Table:
    """Rows for any warehouse table: distinct keys, hostile text in every text column, NULLs where allowed."""
    table = WAREHOUSE_TABLES[name]
    values = {
        "text": lambda i: f"{HOSTILE[i % len(HOSTILE)]} #{i}",
        "bigint": lambda i: i * 1_000_003,
        "integer": lambda i: i,
        "double": lambda i: i / 3,
        "date": lambda i: dt.date(2020, 1, 22) + dt.timedelta(days=i),
        "boolean": lambda i: i % 2 == 0,
    }
    types = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "double": pa.float64(),
             "date": pa.date32(), "boolean": pa.bool_()}
    columns = {}
    for c in table.columns:
        column = [values[c.type](i) for i in range(rows)]
        if c.nullable:
            column[3] = None
        columns[c.name] = pa.array(column, types[c.type])
    return pa.table(columns)


def plain_rows(url: str, table: str) -> list[tuple]:
    """A table's rows as plain SQL reads them (not through the IO managers), dates as ISO text, sorted."""
    engine = sa.create_engine(url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.text(f'SELECT * FROM "{table}"')).fetchall()
    finally:
        engine.dispose()
    return sorted((tuple(map(_plain, row)) for row in rows), key=repr)


def input_rows(table: pa.Table) -> list[tuple]:
    rows = zip(*(table.column(name).to_pylist() for name in table.column_names))
    return sorted((tuple(map(_plain, row)) for row in rows), key=repr)


def _plain(value: object) -> object:
    """Dates as ISO text, booleans as 0/1 (SQLite stores them so)."""
    if isinstance(value, dt.date):
        return value.isoformat()
    return int(value) if isinstance(value, bool) else value


@pytest.fixture(params=["mysql+postgresql", "sqlite"])
def databases(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source URL, warehouse URL), fresh: MariaDB and PostgreSQL, or two SQLite files."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'warehouse.db'}"
    return request.getfixturevalue("mysql_url"), request.getfixturevalue("postgres_url")


def test_every_statement_names_only_allow_listed_identifiers_and_binds_every_value(
    databases: tuple[str, str], small_files: dict[str, bytes], tmp_path: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source_url, warehouse_url = databases
    bulk_off = f"{source_url}?local_infile=0" if source_url.startswith("mysql") else None  # the batched fallback
    log = StatementLog()
    for url in filter(None, (source_url, warehouse_url, bulk_off)):
        log.attach(url)
    log.attach_adbc(monkeypatch)

    source, warehouse = MySQLIOManager(url=source_url), PostgresIOManager(url=warehouse_url)
    frames = hostile_source_frames(small_files)
    seed_source(source_url, write_dataset(tmp_path / "files", small_files))
    assert not needs_seed(source_url, tmp_path / "files")
    source.replace_tables(frames)
    if bulk_off:
        MySQLIOManager(url=bulk_off).replace_tables(frames)
    for name in SOURCE_TABLES:
        assert source.read_table(name).read_all().column("who_region").to_pylist() == \
            frames[name].sort_values(list(SOURCE_TABLES[name].primary_key))["who_region"].tolist()
        assert source.row_count(name) == len(frames[name])
    for name in WAREHOUSE_TABLES:
        content = hostile_warehouse_table(name)
        warehouse.load_table(name, content.slice(0, 5))
        warehouse.load_table(name, content.slice(2))  # inserts, updates and deletes
        assert plain_rows(warehouse_url, name) == input_rows(content.slice(2))
        assert warehouse.read_table(name).num_rows == len(content) - 2

    strings = code_strings()
    code_words, code_text = {w for s in strings for w in _WORD.findall(s)}, "\n".join(strings)
    identifiers = allowed_identifiers()
    assert len(log.statements) > 50  # the log sees what the IO managers send
    for statement in log.statements:
        assert policy_violations(statement.sql, identifiers, code_words, code_text) == [], statement.sql
        assert not any(value in statement.sql for value in HOSTILE), statement.sql


#: Text that opens an SQL statement; every module holding one must be exercised by the test above.
_SQL_START = re.compile(r"^\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|DROP|ALTER|COPY|RENAME|COMMENT ON|PRAGMA|"
                        r"LOAD DATA|SHOW|BEGIN|COMMIT|ROLLBACK|WITH|TRUNCATE|GRANT)\b")
SQL_MODULES = {"core/engines.py", "resources/mysql_io_manager.py", "resources/source_load.py",
               "resources/warehouse_backend.py", "resources/warehouse_postgres.py", "resources/warehouse_sql.py",
               "resources/warehouse_sqlite.py"}


def test_sql_text_is_written_only_in_the_modules_whose_statements_are_checked() -> None:
    """SQLAlchemy Core builds the rest (seed state, ``create_all``), with identifiers from ``Table`` objects."""
    holders = set()
    for path, tree in pipeline_sources():
        for node in ast.walk(tree):
            parts = node.values if isinstance(node, ast.JoinedStr) else [node]
            first = parts[0] if parts else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str) and _SQL_START.match(first.value):
                holders.add(str(path.relative_to(PACKAGE)))
    assert holders == SQL_MODULES


def test_a_frame_with_a_column_outside_the_schema_is_refused_before_any_statement(
    databases: tuple[str, str], small_files: dict[str, bytes]  # noqa: F811
) -> None:
    source_url, _ = databases
    log = StatementLog()
    log.attach(source_url)
    frames = hostile_source_frames(small_files)
    frame = frames["covid19_worldometer"].assign(**{"x` INT); DROP TABLE covid19_time_series; --": 1})

    with pytest.raises(ValueError, match="are not those of source table covid19_worldometer"):
        MySQLIOManager(url=source_url).replace_tables({"covid19_worldometer": frame})
    assert log.statements == []


def test_a_table_outside_the_allow_list_is_refused_by_the_warehouse_and_by_the_assets(
    databases: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The source IO manager's own refusal is tested in resources/test_mysql_io_manager.py."""
    source_url, warehouse_url = databases
    log = StatementLog()
    log.attach(warehouse_url)
    manager = PostgresIOManager(url=warehouse_url)
    for call in (manager.read_table, lambda name: manager.load_table(name, hostile_warehouse_table(LOCATIONS))):
        with pytest.raises(ValueError, match="is not a warehouse table"):
            call("users; DROP TABLE fact_location_daily")

    # assets named outside the allow-lists, on the pipeline's own IO managers: refused at once, never retried
    for name in DEPLOYMENT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in {"ETL_HOME": str(tmp_path), "SOURCE_DB_URL": source_url, "WAREHOUSE_DB_URL": warehouse_url,
                        "LAKE_URL": str(tmp_path / "lake")}.items():
        monkeypatch.setenv(name, value)
    resources = build_definitions(Settings.from_env()).resolve_job_def(ALL_ASSETS_JOB).resource_defs

    @dg.asset(key=["source", "medical", "users"], io_manager_key="mysql_io_manager")
    def users() -> pd.DataFrame:
        return pd.DataFrame({"name": ["x"]})

    @dg.asset(key=["warehouse", "medical", "users"], io_manager_key="psql_io_manager")
    def warehouse_users() -> pa.Table:
        return hostile_warehouse_table(LOCATIONS)

    for asset, refusal in ((users, "is not a source table"), (warehouse_users, "is not a warehouse table")):
        result = dg.materialize([asset], resources={k: resources[k] for k in ("mysql_io_manager", "psql_io_manager")},
                                raise_on_error=False)
        [failure] = [e for e in result.all_events if e.is_step_failure]
        assert refusal in failure.step_failure_data.error.message
        assert not result.filter_events(lambda e: e.event_type == dg.DagsterEventType.STEP_RESTARTED)
    assert log.statements == []


# -- the dashboard ------------------------------------------------------------------------------------------
def listening_addresses(pid: int) -> set[tuple[str, int]]:
    return {c.laddr[:2] for c in psutil.Process(pid).net_connections(kind="inet") if c.status == psutil.CONN_LISTEN}


def test_the_dashboard_listens_on_127_0_0_1_only_by_default(tmp_path: Path) -> None:
    port = free_port()
    env = embedded_env(tmp_path, DASH_MAP_STYLE="white-bg")
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, "-m", "etl_pipeline.cli", "dashboard", "--port", str(port)],
                                   cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            assert wait_for_port(port, timeout=60), "covid-etl dashboard did not start"
            assert listening_addresses(process.pid) == {("127.0.0.1", port)}
        finally:
            process.terminate()
            process.wait(timeout=20)
        log.seek(0)
        assert f"Dashboard on http://127.0.0.1:{port}/" in log.read().decode()
