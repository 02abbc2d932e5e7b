"""The whole pipeline (``covid-etl run``) on a standalone Spark cluster and through Spark Connect.

A master and two 1-core workers are started once for the module with ``sbin/spark-daemon.sh`` (pid files). Two
runs, each a subprocess with its own ``ETL_HOME`` (a process that opened a Connect session cannot go back to
classic Spark): ``SPARK_MASTER=spark://...``, then ``SPARK_MASTER=sc://...`` against a Connect server whose own
driver runs on the same cluster. Their gold Parquet and warehouse tables must equal those of the session's
embedded run (``local[*]``, conftest's ``embedded_run``).

"Both workers ran tasks" is proven per application from what the workers themselves record: each worker's
``/json/`` names the executors it launched for the application (``appid``, ``id``), and each executor's log in
that worker's work directory (``<work dir>/<app id>/<executor id>/stderr``) has one ``Finished task`` line per
task it ran. Every application asks for one 1-core executor per worker and waits until both have registered
before its first job, so with 8 shuffle partitions both executors get tasks.
"""

from __future__ import annotations

import contextlib
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from etl_pipeline.resources.spark import REPO_SPARK_DEFAULTS, parse_spark_defaults
from etl_pipeline.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline_tests.conftest import covid_etl, embedded_env, unavailable
from etl_pipeline_tests.spark_servers import ConnectServer, StandaloneCluster, write_spark_defaults

pytestmark = pytest.mark.cluster

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


@dataclass(frozen=True)
class PipelineRun:
    """The outputs of one ``covid-etl run`` in its ``ETL_HOME``."""

    home: Path

    def gold(self, table: str) -> pd.DataFrame:
        frame = pq.read_table(self.home / "lake" / "gold" / "medical" / f"{table}.pq").to_pandas()
        return frame.sort_values(list(WAREHOUSE_TABLES[table].primary_key), ignore_index=True)

    def gold_tables(self) -> set[str]:
        return {path.name.removesuffix(".pq") for path in (self.home / "lake" / "gold" / "medical").glob("*.pq")}

    def warehouse(self, table: str) -> pd.DataFrame:
        order = ", ".join(WAREHOUSE_TABLES[table].primary_key)
        with contextlib.closing(sqlite3.connect(self.home / "warehouse.db")) as db:
            return pd.read_sql_query(f"SELECT * FROM {table} ORDER BY {order}", db)


def run_on_cluster(home: Path, data_dir: Path, master: str, conf_dir: Path) -> PipelineRun:
    """``covid-etl run`` in a subprocess with ``SPARK_MASTER=master`` and the driver settings in ``conf_dir``.

    ``conf_dir`` goes both to the session provider (``SPARK_DEFAULTS_CONF``) and to the JVM launcher
    (``SPARK_CONF_DIR``), which also puts it on a driver JVM's command line for the leak check."""
    defaults = str(conf_dir / "spark-defaults.conf")
    env = embedded_env(home, SPARK_MASTER=master, SPARK_DEFAULTS_CONF=defaults, SPARK_CONF_DIR=str(conf_dir))
    child = covid_etl("run", "--data-dir", str(data_dir), env=env, timeout=RUN_TIMEOUT_S)
    assert child.returncode == 0, f"covid-etl run failed:\n{child.stdout}\n{child.stderr[-5000:]}"
    return PipelineRun(home)


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


@dataclass(frozen=True)
class ClusterRun:
    run: PipelineRun
    app_id: str


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cluster")


@pytest.fixture(scope="module")
def cluster(root: Path) -> Iterator[StandaloneCluster]:
    cluster = StandaloneCluster(root / "standalone", workers=2, cores_per_worker=1, memory_per_worker="1g")
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
def reference(embedded_run: tuple[Path, subprocess.CompletedProcess]) -> PipelineRun:
    """The session's embedded run (``local[*]``, the project's own spark-defaults.conf)."""
    return PipelineRun(embedded_run[0])


