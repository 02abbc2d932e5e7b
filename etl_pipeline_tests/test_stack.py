"""The deployed platform on loopback: the whole pipeline in the configuration ``docker compose`` wires, only
environment variables changed (issue 13, the ``stack`` tests).

One module, two stacks that differ only in ``SPARK_MASTER``:

- **source**: a MariaDB database of its own with a password-protected user of its own, seeded by
  ``covid-etl seed`` (``LOAD DATA LOCAL INFILE``); shared by both stacks, which only read it;
- **lake**: ``LAKE_URL=s3://warehouse`` on an S3 server of the stack's own (moto's standalone server, MinIO's
  stand-in), the bucket created private beforehand as ``minio-init`` does;
- **Spark**: a standalone master + two 1-core workers (``spark://``), whose workers hold the lake's keys in
  their environment as in ``docker-compose.yml``; the second stack goes through a Spark Connect server
  (``sc://``) running on that cluster, started with the S3A connector on its driver's and executors' class path
  (the jars ``covid-etl fetch-jars`` cached in ``SPARK_JARS_IVY``, as the image's spark-defaults.conf names
  them) and the S3 endpoint on its command line. The spark:// driver does the same (the session resource);
  no application ships the jars to its executors;
- **warehouse and Dagster storage**: PostgreSQL databases and roles created by the deployment's own init
  scripts (``deploy/postgres/init``), which also create the read-only role the dashboard uses;
- **Dagster**: ``DAGSTER_HOME`` holding ``deploy/dagster.yaml`` (Postgres run, event-log and schedule storage;
  only its two ``/opt/dagster`` directories moved to a temporary directory), the run launched with
  ``dagster job execute -m etl_pipeline.definitions -j covid19_etl_job`` against that instance;
- **dashboard**: ``covid-etl dashboard`` reading the warehouse as the read-only role.

Each stack's gold Parquet (read from S3 with pyarrow, no Spark), every warehouse table (from PostgreSQL),
the lake's table names, the row counts Dagster recorded per asset and every asset check's outcome must equal
those of the session's embedded run (``local[*]``, SQLite, local lake: conftest's ``embedded_run``). The
spark:// stack runs once, the sc:// stack twice: its second run changes no warehouse row (same content, same
row versions). No secret of a stack reaches a run's output or Dagster's Postgres storage.

"Both workers ran tasks" is proven per Spark application from what the workers themselves record: each
worker's ``/json/`` names the executors it launched for the application (``appid``, ``id``), and each
executor's log in that worker's work directory (``<work dir>/<app id>/<executor id>/stderr``) has one
``Finished task`` line per task it ran. Every application asks for one 1-core executor per worker and waits
until both have registered before its first job, so with 8 shuffle partitions both executors get tasks.
Applications run one after the other: each holds both workers' only cores while it lives.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from unittest import mock

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable
import sqlalchemy as sa
import yaml

from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES, WarehouseTable
from etl_pipeline.definitions import ALL_ASSETS_JOB
from etl_pipeline.resources.spark_conf import REPO_SPARK_DEFAULTS, parse_spark_defaults
from etl_pipeline.spark_jars import classpath_conf, project_packages
from etl_pipeline_tests.conftest import (
    REPO_ROOT,
    MotoS3,
    covid_etl,
    deployment_roles,
    running_moto,
    embedded_env,
    free_port,
    psql_script,
    unavailable,
    wait_for_port,
)
from etl_pipeline_tests.spark_servers import ConnectServer, StandaloneCluster, write_spark_defaults

pytestmark = [pytest.mark.stack, pytest.mark.cluster]

#: One 1-core executor on each 1-core worker; no job starts before both have registered.
CLUSTER_APP_CONF = {
    "spark.executor.cores": "1",
    "spark.executor.memory": "512m",
    "spark.cores.max": "2",
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "120s",
    "spark.ui.enabled": "false",
}
RUN_TIMEOUT_S = 1200
FINISHED_TASK = re.compile(r"Executor: Finished task \S+ in stage ")
PG_INIT = REPO_ROOT / "deploy" / "postgres" / "init"
DEPLOY_DAGSTER_YAML = REPO_ROOT / "deploy" / "dagster.yaml"
BUCKET = "warehouse"
LAYERS = ("bronze", "silver", "gold")
#: What the MySQL IO manager logs when it falls back from LOAD DATA LOCAL INFILE to batched inserts.
NO_LOAD_DATA = "refuses LOAD DATA LOCAL INFILE"


# ------------------------------------------------------------------------------------------- comparisons


def normalised(frame: pd.DataFrame, table: WarehouseTable) -> pd.DataFrame:
    """``frame`` with the declared columns in order, one representation per declared type (PostgreSQL's DATE and
    SQLite's ISO text both become ``YYYY-MM-DD``; integers nullable ``Int64``; doubles ``float64``; booleans
    ``boolean``; text as ``str`` or ``None``), sorted by the primary key in code-point order (not the server's collation)."""
    out = pd.DataFrame(index=frame.index)
    for column in table.columns:
        values = frame[column.name]
        if column.type == "date":
            out[column.name] = pd.to_datetime(values).dt.strftime("%Y-%m-%d")
        elif column.type in ("bigint", "integer"):
            out[column.name] = values.astype("Int64")
        elif column.type == "double":
            out[column.name] = values.astype("float64")
        elif column.type == "boolean":  # SQLite stores a boolean as the integer 0 or 1
            out[column.name] = values.astype("boolean")
        else:
            out[column.name] = values.astype(object).where(values.notna(), None)
    return out.sort_values(list(table.primary_key), ignore_index=True)


def read_table(connection: sa.Connection | sqlite3.Connection, table: WarehouseTable) -> pd.DataFrame:
    frame = pd.read_sql_query(f"SELECT * FROM {table.name}", connection, dtype_backend="numpy_nullable")
    assert list(frame.columns) == table.column_names, table.name
    return normalised(frame, table)


def sorted_gold(table: pd.DataFrame, name: str) -> pd.DataFrame:
    return table.sort_values(list(WAREHOUSE_TABLES[name].primary_key), ignore_index=True)


def lake_tables(relative_paths: list[str]) -> set[str]:
    """``layer/medical/<table>`` of every object or file below a lake root."""
    return {"/".join(path.split("/")[:3]) for path in relative_paths}


@dataclass(frozen=True)
class RunRecord:
    """What Dagster recorded for one run: rows per materialized asset, the outcome of every asset check."""

    status: str
    tags: dict[str, str]
    row_counts: dict[str, int]
    checks: dict[str, tuple[bool, str, dict]]


def run_record(instance, run_id: str) -> RunRecord:
    from dagster import DagsterEventType

    run = instance.get_run_by_id(run_id)
    rows: dict[str, int] = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION).records:
        materialization = record.event_log_entry.dagster_event.event_specific_data.materialization
        count = materialization.metadata.get("dagster/row_count")
        rows[materialization.asset_key.to_user_string()] = None if count is None else int(count.value)
    checks: dict[str, tuple[bool, str, dict]] = {}
    for record in instance.get_records_for_run(run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION).records:
        evaluation = record.event_log_entry.dagster_event.event_specific_data
        metadata = {k: getattr(v, "value", v) for k, v in evaluation.metadata.items()}
        checks[f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"] = (
            evaluation.passed, evaluation.severity.value, metadata)
    return RunRecord(run.status.value, dict(run.tags), rows, checks)


