"""Faults injected into the real servers on 127.0.0.1 while the pipeline runs, and the re-run after each; and bad
data in each layer, after which a run publishes nothing.

Each server fault test builds the real Definitions from the environment (``build_definitions``) and materializes
only the assets that touch the failing server, so that a fault costs seconds instead of a whole Spark run.
Attempts are counted from Dagster's event log, and the failure is read as ``covid-etl run`` prints it
(``summarize``). After every fault the same assets run again and must store exactly what an undisturbed run
stores.

The bad-data tests (the cases of issue 12) start from a copy of the session's complete embedded run, so that the
warehouse holds a previous good run, and run ``covid-etl run`` over edited copies of the shared files: a failed
run must leave every warehouse table byte for byte as it was and say exactly what is wrong.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shutil
import socket
import sqlite3
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import boto3
import dagster as dg
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable
import pymysql
import pytest
import sqlalchemy as sa

from etl_pipeline.cli import main
from etl_pipeline.core.engines import CONNECT_TIMEOUT_S
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES, warehouse_table
from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.minio_io_manager import MinIOIOManager
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.resources.warehouse_input import arrow_schema
from etl_pipeline.preflight import check_servers, check_spark
from etl_pipeline.retries import NETWORK_RETRY
from etl_pipeline.run import QUIET, RunSummary, failure_message, summarize
from etl_pipeline.seed import seed_source
from etl_pipeline.settings import Settings
from etl_pipeline_tests.conftest import DEPLOYMENT_VARIABLES, MotoS3, covid_etl, embedded_env, free_port, running_moto
from etl_pipeline_tests.resources.test_mysql_io_manager import arrow_frame
from etl_pipeline_tests.test_seed import write_dataset
from etl_pipeline_tests.test_warehouse_end_to_end import content_digest as warehouse_digest
from etl_pipeline_tests.transforms.test_source_validation import csv_frame, read_rows, sorted_by_key, write_rows

#: A password that must never be shown: every test that puts it in a URL greps the whole event log for it.
PASSWORD = "Fault-Injection-Pw-5417"
ATTEMPTS = NETWORK_RETRY.max_retries + 1
#: What the issue allows an unreachable warehouse to take before the run fails.
FAILURE_BOUND_S = 30

POSITIONS = "covid19_cases_position"
BRONZE_POSITIONS = ["bronze", "medical", POSITIONS]
LOCATIONS = "fact_location_daily"
#: The warehouse tables are published together, by one step: materializing them means all six.
WAREHOUSE = [["warehouse", "medical", table] for table in WAREHOUSE_TABLES]
PUBLISH_STEP = "warehouse"
COUNTS = ("confirmed", "deaths", "recovered", "active")


# -- running selected assets of the real Definitions -------------------------------------------------------
@dataclass
class Outcome:
    result: dg.ExecuteInProcessResult
    summary: RunSummary

    def attempts(self, step: str) -> int:
        restarts = self.result.filter_events(lambda e: e.event_type == dg.DagsterEventType.STEP_RESTARTED)
        return 1 + sum(1 for e in restarts if e.step_key == step)

    def _retries(self) -> list[dg.DagsterEvent]:
        return self.result.filter_events(lambda e: e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY)

    def retry_delays(self) -> list[float]:
        return [e.event_specific_data.seconds_to_wait for e in self._retries()]

    def retry_errors(self) -> list[str]:
        """Why each failed attempt before the last one failed."""
        return [failure_message(e.event_specific_data.error) for e in self._retries()]

    def failure(self) -> str:
        """The single failure line ``covid-etl run`` prints."""
        [failure] = self.summary.failures
        return failure

    def event_log(self) -> str:
        """Every event of the run, metadata and error chains included."""
        return "\n".join(dg.serialize_value(e) for e in self.result.all_events)


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``environment(**variables)``: this process's environment set to the embedded defaults under a temporary
    ETL_HOME plus ``variables``, as a deployment sets them (secrets then resolve through EnvVar)."""

    def set_variables(**variables: str) -> None:
        for name in DEPLOYMENT_VARIABLES:
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("ETL_HOME", str(tmp_path / "etl_home"))
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables


@pytest.fixture
def pipeline(environment):
    """``pipeline(**variables)``: the job of every asset, built from ``environment(**variables)``."""

    def job(**variables: str) -> dg.JobDefinition:
        environment(**variables)
        return build_definitions(Settings.from_env()).resolve_job_def(ALL_ASSETS_JOB)

    return job


def materialize(job: dg.JobDefinition, *keys: list[str]) -> Outcome:
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET,
                                        asset_selection=[dg.AssetKey(k) for k in keys])
        return Outcome(result, summarize(result, instance, seeded=None))


# -- inputs --------------------------------------------------------------------------------------------------
def write_gold(lake: Path, tables: dict[str, pa.Table]) -> None:
    """Gold tables in a local lake, as the warehouse publication reads them (the Spark steps are not run); the
    gold tables not given are empty."""
    manager = MinIOIOManager(lake=LakeResource(url=str(lake)))
    for name in WAREHOUSE_TABLES:
        manager.write(manager.location(["gold", "medical", name]),
                      tables.get(name, arrow_schema(warehouse_table(name)).empty_table()))