@pytest.fixture(scope="module")
def standalone_run(cluster: StandaloneCluster, driver_conf_dir: Path, root: Path, data_dir: Path) -> ClusterRun:
    before = application_ids(cluster)
    run = run_on_cluster(root / "standalone-run", data_dir, cluster.master_url, driver_conf_dir)
    [app_id] = application_ids(cluster) - before
    return ClusterRun(run, app_id)


@pytest.fixture(scope="module")
def connect_run(
    cluster: StandaloneCluster, standalone_run: ClusterRun, driver_conf_dir: Path, root: Path, data_dir: Path
) -> ClusterRun:
    """Runs after ``standalone_run``: each application holds both workers' only cores while it lives."""
    server = ConnectServer(root / "connect", master=cluster.master_url, conf=CLUSTER_APP_CONF)
    before = application_ids(cluster)
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        unavailable(f"Spark Connect server could not start: {exc}")
    try:
        run = run_on_cluster(root / "connect-run", data_dir, server.url, driver_conf_dir)
    finally:
        server.stop()
    [app_id] = application_ids(cluster) - before
    return ClusterRun(run, app_id)


def assert_both_workers_ran_tasks(cluster: StandaloneCluster, app_id: str) -> None:
    finished = tasks_per_worker(cluster, app_id)
    assert sorted(finished) == [1, 2] and min(finished.values()) >= 1, f"finished tasks per worker: {finished}"


def assert_same_outputs(run: PipelineRun, reference: PipelineRun) -> None:
    assert run.gold_tables() == reference.gold_tables() == set(WAREHOUSE_TABLES)
    for table in sorted(WAREHOUSE_TABLES):
        pd.testing.assert_frame_equal(run.gold(table), reference.gold(table), check_exact=True, obj=f"gold {table}")
        pd.testing.assert_frame_equal(
            run.warehouse(table), reference.warehouse(table), check_exact=True, obj=f"warehouse {table}"
        )


def test_the_reference_run_holds_one_row_per_day_and_country(reference: PipelineRun, data_dir: Path) -> None:
    """The reference must hold the data, or equal outputs would prove nothing."""
    series = pd.read_csv(data_dir / "covid19_time_series.csv", usecols=["Date", "Country/Region"])
    expected = len(series.drop_duplicates())
    daily = "covid19_daily_stats"
    assert len(reference.gold(daily)) == len(reference.warehouse(daily)) == expected
    assert all(len(reference.gold(table)) > 0 for table in WAREHOUSE_TABLES)


def test_the_standalone_run_ran_tasks_on_both_workers(cluster: StandaloneCluster, standalone_run: ClusterRun) -> None:
    [app] = [a for a in cluster.master_state()["completedapps"] if a["id"] == standalone_run.app_id]
    assert app["name"] == "covid19-etl"
    assert_both_workers_ran_tasks(cluster, standalone_run.app_id)


def test_the_standalone_run_equals_the_embedded_run(standalone_run: ClusterRun, reference: PipelineRun) -> None:
    assert_same_outputs(standalone_run.run, reference)


def test_the_connect_run_ran_tasks_on_both_workers(cluster: StandaloneCluster, connect_run: ClusterRun) -> None:
    assert_both_workers_ran_tasks(cluster, connect_run.app_id)


def test_the_connect_run_equals_the_embedded_run(connect_run: ClusterRun, reference: PipelineRun) -> None:
    assert_same_outputs(connect_run.run, reference)


def spark_processes(root: Path) -> set[int]:
    """Processes with ``root`` on their command line: every JVM started here has a conf directory under it."""
    listed = subprocess.run(["pgrep", "-f", f"{root}/"], capture_output=True, text=True).stdout
    return {int(pid) for pid in listed.split()}


def test_stopping_by_pid_files_leaves_no_spark_process(cluster: StandaloneCluster, root: Path) -> None:
    """Runs last: stopping the master and workers by their pid files leaves no process started by this module
    (daemons, drivers, executors, the Connect server) running."""
    daemons = set(cluster.pids())
    assert len(daemons) == 3 and daemons <= spark_processes(root)  # the check below can see what it looks for
    cluster.stop()
    assert cluster.pid_files() == []
    assert spark_processes(root) == set()