# ------------------------------------------------------------------------------------------- the reference


@dataclass(frozen=True)
class Reference:
    """The session's embedded run: local lake, SQLite warehouse, SQLite Dagster instance under its ETL_HOME."""

    home: Path

    @property
    def lake(self) -> Path:
        return self.home / "lake"

    def gold(self, name: str) -> pd.DataFrame:
        return sorted_gold(DeltaTable(str(self.lake / "gold" / "medical" / name)).to_pyarrow_table().to_pandas(), name)

    def lake_tables(self) -> set[str]:
        files = [str(p.relative_to(self.lake)) for p in self.lake.rglob("*") if p.is_file()]
        return lake_tables(files)

    def warehouse(self) -> dict[str, pd.DataFrame]:
        with contextlib.closing(sqlite3.connect(self.home / "warehouse.db")) as db:
            return {name: read_table(db, table) for name, table in WAREHOUSE_TABLES.items()}

    def run_record(self) -> RunRecord:
        from dagster import DagsterInstance, RunsFilter

        dagster_home = self.home / "dagster"
        assert dagster_home.is_dir(), f"the embedded run left no Dagster history in {dagster_home}"
        with DagsterInstance.from_config(str(dagster_home)) as instance:
            [run] = instance.get_runs(filters=RunsFilter(job_name=ALL_ASSETS_JOB))  # not the sources' observation
            return run_record(instance, run.run_id)


# ------------------------------------------------------------------------------------------- the servers


@dataclass(frozen=True)
class SourceDatabase:
    url: str  # as the pipeline's own user
    seeded: subprocess.CompletedProcess
    load_data_statements: int