def gold_of(home: Path) -> dict[str, pa.Table]:
    """The gold tables of a complete run's lake (their latest Delta versions)."""
    return {name: DeltaTable(str(home / "lake" / "gold" / "medical" / name)).to_pyarrow_table()
            for name in WAREHOUSE_TABLES}


def locations(rows: int, confirmed_from: int = 0) -> pa.Table:
    """``fact_location_daily`` with ``rows`` distinct keys: 1,000 locations (100 countries x 10 provinces) a day,
    every 7th longitude NULL, counts derived from the row number."""
    n = np.arange(rows)
    days = pa.array(dt.date(2020, 1, 22).toordinal() - dt.date(1970, 1, 1).toordinal() + n // 1000, pa.int32())
    confirmed = n + confirmed_from
    return pa.table({
        "date": days.cast(pa.date32()),
        "country_region": pa.DictionaryArray.from_arrays(
            pa.array(n % 1000 // 10), pa.array([f"Country {i}" for i in range(100)])).cast(pa.string()),
        "province_state": pa.DictionaryArray.from_arrays(
            pa.array(n % 10), pa.array([f"Province {i}" for i in range(10)])).cast(pa.string()),
        "latitude": pa.array(n % 90 / 2),
        "longitude": pa.array(n % 180 / 2, mask=n % 7 == 0),
        "confirmed": pa.array(confirmed),
        "deaths": pa.array(n % 100),
        "recovered": pa.array(n % 50),
        "active": pa.array(confirmed - n % 100 - n % 50),
        # the measures: any values of the declared types (NULLs included); the loads, not the measures, are tested
        "new_cases": pa.array(n % 13, mask=n < 1000),
        "new_deaths": pa.array(n % 3, mask=n < 1000),
        "new_cases_7d_avg": pa.array(n % 13 / 7, mask=n < 7000),
        "new_deaths_7d_avg": pa.array(n % 3 / 7, mask=n < 7000),
        "case_fatality_ratio": pa.array(n % 100 / np.maximum(confirmed, 1), mask=confirmed == 0),
        "days_since_100_cases": pa.array(n // 1000, pa.int32()),
        "downward_revision": pa.array(n % 11 == 0),
    })


def with_null(table: pa.Table, column: str, row: int) -> pa.Table:
    """``table`` with a NULL in ``column`` at the 1-based ``row``."""
    index = table.schema.get_field_index(column)
    values = table.column(column).to_pylist()
    values[row - 1] = None
    return table.set_column(index, column, pa.array(values, table.schema.field(index).type))


def figures(table: pa.Table) -> dict[str, object]:
    """What identifies a fact_location_daily content, computed with pyarrow from the input."""
    keys = pc.binary_join_element_wise(
        table["date"].cast(pa.string()), table["country_region"], table["province_state"], "|")
    return {
        "rows": table.num_rows, "keys": pc.count_distinct(keys).as_py(),
        "longitudes": table.num_rows - table["longitude"].null_count,
        **{c: pc.sum(table[c]).as_py() for c in COUNTS},
        "first_day": pc.min(table["date"]).as_py(), "last_day": pc.max(table["date"]).as_py(),
    }


def stored_figures(url: str) -> dict[str, object]:
    """The same figures, computed by PostgreSQL over what the warehouse holds."""
    sums = ", ".join(f"sum({c})" for c in COUNTS)
    row = query(url, f"SELECT count(*), count(DISTINCT (date, country_region, province_state)), count(longitude), "
                     f"{sums}, min(date), max(date) FROM {LOCATIONS}")[0]
    return dict(zip(["rows", "keys", "longitudes", *COUNTS, "first_day", "last_day"], row))


def content_digest(url: str) -> tuple[int, str]:
    """Row count and md5 of every row's text in key order: equal digests, identical content."""
    return query(url, f"SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY date, country_region, "
                      f"province_state)) FROM {LOCATIONS} t")[0]


def query(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


# -- fault injectors --------------------------------------------------------------------------------------
class SilentServer:
    """A TCP port that accepts connections and never answers, as a hung server or a dropping firewall does.
    Counts the connections and those the client gave up on by itself."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.accepted = 0
        self.abandoned = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            threading.Thread(target=self._hold, args=(connection,), daemon=True).start()

    def _hold(self, connection: socket.socket) -> None:
        with contextlib.suppress(OSError), connection:
            while connection.recv(4096):  # the client's startup packet; no answer ever comes
                pass
        with self._lock:
            self.abandoned += 1

    def wait_until_abandoned(self, timeout: float = 10) -> int:
        """Connections the client closed, once every accepted one is closed (or ``timeout`` passed)."""
        deadline = time.monotonic() + timeout
        while self.abandoned < self.accepted and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.abandoned

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()


class BackendTerminator:
    """From a second connection, terminates the first backend of ``url``'s database seen running a statement
    that starts with ``statement``, then records the table's content digest once that backend is gone."""

    def __init__(self, url: str, statement: str) -> None:
        self.url = url
        self.statement = statement
        self.terminated: list[int] = []
        self.digest_after: tuple[int, str] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._done.set()
        self._thread.join(timeout=60)

    def _watch(self) -> None:
        engine = sa.create_engine(self.url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                while not self._done.is_set() and not self.terminated:
                    pid = conn.execute(sa.text(
                        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                        "AND pid <> pg_backend_pid() AND state = 'active' AND starts_with(query, :statement)"),
                        {"statement": self.statement}).scalar()
                    if pid is None:
                        time.sleep(0.01)
                        continue
                    conn.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
                    self.terminated.append(pid)
                    while conn.execute(sa.text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"),
                                       {"pid": pid}).first():
                        time.sleep(0.01)
                    self.digest_after = content_digest(self.url)
        finally:
            engine.dispose()


class S3Endpoint:
    """The S3 endpoint the pipeline talks to: a TCP proxy in front of moto that stops like a crashed server
    (every connection reset, the port refusing new ones) once a given number of request bytes went through,
    and starts again on the same port. Moto keeps its objects meanwhile, so the test can look at what a reader
    would find under each key while the endpoint is down."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._budget: int | None = None
        self._listener: socket.socket | None = None
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._budget = None
        self._listener = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True).start()

    def stop_after(self, request_bytes: int) -> None:
        self._budget = request_bytes

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sockets, self._sockets = self._sockets, set()
        for s in ([listener] if listener else []) + list(sockets):
            with contextlib.suppress(OSError):
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # reset, not FIN
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                return
            with self._lock:
                self._sockets |= {client, upstream}
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, requests: bool) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if requests and self._budget is not None:
                    self._budget -= len(data)
                    if self._budget <= 0:
                        self.stop()
                        return
                sink.sendall(data)
        for s in (source, sink):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)


# -- the warehouse (PostgreSQL) ------------------------------------------------------------------------------
def test_an_unanswering_warehouse_fails_the_run_within_the_connect_timeout_naming_it_without_the_password(
    pipeline, tmp_path: Path, postgres_url: str
) -> None:
    lake = tmp_path / "lake"
    content = locations(rows=3_000)
    write_gold(lake, {LOCATIONS: content})
    silent = SilentServer()
    try:
        outcome = materialize(pipeline(LAKE_URL=str(lake), WAREHOUSE_DB_URL=(
            f"postgresql+psycopg2://etl:{PASSWORD}@127.0.0.1:{silent.port}/warehouse")), *WAREHOUSE)
        abandoned = silent.wait_until_abandoned()
    finally:
        silent.close()

    assert not outcome.result.success
    failure = outcome.failure()
    assert failure.startswith(f"{PUBLISH_STEP}: ")
    assert f"cannot connect to postgresql+psycopg2://etl:***@127.0.0.1:{silent.port}/warehouse" in failure
    assert "timeout expired" in failure  # the client's connect timeout ended each attempt
    assert PASSWORD not in outcome.event_log() + outcome.summary.format()
    # One connection per attempt, each given up by the client itself: the run's length is bounded by the
    # connect timeout of each attempt plus the retry delays, whatever the server does.
    assert outcome.attempts(PUBLISH_STEP) == silent.accepted == abandoned == ATTEMPTS
    assert ATTEMPTS * CONNECT_TIMEOUT_S + sum(outcome.retry_delays()) <= FAILURE_BOUND_S

    rerun = materialize(pipeline(LAKE_URL=str(lake), WAREHOUSE_DB_URL=postgres_url), *WAREHOUSE)
    assert rerun.result.success and rerun.attempts(PUBLISH_STEP) == 1
    assert stored_figures(postgres_url) == figures(content)


def test_a_load_whose_backend_is_terminated_keeps_the_previous_content_and_is_retried_to_completion(
    pipeline, tmp_path: Path, postgres_url: str
) -> None:
    """1,000,000 rows, so that the COPY runs long enough to be caught and terminated from a second connection."""
    previous = locations(rows=2_000, confirmed_from=7)
    PostgresIOManager(url=postgres_url).load_table(LOCATIONS, previous)
    digest_before = content_digest(postgres_url)
    lake = tmp_path / "lake"
    content = locations(rows=1_000_000)
    write_gold(lake, {LOCATIONS: content})
    job = pipeline(LAKE_URL=str(lake), WAREHOUSE_DB_URL=postgres_url)

    with BackendTerminator(postgres_url, "COPY") as terminator:
        outcome = materialize(job, *WAREHOUSE)

    assert len(terminator.terminated) == 1, "the load finished before its COPY could be terminated"
    assert terminator.digest_after == digest_before  # the terminated transaction changed nothing
    assert outcome.result.success, outcome.summary.format()
    assert outcome.attempts(PUBLISH_STEP) == 2
    assert stored_figures(postgres_url) == figures(content)


def test_bad_data_in_one_table_fails_the_publication_at_once_and_no_table_changes(
    pipeline, tmp_path: Path, postgres_url: str, home: Path
) -> None:
    """The warehouse holds a complete run's gold; the next gold lacks the last day in covid19_daily_stats (which
    loads fine) and has a NULL deaths in fact_location_daily: neither, nor any other table, changes."""
    gold = gold_of(home)
    PostgresIOManager(url=postgres_url).load_tables(gold)
    before = warehouse_digest(postgres_url)
    daily = gold["covid19_daily_stats"]
    lake = tmp_path / "lake"
    write_gold(lake, {**gold, "covid19_daily_stats": daily.filter(pc.less(daily["date"], pc.max(daily["date"]))),
                      LOCATIONS: with_null(gold[LOCATIONS], "deaths", row=2_345)})

    outcome = materialize(pipeline(LAKE_URL=str(lake), WAREHOUSE_DB_URL=postgres_url), *WAREHOUSE)

    assert not outcome.result.success
    assert outcome.attempts(PUBLISH_STEP) == 1  # retrying cannot fix a value
    failure = outcome.failure()
    assert failure.startswith(f"{PUBLISH_STEP}: publishing the warehouse: loading {LOCATIONS} into "
                              "postgresql+psycopg2://")
    assert "failed; none of the 6 tables (" in failure and all(table in failure for table in WAREHOUSE_TABLES)
    assert "column 'deaths', input row 2,345: NULL in a NOT NULL column" in failure
    assert outcome.summary.published is False
    assert warehouse_digest(postgres_url) == before


# -- the source (MySQL) --------------------------------------------------------------------------------------
def bronze_frame(path: Path) -> pd.DataFrame:
    return sorted_by_key(POSITIONS, arrow_frame(DeltaTable(str(path)).to_pyarrow_table()))


def expected_positions(data_dir: Path) -> pd.DataFrame:
    """What bronze must hold, read from the CSV file with plain pandas."""
    return sorted_by_key(POSITIONS, csv_frame(POSITIONS, data_dir / SOURCE_TABLES[POSITIONS].file_name))


def lake_files(lake: Path) -> list[str]:
    return sorted(str(p.relative_to(lake)) for p in lake.rglob("*") if p.is_file()) if lake.exists() else []


def test_an_unreachable_source_fails_extraction_after_the_configured_retries_naming_it(
    pipeline, tmp_path: Path
) -> None:
    port = free_port()  # nothing listens there
    lake = tmp_path / "lake"
    outcome = materialize(pipeline(LAKE_URL=str(lake), SOURCE_DB_URL=(
        f"mysql+pymysql://etl:{PASSWORD}@127.0.0.1:{port}/covid19")), BRONZE_POSITIONS)

    assert not outcome.result.success
    assert outcome.attempts("__".join(BRONZE_POSITIONS)) == ATTEMPTS
    failure = outcome.failure()
    assert failure.startswith(f"bronze__medical__{POSITIONS}: ")
    assert f"cannot connect to mysql+pymysql://etl:***@127.0.0.1:{port}/covid19" in failure
    assert PASSWORD not in outcome.event_log() + outcome.summary.format()
    assert lake_files(lake) == []


def test_covid_etl_run_with_every_server_down_names_each_at_once_and_runs_no_step(
    environment, tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    """The preflight: four servers configured, none listening; one error naming each, before any step."""
    source, warehouse, s3, spark = (free_port() for _ in range(4))  # nothing listens there
    environment(SOURCE_DB_URL=f"mysql+pymysql://etl:{PASSWORD}@127.0.0.1:{source}/covid19",
                WAREHOUSE_DB_URL=f"postgresql+psycopg2://etl:{PASSWORD}@127.0.0.1:{warehouse}/warehouse",
                LAKE_URL="s3://lake", S3_ENDPOINT_URL=f"http://127.0.0.1:{s3}", AWS_ACCESS_KEY_ID="etl",
                AWS_SECRET_ACCESS_KEY=PASSWORD, SPARK_MASTER=f"spark://127.0.0.1:{spark}")

    status = main(["run", "--data-dir", str(data_dir)])

    out, err = capsys.readouterr()
    assert (status, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == "covid-etl run: error: not started: 4 servers are not usable"
    assert lines[1].startswith(f"  SOURCE_DB_URL: cannot connect to mysql+pymysql://etl:***@127.0.0.1:{source}/covid19: ")
    assert lines[2].startswith(f"  WAREHOUSE_DB_URL: cannot connect to postgresql+psycopg2://etl:***@127.0.0.1:"
                               f"{warehouse}/warehouse: ")
    assert lines[3].startswith(f"  LAKE_URL s3://lake at http://127.0.0.1:{s3}: ") and "connect" in lines[3]
    assert lines[4] == f"  SPARK_MASTER spark://127.0.0.1:{spark}: cannot connect to 127.0.0.1:{spark}: " \
                       "[Errno 111] Connection refused"
    assert len(lines) == 5 and "Traceback" not in err and PASSWORD not in err
    assert not (tmp_path / "etl_home" / "lake").exists()
    assert not (tmp_path / "etl_home" / "dagster").exists()  # no run was started, not even recorded


def test_verbose_adds_the_traceback(environment, data_dir: Path, capsys: pytest.CaptureFixture) -> None:
    environment(SPARK_MASTER=f"spark://127.0.0.1:{free_port()}")
    assert main(["run", "--verbose", "--data-dir", str(data_dir)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "PreflightError" in err
    assert err.splitlines()[-2] == "covid-etl run: error: not started: one server is not usable"


def test_the_preflight_passes_for_reachable_servers(
    environment, mysql_url: str, postgres_url: str, s3: MotoS3
) -> None:
    """The same four checks against servers that answer (a Spark master is stood in for by a listening port)."""
    with socket.create_server(("127.0.0.1", 0)) as spark:
        environment(SOURCE_DB_URL=mysql_url, WAREHOUSE_DB_URL=postgres_url, LAKE_URL="s3://not-created-yet",
                    S3_ENDPOINT_URL=s3.endpoint_url, AWS_ACCESS_KEY_ID="etl", AWS_SECRET_ACCESS_KEY=PASSWORD,
                    SPARK_MASTER=f"spark://127.0.0.1:{spark.getsockname()[1]}")
        check_servers(Settings.from_env())  # raises PreflightError naming any that failed


class TableLock:
    """``LOCK TABLES <table> WRITE`` held from a second connection, so that a read of it waits on the server."""

    def __init__(self, url: str, table: str) -> None:
        parsed = sa.make_url(url)
        self.connection = pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                                          password=parsed.password or "", database=parsed.database)
        self.connection.cursor().execute(f"LOCK TABLES `{table}` WRITE")

    def kill_waiting_reader(self, table: str, timeout: float = 60) -> int:
        """KILL the connection whose query waits for the lock; returns its id."""
        deadline = time.monotonic() + timeout
        cursor = self.connection.cursor()
        while time.monotonic() < deadline:
            cursor.execute("SELECT id FROM information_schema.processlist WHERE db = DATABASE() "
                           "AND id <> CONNECTION_ID() AND info LIKE %s", (f"SELECT %{table}%",))
            if row := cursor.fetchone():
                cursor.execute(f"KILL {int(row[0])}")
                return row[0]
            time.sleep(0.01)
        raise AssertionError(f"no read of {table} waited for the lock within {timeout} s")

    def release(self) -> None:
        self.connection.cursor().execute("UNLOCK TABLES")
        self.connection.close()


def test_a_source_connection_killed_during_extraction_is_retried_and_bronze_holds_every_row(
    pipeline, tmp_path: Path, mysql_url: str, data_dir: Path
) -> None:
    seed_source(mysql_url, data_dir)
    lake = tmp_path / "lake"
    job = pipeline(LAKE_URL=str(lake), SOURCE_DB_URL=mysql_url)
    lock = TableLock(mysql_url, POSITIONS)
    killed: list[int] = []

    def kill_then_unlock() -> None:
        try:
            killed.append(lock.kill_waiting_reader(POSITIONS))
        finally:
            lock.release()

    killer = threading.Thread(target=kill_then_unlock)
    killer.start()
    outcome = materialize(job, BRONZE_POSITIONS)
    killer.join()

    assert len(killed) == 1
    assert outcome.result.success, outcome.summary.format()
    assert outcome.attempts("__".join(BRONZE_POSITIONS)) == 2
    assert "Lost connection to MySQL server during query" in outcome.retry_errors()[0]
    path = lake / "bronze" / "medical" / POSITIONS
    assert [h["version"] for h in DeltaTable(str(path)).history()] == [0]  # the failed attempt committed nothing
    pd.testing.assert_frame_equal(bronze_frame(path), expected_positions(data_dir))


# -- the lake (S3) ----------------------------------------------------------------------------------------------
@pytest.fixture
def moto() -> Iterator[MotoS3]:
    """An S3 server of this test's own: the session's shared one must not see an endpoint stop."""
    with running_moto() as server:
        yield server


def without_last_day(data_dir: Path, target: Path) -> Path:
    """The shared files with the last day of positions left out: a source whose bronze object differs."""
    files = {name: (data_dir / t.file_name).read_bytes() for name, t in SOURCE_TABLES.items()}
    header, *rows = read_rows(files[POSITIONS])
    last = max(row[header.index("Date")] for row in rows)
    files[POSITIONS] = write_rows([header, *(row for row in rows if row[header.index("Date")] != last)])
    return write_dataset(target, files)


def test_an_s3_endpoint_stopped_mid_write_leaves_the_previous_version_and_a_rerun_after_restart_succeeds(
    pipeline, tmp_path: Path, moto: MotoS3, data_dir: Path
) -> None:
    endpoint = S3Endpoint(moto.port)
    endpoint.start()
    source = f"sqlite:///{tmp_path / 'source.db'}"
    seed_source(source, data_dir)
    job = pipeline(SOURCE_DB_URL=source, **{**moto.env("warehouse"), "S3_ENDPOINT_URL": endpoint.url})
    table = f"bronze/medical/{POSITIONS}"
    s3 = boto3.client("s3", endpoint_url=moto.endpoint_url, aws_access_key_id=moto.access_key,
                      aws_secret_access_key=moto.secret_key, region_name="us-east-1")
    # read straight from moto, not through the stopped endpoint
    options = moto.lake("s3://warehouse").storage_options()

    def commits() -> list[str]:
        listed = s3.list_objects_v2(Bucket="warehouse", Prefix=f"{table}/_delta_log/").get("Contents", [])
        return sorted(o["Key"] for o in listed if o["Key"].endswith(".json"))

    def content(version: int | None = None) -> pd.DataFrame:
        stored = DeltaTable(f"s3://warehouse/{table}", version=version, storage_options=options)
        return sorted_by_key(POSITIONS, arrow_frame(stored.to_pyarrow_table()))

    try:
        assert materialize(job, BRONZE_POSITIONS).result.success
        before = commits()
        assert before == [f"{table}/_delta_log/00000000000000000000.json"]
        data_files = s3.list_objects_v2(Bucket="warehouse", Prefix=f"{table}/part-")["Contents"]
        changed = without_last_day(data_dir, tmp_path / "changed")
        seed_source(source, changed)

        endpoint.stop_after(request_bytes=max(o["Size"] for o in data_files) // 4)  # in the middle of a data file
        outcome = materialize(job, BRONZE_POSITIONS)

        assert not outcome.result.success
        assert outcome.attempts("__".join(BRONZE_POSITIONS)) == ATTEMPTS
        where = f"writing a Delta table to the lake failed (endpoint {endpoint.url}, bucket 'warehouse', table '{table}')"
        assert where in outcome.failure()
        assert moto.secret_key not in outcome.event_log()
        assert commits() == before  # nothing committed: readers still see version 0, whole
        pd.testing.assert_frame_equal(content(), expected_positions(data_dir))

        endpoint.start()
        rerun = materialize(job, BRONZE_POSITIONS)
        assert rerun.result.success, rerun.summary.format()
        assert len(commits()) == 2
        pd.testing.assert_frame_equal(content(), expected_positions(changed))
        pd.testing.assert_frame_equal(content(version=0), expected_positions(data_dir))  # history kept
    finally:
        endpoint.stop()


# -- bad data in each layer: a failed run publishes nothing and says what is wrong --------------------------------
Rows = list[list[str]]


@pytest.fixture(scope="module")
def home(embedded_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the session's complete embedded run: an ETL_HOME whose warehouse holds a previous good run. The
    runs below use it in turn; each failing one must leave it as it found it."""
    source, _ = embedded_run
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("published") / "home",
                                ignore=shutil.ignore_patterns("run.lock")))


@dataclass
class Attempt:
    """One ``covid-etl run`` in ``home``, with what the warehouse and the source database held before and after."""

    status: int
    out: str
    err: str
    warehouse_before: dict[str, str]
    warehouse_after: dict[str, str]
    source_before: dict[str, str]
    source_after: dict[str, str]

    def assert_nothing_published(self) -> None:
        assert self.status == 1, f"{self.out}\n{self.err}"
        assert self.warehouse_after == self.warehouse_before


def digests(home: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The warehouse (its file's bytes, and each table's rows in key order) and each source table's rows."""
    warehouse = {"warehouse.db": hashlib.sha256((home / "warehouse.db").read_bytes()).hexdigest(),
                 **warehouse_digest(f"sqlite:///{home / 'warehouse.db'}")}
    with contextlib.closing(sqlite3.connect(home / "source.db")) as db:
        source = {name: hashlib.sha256(repr(db.execute(
            f"SELECT * FROM {name} ORDER BY {', '.join(t.primary_key)}").fetchall()).encode()).hexdigest()
            for name, t in SOURCE_TABLES.items()}
    return warehouse, source


def run_over(home: Path, data_dir: Path) -> Attempt:
    warehouse_before, source_before = digests(home)
    result = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    warehouse_after, source_after = digests(home)
    return Attempt(result.returncode, result.stdout, result.stderr, warehouse_before, warehouse_after,
                   source_before, source_after)


def shared_rows(data_dir: Path) -> dict[str, Rows]:
    return {name: read_rows((data_dir / t.file_name).read_bytes()) for name, t in SOURCE_TABLES.items()}


def dataset(target: Path, rows: dict[str, Rows]) -> Path:
    return write_dataset(target, {name: write_rows(table) for name, table in rows.items()})


def column(rows: Rows, name: str) -> list[str]:
    index = rows[0].index(name)
    return [row[index] for row in rows[1:]]


def renamed(rows: Rows, old: str, new: str, since: str) -> Rows:
    """``rows`` with the country ``old`` spelled ``new`` from the date ``since`` on (every row without a date)."""
    header, *body = rows
    country, date = header.index("Country/Region"), header.index("Date") if "Date" in header else None
    return [header, *([*row[:country], new, *row[country + 1:]]
                      if row[country] == old and (date is None or row[date] >= since) else row for row in body)]


@pytest.fixture(scope="module")
def bad_source_files(home: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Attempt:
    """Case 1: a TotalTests no 64-bit integer holds (first data row, USA) and a 2020-02-30 in the time series."""
    rows = shared_rows(data_dir)
    rows["covid19_worldometer"][1][rows["covid19_worldometer"][0].index("TotalTests")] = "99999999999999999999"
    rows["covid19_time_series"][1000][rows["covid19_time_series"][0].index("Date")] = "2020-02-30"
    return run_over(home, dataset(tmp_path_factory.mktemp("bad_source"), rows))


def test_bad_source_files_are_refused_by_name_together_and_nothing_changes(bad_source_files: Attempt) -> None:
    bad_source_files.assert_nothing_published()
    assert bad_source_files.source_after == bad_source_files.source_before
    assert bad_source_files.out == ""
    assert bad_source_files.err == (
        "covid-etl run: error: 2 problem(s) in the source data; nothing was loaded:\n"
        "  - covid19_time_series.csv, row 1000, column 'Date': is not a valid date (YYYY-MM-DD) (value '2020-02-30')\n"
        "  - covid19_worldometer.csv, row 1, column 'TotalTests': does not fit in a 64-bit integer "
        "(-9223372036854775808 .. 9223372036854775807) (value '99999999999999999999')\n")


@pytest.fixture(scope="module")
def country_renamed(home: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Attempt, Rows]:
    """Case 2: from 2020-03-10 on, South Korea is spelled 'Korea, South' in the time series, the positions and
    country-wise (as the JHU repository once did)."""
    rows = shared_rows(data_dir)
    for name in ("covid19_time_series", "covid19_cases_position", "covid19_country_wise"):
        rows[name] = renamed(rows[name], "South Korea", "Korea, South", since="2020-03-10")
    return run_over(home, dataset(tmp_path_factory.mktemp("renamed"), rows)), rows


def test_a_country_renamed_mid_series_is_named_where_it_occurs_and_nothing_is_published(
    country_renamed, home: Path
) -> None:
    attempt, rows = country_renamed
    attempt.assert_nothing_published()
    where = {name: [date for date, country in zip(column(rows[name], "Date"), column(rows[name], "Country/Region"))
                    if country == "Korea, South"]
             for name in ("covid19_time_series", "covid19_cases_position")}
    dates = [date for found in where.values() for date in found]
    assert len(where["covid19_time_series"]) == len(where["covid19_cases_position"]) == 140
    assert (
        "  failed check: silver/medical/covid19_countries every_country_mapped: 1 country names missing from "
        "etl_pipeline/transforms/country_reference.csv: (country_region='Korea, South', "
        f"first_date='{min(dates)}', last_date='{max(dates)}', "
        f"rows_in_covid19_time_series={len(where['covid19_time_series'])}, "
        f"rows_in_covid19_cases_position={len(where['covid19_cases_position'])}, rows_in_covid19_country_wise=1)"
    ) in attempt.out.splitlines()
    assert "FAILED" in attempt.out
    assert "  warehouse not published: every warehouse table keeps its previous content" in attempt.out.splitlines()
    [not_run] = [line for line in attempt.out.splitlines() if line.startswith("  not run")]
    assert not_run.endswith(f", {PUBLISH_STEP}") and "gold__medical__covid19_daily_stats" in not_run
    assert "failure:" not in attempt.out  # the check failed, not a step: its own line says why
    assert "Traceback" not in attempt.err  # an expected failure: the summary says it all (--verbose shows more)
    out = attempt.out.splitlines()
    assert out[out.index("next:") + 1:] == [  # only where the failed steps' logs are: no dashboard, no query
        f"  DAGSTER_HOME={home / 'dagster'} dg dev -h 127.0.0.1 -p 3000   (this run, its checks and step "
        "logs at http://127.0.0.1:3000)"]


def test_a_rerun_over_the_same_bad_files_fails_the_same_check_again(
    country_renamed, home: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Nothing changed in the source since the failed run, but its check failed: the asset is stale, so the rerun
    checks it again and fails the same way, rather than finding everything up to date and publishing."""
    first, rows = country_renamed
    again = run_over(home, dataset(tmp_path_factory.mktemp("renamed_again"), rows))
    again.assert_nothing_published()
    assert "source database already seeded from these files; not reloaded" in again.out
    [stale] = [line for line in again.out.splitlines() if line.startswith("stale: ")]
    assert "silver/medical/covid19_countries (check every_country_mapped failed)" in stale
    assert "bronze/" not in stale  # the sources were as the failed run left them
    failed = [line for line in first.out.splitlines() if line.startswith("  failed check: ")]
    assert failed and [line for line in again.out.splitlines() if line.startswith("  failed check: ")] == failed


@pytest.fixture(scope="module")
def gold_off_by_one(home: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Attempt, Rows]:
    """Gold that does not reconcile: country-wise holds one more confirmed US case than the time series' last day."""
    rows = shared_rows(data_dir)
    header, *body = rows["covid19_country_wise"]
    [us] = [row for row in body if row[0] == "US"]
    us[header.index("Confirmed")] = str(int(us[header.index("Confirmed")]) + 1)
    return run_over(home, dataset(tmp_path_factory.mktemp("off_by_one"), rows)), rows


def test_gold_that_does_not_reconcile_is_named_with_both_values_and_nothing_is_published(gold_off_by_one) -> None:
    attempt, rows = gold_off_by_one
    attempt.assert_nothing_published()
    series = rows["covid19_time_series"]
    header = series[0]
    last = max(column(series, "Date"))
    [us] = [row for row in series[1:] if row[header.index("Country/Region")] == "US" and row[0] == last]
    gold = {m: int(us[header.index(m.capitalize())]) for m in COUNTS}
    pairs = ", ".join(f"gold_{m}={gold[m]}, source_{m}={gold[m] + (m == 'confirmed')}" for m in COUNTS)
    assert (f"  failed check: gold/medical/covid19_daily_stats reconciles_with_country_wise: 1 countries whose "
            f"last-date counts differ from covid19_country_wise: (country_region='US', {pairs})"
            ) in attempt.out.splitlines()
    assert "  warehouse not published: every warehouse table keeps its previous content" in attempt.out.splitlines()


def test_a_failed_extraction_runs_nothing_downstream_and_the_warehouse_stays(
    home: Path, pipeline, tmp_path: Path
) -> None:
    """A bronze failure inside the whole job (the source goes away after ``covid-etl run`` checked it)."""
    warehouse = shutil.copy(home / "warehouse.db", tmp_path / "warehouse.db")
    before = hashlib.sha256(Path(warehouse).read_bytes()).hexdigest()
    job = pipeline(SOURCE_DB_URL=f"mysql+pymysql://etl:{PASSWORD}@127.0.0.1:{free_port()}/covid19",
                   LAKE_URL=str(tmp_path / "lake"), WAREHOUSE_DB_URL=f"sqlite:///{warehouse}")
    with dg.DagsterInstance.ephemeral() as instance:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=QUIET)
        summary = summarize(result, instance, seeded=None)

    assert not summary.success
    assert sorted(f.split(":")[0] for f in summary.failures) == [f"bronze__medical__{t}" for t in sorted(SOURCE_TABLES)]
    assert summary.published is False and summary.not_run[-1] == PUBLISH_STEP
    assert hashlib.sha256(Path(warehouse).read_bytes()).hexdigest() == before
    rows = {line.split()[0]: line for line in summary.format().splitlines() if not line.startswith(" ")}
    for layer in ("bronze", "silver", "gold", "warehouse"):  # every layer of the run has its line, even when empty
        assert rows[layer].split()[1:3] == ["0", "0"] and rows[layer].endswith("(nothing materialized)")


@dataclass
class Findings:
    attempt: Attempt
    rows: dict[str, Rows]
    ship_days: list[str]
    before: dict[str, pd.DataFrame]
    after: dict[str, pd.DataFrame]


def warehouse_tables(home: Path) -> dict[str, pd.DataFrame]:
    with contextlib.closing(sqlite3.connect(home / "warehouse.db")) as db:
        return {name: pd.read_sql_query(f"SELECT * FROM {name}", db) for name in WAREHOUSE_TABLES}


@pytest.fixture(scope="module")
def data_quality_findings(home: Path, data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Findings:
    """Cases 3 and 4 in one run: ships listed as provinces of Canada holding -1 from 2020-04-21 on (positions
    only), and worldometer spelling 'South Korea' (the JHU name itself) and 'Czech Republic' (Czechia's former
    name)."""
    rows = shared_rows(data_dir)
    positions = rows["covid19_cases_position"]
    days = sorted({day for day in column(positions, "Date") if day >= "2020-04-21"})
    positions += [[ship, "Canada", "0", "0", day, "-1", "-1", "-1", "-1", "Americas"]
                  for day in days for ship in ("Diamond Princess", "Grand Princess")]
    for row in rows["covid19_worldometer"][1:]:
        row[0] = {"S. Korea": "South Korea", "Czechia": "Czech Republic"}.get(row[0], row[0])
    before = warehouse_tables(home)
    attempt = run_over(home, dataset(tmp_path_factory.mktemp("findings"), rows))
    return Findings(attempt, rows, days, before, warehouse_tables(home))


def test_provinces_that_do_not_add_up_are_a_warning_naming_the_country_dates_and_difference(
    data_quality_findings: Findings,
) -> None:
    """A warning, not a blocker (see ``PROVINCES_SUM_TO_COUNTRY``): the run succeeds and publishes the rows as
    reported, and the summary names Canada, the dates and the difference."""
    attempt, days = data_quality_findings.attempt, data_quality_findings.ship_days
    assert attempt.status == 0, f"{attempt.out}\n{attempt.err}"
    assert len(days) == 98
    assert ("  warned: gold/medical/covid19_daily_stats provinces_sum_to_country: 1 countries whose position rows "
            f"do not sum to the time series on some dates: (country_region='Canada', dates={len(days)}, "
            f"first_date='{days[0]}', last_date='{days[-1]}', confirmed_difference=-2, deaths_difference=-2, "
            "recovered_difference=-2, active_difference=-2)") in attempt.out.splitlines()
    locations = data_quality_findings.after["fact_location_daily"]
    ships = locations[locations["province_state"].isin(["Diamond Princess", "Grand Princess"])]
    assert (len(ships), set(ships["country_region"]), int(ships["confirmed"].sum())) == (2 * 98, {"Canada"}, -196)
    assert attempt.warehouse_after != attempt.warehouse_before


def test_worldometer_spelling_a_jhu_name_or_a_former_name_keeps_every_population(
    data_quality_findings: Findings,
) -> None:
    attempt, rows = data_quality_findings.attempt, data_quality_findings.rows
    assert attempt.status == 0, f"{attempt.out}\n{attempt.err}"
    assert "worldometer_coverage" not in attempt.out  # passed: no warning
    population = dict(zip(column(rows["covid19_worldometer"], "Country/Region"),
                          column(rows["covid19_worldometer"], "Population")))
    countries = data_quality_findings.after["dim_country"].set_index("country_region")["population"]
    assert (countries["South Korea"], countries["Czechia"]) == (
        int(population["South Korea"]), int(population["Czech Republic"])) == (51_273_732, 10_711_019)
    for table in ("dim_country", "covid19_continent_stats"):  # Asia's and Europe's populations included as before
        pd.testing.assert_frame_equal(data_quality_findings.after[table], data_quality_findings.before[table])


def test_the_preflight_of_sail_needs_pysail_or_the_server_s_port(monkeypatch: pytest.MonkeyPatch) -> None:
    """``sail`` is started by the run itself, so only the package is checked; ``sail://`` names a server, whose port
    must answer, as for ``sc://``; Sail on an ``s3://`` lake is refused before anything starts."""
    check_spark("sail", "/tmp/lake")  # pysail is a dependency of the project
    with pytest.raises(ValueError, match="SPARK_MASTER=sail: Sail runs on a lake directory only, not on s3://lake"):
        check_spark("sail", "s3://lake")
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *args: None if name == "pysail" else object())
    with pytest.raises(RuntimeError, match=r"SPARK_MASTER=sail needs the pysail package \(pip install pysail\)"):
        check_spark("sail", "/tmp/lake")
    port = free_port()
    with pytest.raises(RuntimeError, match=f"cannot connect to 127.0.0.1:{port}"):
        check_spark(f"sail://127.0.0.1:{port}", "/tmp/lake")