@dataclass
class PostgresStack:
    """The warehouse and Dagster databases and their three roles, made by the deployment's init scripts."""

    server: sa.URL
    names: dict[str, str]

    def url(self, user: str, password: str, database: str) -> str:
        url = self.server.set(drivername="postgresql+psycopg2", username=user, password=password, database=database)
        return url.render_as_string(hide_password=False)

    @property
    def warehouse_url(self) -> str:
        n = self.names
        return self.url(n["WAREHOUSE_DB_USER"], n["WAREHOUSE_DB_PASSWORD"], n["WAREHOUSE_DB_NAME"])

    @property
    def dashboard_url(self) -> str:
        n = self.names
        return self.url(n["DASHBOARD_DB_USER"], n["DASHBOARD_DB_PASSWORD"], n["WAREHOUSE_DB_NAME"])

    def admin_url(self, database: str) -> str:
        return self.url(self.server.username, self.server.password, database)

    @property
    def admin_warehouse_url(self) -> str:
        return self.admin_url(self.names["WAREHOUSE_DB_NAME"])

    def secrets(self) -> list[str]:
        return [self.names[k] for k in ("WAREHOUSE_DB_PASSWORD", "DAGSTER_PG_PASSWORD", "DASHBOARD_DB_PASSWORD")]

    def dagster_env(self) -> dict[str, str]:
        n = self.names
        return {"DAGSTER_PG_HOST": self.server.host, "DAGSTER_PG_PORT": str(self.server.port or 5432),
                "DAGSTER_PG_DB": n["DAGSTER_PG_DB"], "DAGSTER_PG_USER": n["DAGSTER_PG_USER"],
                "DAGSTER_PG_PASSWORD": n["DAGSTER_PG_PASSWORD"]}  # fmt: skip


@contextlib.contextmanager
def postgres_stack(server_url: str) -> Iterator[PostgresStack]:
    """Run 10-databases.sql then 20-dashboard-readonly.sql as the postgres image does on its first start (values
    from the environment), before any pipeline run; drop everything they made afterwards."""
    with deployment_roles(server_url, prefix="stack_") as names:
        for script in ("10-databases.sql", "20-dashboard-readonly.sql"):
            done = psql_script(server_url, PG_INIT / script, env=names)
            assert done.returncode == 0, f"{script}: {done.stderr}"
        yield PostgresStack(sa.make_url(server_url), names)


@contextlib.contextmanager
def s3_lake() -> Iterator[MotoS3]:
    """An S3 server of the stack's own, holding the private bucket ``warehouse`` (as ``minio-init`` makes it)."""
    import boto3

    with running_moto() as server:
        client = boto3.client("s3", endpoint_url=server.endpoint_url, region_name="us-east-1",
                              aws_access_key_id=server.access_key, aws_secret_access_key=server.secret_key)
        client.create_bucket(Bucket=BUCKET)
        yield server


def dagster_home(path: Path) -> Path:
    """``deploy/dagster.yaml`` in ``path``, its artifact and compute-log directories moved under ``path`` (there is
    no /opt/dagster here); everything else, the Postgres storage above all, as shipped."""
    config = yaml.safe_load(DEPLOY_DAGSTER_YAML.read_text())
    assert config["local_artifact_storage"]["config"]["base_dir"] == "/opt/dagster/storage"
    assert config["compute_logs"]["config"]["base_dir"] == "/opt/dagster/storage/compute_logs"
    config["local_artifact_storage"]["config"]["base_dir"] = str(path / "storage")
    config["compute_logs"]["config"]["base_dir"] = str(path / "storage" / "compute_logs")
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(yaml.safe_dump(config))
    return path


# ------------------------------------------------------------------------------------------- a stack


@dataclass
class StackRun:
    """One ``dagster job execute``: its Dagster run, its Spark application and the warehouse right after it."""

    run_id: str
    app_id: str
    warehouse: dict[str, pd.DataFrame]
    row_versions: dict[str, list[tuple[str, str]]]
    log: Path


@dataclass
class Stack:
    name: str
    root: Path
    source_url: str
    s3: MotoS3
    pg: PostgresStack
    spark_master: str
    extra_env: dict[str, str] = field(default_factory=dict)
    runs: list[StackRun] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dagster_home = dagster_home(self.root / "dagster-home")

    def env(self) -> dict[str, str]:
        """The dagster-code service's environment (docker-compose.yml), on loopback."""
        return embedded_env(
            self.root / "etl-home",
            SOURCE_DB_URL=self.source_url,
            WAREHOUSE_DB_URL=self.pg.warehouse_url,
            SPARK_MASTER=self.spark_master,
            DAGSTER_HOME=str(self.dagster_home),
            **self.s3.env(BUCKET),
            **self.pg.dagster_env(),
            **self.extra_env,
        )

    @contextlib.contextmanager
    def instance(self):
        """The stack's Dagster instance, opened here as the webserver would (its yaml reads DAGSTER_PG_*)."""
        from dagster import DagsterInstance

        with mock.patch.dict(os.environ, self.pg.dagster_env()):
            with DagsterInstance.from_config(str(self.dagster_home)) as instance:
                yield instance

    def run_ids(self) -> list[str]:
        with self.instance() as instance:
            return [run.run_id for run in instance.get_runs()]

    def execute(self, cluster: StandaloneCluster, apps_before: set[str] | None = None) -> StackRun:
        """``dagster job execute`` the whole-platform job against the stack's instance, as a deployment's operator
        would. The run's Spark application is the one that appeared on the cluster since ``apps_before``
        (default: since now; a Connect server's application starts before the run)."""
        before_runs = set(self.run_ids())
        before_apps = application_ids(cluster) if apps_before is None else apps_before
        log = self.root / f"run-{len(self.runs) + 1}.log"
        dagster = Path(sys.executable).with_name("dagster")
        command = [str(dagster), "job", "execute", "-m", "etl_pipeline.definitions", "-j", ALL_ASSETS_JOB]
        with open(log, "w") as out:
            child = subprocess.run(command, env=self.env(), cwd=self.root, stdout=out, stderr=subprocess.STDOUT,
                                   timeout=RUN_TIMEOUT_S)
        assert child.returncode == 0, f"dagster job execute failed ({log}):\n{log.read_text()[-6000:]}"
        [run_id] = set(self.run_ids()) - before_runs
        [app_id] = application_ids(cluster) - before_apps
        run = StackRun(run_id, app_id, self.warehouse(), self.row_versions(), log)
        self.runs.append(run)
        return run

    def warehouse(self) -> dict[str, pd.DataFrame]:
        engine = sa.create_engine(self.pg.admin_warehouse_url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                return {name: read_table(conn, table) for name, table in WAREHOUSE_TABLES.items()}
        finally:
            engine.dispose()

    def row_versions(self) -> dict[str, list[tuple[str, str]]]:
        """Every row's ``xmin`` (the transaction that wrote this version) and ``ctid`` (where it lies), per table:
        an UPDATE, DELETE + INSERT or table rewrite changes them, a no-op load does not."""
        engine = sa.create_engine(self.pg.admin_warehouse_url, poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                return {name: sorted(conn.execute(sa.text(f"SELECT xmin::text, ctid::text FROM {name}")).tuples())
                        for name in WAREHOUSE_TABLES}
        finally:
            engine.dispose()

    def filesystem(self) -> pafs.S3FileSystem:
        return self.s3.lake(f"s3://{BUCKET}").filesystem()

    def gold(self, name: str) -> pd.DataFrame:
        table = DeltaTable(f"s3://{BUCKET}/gold/medical/{name}",
                           storage_options=self.s3.lake(f"s3://{BUCKET}").storage_options())
        return sorted_gold(table.to_pyarrow_table().to_pandas(), name)

    def lake_keys(self) -> list[str]:
        infos = self.filesystem().get_file_info(pafs.FileSelector(BUCKET, recursive=True))
        return sorted(info.path.removeprefix(f"{BUCKET}/") for info in infos if info.type == pafs.FileType.File)


def application_ids(cluster: StandaloneCluster) -> set[str]:
    state = cluster.master_state()
    return {app["id"] for app in state["activeapps"] + state["completedapps"]}


def tasks_per_worker(cluster: StandaloneCluster, app_id: str) -> dict[int, int]:
    """Tasks the application's executors finished on each worker (see the module docstring)."""
    finished = {}
    for number in cluster.worker_numbers:
        state = cluster.worker_state(number)
        executors = [e["id"] for e in state["executors"] + state["finishedexecutors"] if e["appid"] == app_id]
        logs = [cluster.worker_dir(number) / app_id / str(executor) / "stderr" for executor in executors]
        finished[number] = sum(len(FINISHED_TASK.findall(log.read_text(errors="replace"))) for log in logs)
    return finished


def lake_paths_in_executor_logs(cluster: StandaloneCluster, app_id: str) -> dict[int, int]:
    """Lines naming an ``s3a://warehouse/`` path in each worker's executor logs of the application (Hadoop's
    output committer logs each task output it saves; readers log the files they open)."""
    found = {}
    for number in cluster.worker_numbers:
        logs = (cluster.worker_dir(number) / app_id).glob("*/stderr")
        found[number] = sum(log.read_text(errors="replace").count(f"s3a://{BUCKET}/") for log in logs)
    return found


# ------------------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("stack")


@pytest.fixture(scope="module")
def reference(embedded_run: tuple[Path, subprocess.CompletedProcess]) -> Reference:
    """The session's embedded run (``local[*]``, the project's own spark-defaults.conf)."""
    return Reference(embedded_run[0])


@pytest.fixture(scope="module")
def reference_warehouse(reference: Reference) -> dict[str, pd.DataFrame]:
    return reference.warehouse()


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[StandaloneCluster]:
    """Master + 2 workers; like docker-compose.yml's workers, they hold the lake's key in their environment."""
    lake_keys = {"AWS_ACCESS_KEY_ID": MotoS3.access_key, "AWS_SECRET_ACCESS_KEY": MotoS3.secret_key,
                 "AWS_REGION": "us-east-1"}  # fmt: skip
    cluster = StandaloneCluster(root / "standalone", workers=2, cores_per_worker=1, memory_per_worker="1g",
                                environment=lake_keys)
    try:
        cluster.start()
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        unavailable(f"standalone Spark cluster could not start: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def driver_conf_dir(root: Path) -> Path:
    """A directory holding the project's spark-defaults.conf plus :data:`CLUSTER_APP_CONF`."""
    conf = {**parse_spark_defaults(REPO_SPARK_DEFAULTS.read_text()), **CLUSTER_APP_CONF}
    return write_spark_defaults(root / "driver-conf" / "spark-defaults.conf", conf).parent


@pytest.fixture(scope="module")
def source(mysql_server_url: str, data_dir: Path, root: Path) -> Iterator[SourceDatabase]:
    """A MariaDB database and a user of its own (password, privileges on that database only), seeded by
    ``covid-etl seed`` as the compose ``seed`` job does."""
    suffix = uuid.uuid4().hex[:8]
    database, user, password = f"stack_src_{suffix}", f"stack_src_{suffix}", f"pw-{uuid.uuid4().hex}"
    server = sa.make_url(mysql_server_url)
    admin = sa.create_engine(mysql_server_url, poolclass=sa.NullPool)
    hosts = ("127.0.0.1", "localhost")  # how MariaDB names a TCP client on 127.0.0.1 depends on name resolution

    def load_data_count() -> int:
        with admin.connect() as conn:
            return int(conn.execute(sa.text("SHOW GLOBAL STATUS LIKE 'Com_load'")).one()[1])

    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
        for host in hosts:
            conn.execute(sa.text(f"CREATE USER '{user}'@'{host}' IDENTIFIED BY :pw"), {"pw": password})
            conn.execute(sa.text(f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'"))
    try:
        url = server.set(username=user, password=password, database=database).render_as_string(hide_password=False)
        before = load_data_count()
        seeded = covid_etl("seed", "--data-dir", str(data_dir), env=embedded_env(root / "seed-home", SOURCE_DB_URL=url))
        assert seeded.returncode == 0, f"covid-etl seed failed:\n{seeded.stdout}\n{seeded.stderr[-5000:]}"
        yield SourceDatabase(url, seeded, load_data_count() - before)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{database}`"))
            for host in hosts:
                conn.execute(sa.text(f"DROP USER IF EXISTS '{user}'@'{host}'"))
        admin.dispose()


@pytest.fixture(scope="module")
def standalone(
    root: Path, source: SourceDatabase, postgres_server_url: str, cluster: StandaloneCluster, driver_conf_dir: Path,
    reference: Reference, spark_jars: Path,
) -> Iterator[Stack]:
    """The spark:// stack after one run of the job (the reference is built first: one thing at a time)."""
    with s3_lake() as s3, postgres_stack(postgres_server_url) as pg:
        conf = str(driver_conf_dir / "spark-defaults.conf")
        stack = Stack("standalone", root / "standalone-stack", source.url, s3, pg, cluster.master_url,
                      extra_env={"SPARK_DEFAULTS_CONF": conf, "SPARK_CONF_DIR": str(driver_conf_dir)})
        stack.execute(cluster)
        yield stack


@pytest.fixture(scope="module")
def connect(
    root: Path, source: SourceDatabase, postgres_server_url: str, cluster: StandaloneCluster, standalone: Stack,
    spark_jars: Path,
) -> Iterator[Stack]:
    """The sc:// stack after two runs of the job, through a Connect server on the cluster (after the spark://
    run: each application holds both workers' only cores while it lives). The server is stopped right after
    the runs so that its executors' logs are complete."""
    with s3_lake() as s3, postgres_stack(postgres_server_url) as pg:
        server_conf = {
            **parse_spark_defaults(REPO_SPARK_DEFAULTS.read_text()),  # $SPARK_HOME/conf of the image
            **CLUSTER_APP_CONF,
            **classpath_conf(project_packages(), spark_jars),  # as the image's spark-defaults.conf names them
            "spark.hadoop.fs.s3a.endpoint": s3.endpoint_url,
            "spark.hadoop.fs.s3a.connection.ssl.enabled": "false",
        }
        lake_keys = {k: v for k, v in s3.env(BUCKET).items() if k.startswith("AWS_")}
        server = ConnectServer(root / "connect-server", master=cluster.master_url, conf=server_conf,
                               environment=lake_keys)
        apps_before = application_ids(cluster)
        try:
            server.start()
        except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
            unavailable(f"Spark Connect server with the S3A connector could not start: {exc}")
        stack = Stack("connect", root / "connect-stack", source.url, s3, pg, server.url)
        try:
            stack.execute(cluster, apps_before=apps_before)
            stack.execute(cluster, apps_before=apps_before)
        finally:
            server.stop()
        yield stack


# ------------------------------------------------------------------------------------------- the dashboard


@pytest.fixture
def dashboard(standalone: Stack, root: Path) -> Iterator[str]:
    """``covid-etl dashboard`` over the spark:// stack's warehouse, connected as the read-only role."""
    port = free_port()
    log_path = root / "dashboard.log"
    env = embedded_env(root / "dashboard-home", WAREHOUSE_DB_URL=standalone.pg.dashboard_url, DASH_MAP_STYLE="white-bg")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "etl_pipeline.cli", "dashboard", "--port", str(port)],
                                   cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_port(port, timeout=60):
            pytest.fail(f"covid-etl dashboard did not start:\n{log_path.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=20)


def dash_callback(base_url: str, output: str, outputs: list[dict] | dict, inputs: list[dict]) -> dict:
    """POST one callback the way the browser does; return its outputs."""
    body = {"output": output, "outputs": outputs, "inputs": inputs, "state": [],
            "changedPropIds": [f"{inputs[0]['id']}.{inputs[0]['property']}"]}  # fmt: skip
    request = urllib.request.Request(f"{base_url}/_dash-update-component", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        assert response.status == 200
        return json.load(response)["response"]


def plotly_array(value: list | dict) -> list:
    """A Plotly JSON array: a plain list, or Plotly 6's base64 typed array ``{"dtype", "bdata"}``."""
    if isinstance(value, dict):
        return np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"])).tolist()
    return list(value)


# ------------------------------------------------------------------------------------------- tests


def test_the_reference_run_holds_one_row_per_day_and_country(
    reference: Reference, reference_warehouse: dict[str, pd.DataFrame], data_dir: Path
) -> None:
    """The reference must hold the data, or equal outputs would prove nothing."""
    series = pd.read_csv(data_dir / "covid19_time_series.csv", usecols=["Date", "Country/Region"])
    expected = len(series.drop_duplicates())
    daily = "covid19_daily_stats"
    assert len(reference.gold(daily)) == len(reference_warehouse[daily]) == expected
    assert all(len(reference.gold(table)) > 0 for table in WAREHOUSE_TABLES)


def test_the_source_is_seeded_by_load_data_as_its_own_user(source: SourceDatabase) -> None:
    output = source.seeded.stdout + source.seeded.stderr
    assert NO_LOAD_DATA not in output
    assert source.load_data_statements >= len(SOURCE_TABLES)  # the server counted the bulk loads (Com_load)
    assert "***" in source.seeded.stdout and sa.make_url(source.url).password not in output
    engine = sa.create_engine(source.url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            databases = set(conn.execute(sa.text("SHOW DATABASES")).scalars())
            tables = set(conn.execute(sa.text("SHOW TABLES")).scalars())
    finally:
        engine.dispose()
    assert databases == {"information_schema", sa.make_url(source.url).database}  # sees nothing else
    assert set(SOURCE_TABLES) <= tables


def assert_both_workers_ran_tasks(cluster: StandaloneCluster, app_id: str) -> None:
    finished = tasks_per_worker(cluster, app_id)
    assert sorted(finished) == [1, 2] and min(finished.values()) >= 1, f"finished tasks per worker: {finished}"
    lake = lake_paths_in_executor_logs(cluster, app_id)
    assert min(lake.values()) >= 1, f"executor log lines naming s3a://{BUCKET}/ per worker: {lake}"
    # the S3A jars came from the workers' own cache (class path), not shipped by the driver into each executor
    shipped = [str(p) for n in cluster.worker_numbers for p in (cluster.worker_dir(n) / app_id).rglob("*.jar")]
    assert shipped == [], shipped


def assert_same_lake_and_gold(stack: Stack, reference: Reference) -> None:
    keys = stack.lake_keys()
    assert lake_tables(keys) == reference.lake_tables()  # the same tables from both IO managers
    for table in lake_tables(keys):  # each a Delta table, written by one commit per run
        assert f"{table}/_delta_log/00000000000000000000.json" in keys, table
    for name in sorted(WAREHOUSE_TABLES):
        pd.testing.assert_frame_equal(stack.gold(name), reference.gold(name), check_exact=True, obj=f"gold {name}")


def assert_same_warehouse(warehouse: dict[str, pd.DataFrame], reference: dict[str, pd.DataFrame]) -> None:
    assert set(warehouse) == set(reference) == set(WAREHOUSE_TABLES)
    for name in sorted(WAREHOUSE_TABLES):
        assert len(warehouse[name]) > 0, name
        pd.testing.assert_frame_equal(warehouse[name], reference[name], check_exact=True, obj=f"warehouse {name}")


def assert_recorded_in_postgres(stack: Stack, reference: Reference) -> None:
    """Every run of the stack is in its Postgres storage: SUCCESS, holding the writers' pool, the same rows per asset
    and the same outcome (and metadata) of every asset check as the embedded run."""
    from dagster_postgres import PostgresEventLogStorage, PostgresRunStorage

    expected = reference.run_record()
    assert len(expected.row_counts) == 21 and len(expected.checks) == 30  # every asset and every check ran
    with stack.instance() as instance:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert sorted(run.run_id for run in instance.get_runs()) == sorted(run.run_id for run in stack.runs)
        for run in stack.runs:
            record = run_record(instance, run.run_id)
            assert record.status == "SUCCESS"
            assert instance.get_run_by_id(run.run_id).run_op_concurrency.all_pools == {WRITES_POOL}
            assert record.row_counts == expected.row_counts
            assert record.checks == expected.checks
    # ... and physically in the stack's own Dagster database, as its own user
    n = stack.pg.names
    engine = sa.create_engine(stack.pg.url(n["DAGSTER_PG_USER"], n["DAGSTER_PG_PASSWORD"], n["DAGSTER_PG_DB"]),
                              poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            runs = conn.execute(sa.text("SELECT run_id, status FROM runs")).tuples().all()
            events = conn.execute(sa.text("SELECT dagster_event_type, count(*) FROM event_logs "
                                          "WHERE dagster_event_type IN ('ASSET_MATERIALIZATION', "
                                          "'ASSET_CHECK_EVALUATION') GROUP BY 1")).tuples().all()
    finally:
        engine.dispose()
    assert sorted(runs) == sorted((run.run_id, "SUCCESS") for run in stack.runs)
    assert dict(events) == {"ASSET_MATERIALIZATION": 21 * len(stack.runs), "ASSET_CHECK_EVALUATION": 30 * len(stack.runs)}


def test_the_standalone_run_ran_tasks_on_both_workers(cluster: StandaloneCluster, standalone: Stack) -> None:
    [run] = standalone.runs
    [app] = [a for a in cluster.master_state()["completedapps"] if a["id"] == run.app_id]
    assert app["name"] == "covid19-etl"
    assert_both_workers_ran_tasks(cluster, run.app_id)


def test_the_standalone_stack_equals_the_embedded_run(
    standalone: Stack, reference: Reference, reference_warehouse: dict[str, pd.DataFrame]
) -> None:
    assert_same_lake_and_gold(standalone, reference)
    assert_same_warehouse(standalone.runs[0].warehouse, reference_warehouse)


def test_the_run_is_recorded_in_the_postgres_dagster_instance(standalone: Stack, reference: Reference) -> None:
    assert_recorded_in_postgres(standalone, reference)


def test_the_dashboard_shows_the_warehouse_read_as_the_read_only_role(dashboard: str, standalone: Stack) -> None:
    with urllib.request.urlopen(f"{dashboard}/", timeout=30) as response:
        assert response.status == 200 and response.headers["Server"] == "waitress"
    warehouse = standalone.runs[-1].warehouse
    last_day = int(warehouse["dim_date"]["day_index"].max())
    last_date = warehouse["dim_date"].set_index("day_index").loc[last_day, "date"]

    shown = dash_callback(
        dashboard, "..spread-map.figure...map-date.children..",
        [{"id": "spread-map", "property": "figure"}, {"id": "map-date", "property": "children"}],
        [{"id": "map-day", "property": "value", "value": last_day},
         {"id": "map-measure", "property": "value", "value": "confirmed"}],
    )
    assert shown["map-date"]["children"] == pd.Timestamp(last_date).strftime("%-d %B %Y") == "27 July 2020"
    (trace,) = shown["spread-map"]["figure"]["data"]
    facts = warehouse["fact_location_daily"]
    day = facts[(facts["date"] == last_date) & (facts["confirmed"] > 0)
                & facts["latitude"].notna() & facts["longitude"].notna()]
    labels = [f"{p}, {c}" if p else c for p, c in zip(day["province_state"], day["country_region"], strict=True)]
    expected = sorted(zip(labels, day["confirmed"].astype(int), day["deaths"].astype(int), strict=True))
    assert sorted((row[0], row[3], row[4]) for row in trace["customdata"]) == expected
    assert sum(row[3] for row in trace["customdata"]) == 16_480_485

    daily = warehouse["covid19_daily_stats"]
    rates = dash_callback(
        dashboard, "..spread-map.figure...map-date.children..",
        [{"id": "spread-map", "property": "figure"}, {"id": "map-date", "property": "children"}],
        [{"id": "map-day", "property": "value", "value": last_day},
         {"id": "map-measure", "property": "value", "value": "confirmed_per_100k"}],
    )
    (trace,) = rates["spread-map"]["figure"]["data"]
    on_last_day = daily[(daily["date"] == last_date) & (daily["confirmed_per_100k"] > 0)].set_index("country_region")
    assert {row[0]: row[2] for row in trace["customdata"]} == pytest.approx(
        on_last_day["confirmed_per_100k"].to_dict(), rel=1e-12)

    trend = dash_callback(
        dashboard, "..trend-graph.figure...trend-note.children..",
        [{"id": "trend-graph", "property": "figure"}, {"id": "trend-note", "property": "children"}],
        [{"id": "trend-countries", "property": "value", "value": ["Vietnam"]},
         *({"id": f"trend-{name}", "property": "value", "value": value} for name, value in (
             ("count", "cases"), ("mode", "cumulative"), ("scale", "absolute"), ("axis", "linear"),
             ("align", "date")))],
    )
    (confirmed,) = trend["trend-graph"]["figure"]["data"]
    vietnam = daily[daily["country_region"] == "Vietnam"].sort_values("date")
    assert plotly_array(confirmed["y"]) == vietnam["confirmed"].astype(int).tolist()
    assert len(vietnam) == len(warehouse["dim_date"])


def test_the_read_only_role_is_refused_writes(standalone: Stack) -> None:
    import psycopg2.errors

    engine = sa.create_engine(standalone.pg.dashboard_url, poolclass=sa.NullPool)
    try:
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM covid19_continent_stats")).scalar_one() == len(
                standalone.runs[-1].warehouse["covid19_continent_stats"])
            with pytest.raises(sa.exc.InternalError) as read_only:
                conn.execute(sa.text("DELETE FROM covid19_continent_stats"))
            assert isinstance(read_only.value.orig, psycopg2.errors.ReadOnlySqlTransaction)
        # Read-only sessions are only the first line: with them switched off, the privileges still refuse.
        for statement in ("INSERT INTO covid19_continent_stats (continent, total_confirmed, total_deaths, "
                          "total_recovered, total_active, number_of_countries) VALUES ('Atlantis', 1, 0, 0, 1, 1)",
                          "UPDATE dim_country SET population = 0",
                          "CREATE TABLE dashboard_notes (id int)"):
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("SET default_transaction_read_only = off"))
                with pytest.raises(sa.exc.ProgrammingError) as refused:
                    conn.execute(sa.text(statement))
                assert isinstance(refused.value.orig, psycopg2.errors.InsufficientPrivilege), statement
    finally:
        engine.dispose()
    after = standalone.warehouse()
    for name in WAREHOUSE_TABLES:
        pd.testing.assert_frame_equal(after[name], standalone.runs[-1].warehouse[name], check_exact=True)


def test_the_connect_runs_ran_tasks_on_both_workers(cluster: StandaloneCluster, connect: Stack) -> None:
    first, second = connect.runs
    assert first.app_id == second.app_id  # the server's one application, now stopped
    assert first.app_id in {a["id"] for a in cluster.master_state()["completedapps"]}
    assert_both_workers_ran_tasks(cluster, first.app_id)


def test_the_connect_stack_equals_the_embedded_run(
    connect: Stack, reference: Reference, reference_warehouse: dict[str, pd.DataFrame]
) -> None:
    assert_same_lake_and_gold(connect, reference)
    assert_same_warehouse(connect.runs[0].warehouse, reference_warehouse)
    assert_recorded_in_postgres(connect, reference)


def test_a_second_run_changes_no_warehouse_row(connect: Stack) -> None:
    """The repeated run (through the Connect server) loads the same gold: no row of the warehouse changes."""
    first, second = connect.runs
    assert_same_warehouse(second.warehouse, first.warehouse)
    # not one row rewritten: every row version (xmin) is the first run's, where it was
    assert second.row_versions == first.row_versions
    assert all(len(versions) > 0 for versions in first.row_versions.values())


def spark_processes(root: Path) -> set[int]:
    """Processes with ``root`` on their command line: every JVM started here has a conf directory under it."""
    listed = subprocess.run(["pgrep", "-f", f"{root}/"], capture_output=True, text=True).stdout
    return {int(pid) for pid in listed.split()}


def test_no_secret_reaches_a_run_log_or_the_dagster_storage(
    standalone: Stack, connect: Stack, source: SourceDatabase
) -> None:
    for stack in (standalone, connect):
        secrets = [*stack.pg.secrets(), sa.make_url(source.url).password, MotoS3.secret_key]
        logs = "".join(run.log.read_text() for run in stack.runs)
        assert "SUCCESS" in logs and not [secret for secret in secrets if secret in logs], stack.name
        engine = sa.create_engine(stack.pg.admin_url(stack.pg.names["DAGSTER_PG_DB"]), poolclass=sa.NullPool)
        try:
            with engine.connect() as conn:
                for table in ("runs", "event_logs"):
                    dump = conn.execute(sa.text(f"SELECT string_agg(t::text, '') FROM {table} t")).scalar_one()
                    assert dump and not [secret for secret in secrets if secret in dump], f"{stack.name}: {table}"
        finally:
            engine.dispose()


def test_stopping_by_pid_files_leaves_no_spark_process(cluster: StandaloneCluster, root: Path) -> None:
    """Runs last: stopping the master and workers by their pid files leaves no process started by this module
    (daemons, drivers, executors, the Connect server) running."""
    daemons = set(cluster.pids())
    assert len(daemons) == 3 and daemons <= spark_processes(root)  # the check below can see what it looks for
    cluster.stop()
    assert cluster.pid_files() == []
    assert spark_processes(root) == set()
