"""Shared fixtures: real servers on 127.0.0.1, each test session with its own databases.

A server that cannot be reached skips the test on a developer laptop, but under ``CI=true`` that is a
failure (``unavailable``), never a silent skip.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("COVID_TEST_DATA_DIR", REPO_ROOT.parent / "shared" / "data" / "covid19"))

#: JHU name -> worldometer name (after trimming) where they differ, written out by hand from
#: shared/data/README.md so that tests do not trust the package's own reference table.
WORLDOMETER_NAMES = {
    "Burma": "Myanmar", "Central African Republic": "CAR", "Congo (Brazzaville)": "Congo",
    "Congo (Kinshasa)": "DRC", "Cote d'Ivoire": "Ivory Coast", "Holy See": "Vatican City",
    "Saint Vincent and the Grenadines": "St. Vincent Grenadines", "South Korea": "S. Korea", "Taiwan*": "Taiwan",
    "US": "USA", "United Arab Emirates": "UAE", "United Kingdom": "UK", "West Bank and Gaza": "Palestine",
}
#: The JHU countries worldometer lacks, with the continent a reviewer gives them.
ABSENT_FROM_WORLDOMETER = {"China": "Asia", "Kosovo": "Europe"}

#: The tests' own admin role on each server, created by ``.ci/servers`` (a test password, not a secret).
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_ADMIN_URL", "mysql+pymysql://etl_admin:etl-admin-test-pw@127.0.0.1:3306")
POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_ADMIN_URL", "postgresql+psycopg2://etl_admin:etl-admin-test-pw@127.0.0.1:5432")


#: ``--spark-engine``: the engine under test (see README, "Spark engines").
ENGINE_MASTERS = {"sail": "sail", "spark": "local[2]"}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--spark-engine", choices=sorted(ENGINE_MASTERS), default="sail",
                     help="sail (the embedded default, a Sail server in a child process; every test) or spark "
                          "(Apache Spark, local[2]; only the tests marked `engines`, which hold for both engines)")


#: The ``SPARK_MASTER`` of the ``covid-etl`` child processes (:func:`embedded_env`): unset (the embedded default,
#: Sail) unless ``--spark-engine=spark`` (``local[*]``).
_CHILD_MASTER: dict[str, str] = {}


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--spark-engine") == "spark":
        _CHILD_MASTER["SPARK_MASTER"] = "local[*]"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--spark-engine") == "sail":
        return
    kept = [item for item in items if item.get_closest_marker("engines")]
    config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    items[:] = kept


@pytest.fixture(scope="session")
def spark_engine(request: pytest.FixtureRequest) -> str:
    """``spark`` or ``sail``: the ``--spark-engine`` these tests run on."""
    return request.config.getoption("--spark-engine")


@pytest.fixture(scope="session")
def engine_master(spark_engine: str) -> str:
    """The ``SPARK_MASTER`` of the engine under test (``local[2]`` or ``sail``)."""
    return ENGINE_MASTERS[spark_engine]


def unavailable(reason: str) -> None:
    """Skip on a laptop; fail under CI, where every server must be up."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"required test server unavailable under CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return True
        except OSError:
            time.sleep(0.1)
    return False


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (SHARED_DATA / "covid19_time_series.csv").exists():
        unavailable(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


def _unique_name(prefix: str) -> str:
    return f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def mysql_server_url() -> str:
    """Admin URL of the MariaDB/MySQL server (no database)."""
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(MYSQL_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any connection problem means "not available"
        unavailable(f"MySQL at {MYSQL_ADMIN_URL} unreachable: {exc}")
    return MYSQL_ADMIN_URL


@pytest.fixture
def mysql_url(mysql_server_url: str):
    """A fresh MySQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = _unique_name("etl_test")
    admin = sa.create_engine(mysql_server_url)
    with admin.begin() as conn:
        conn.execute(sa.text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    try:
        yield f"{mysql_server_url}/{name}"
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_server_url() -> str:
    import sqlalchemy as sa

    try:
        engine = sa.create_engine(f"{POSTGRES_ADMIN_URL}/postgres")
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # noqa: BLE001
        unavailable(f"PostgreSQL at {POSTGRES_ADMIN_URL} unreachable: {exc}")
    return POSTGRES_ADMIN_URL


@pytest.fixture
def postgres_url(postgres_server_url: str):
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    import sqlalchemy as sa

    name = _unique_name("etl_test")
    admin = sa.create_engine(f"{postgres_server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{postgres_server_url}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class MotoS3:
    """A real S3 HTTP endpoint (moto's standalone server) on 127.0.0.1."""

    access_key = "testing-access-key"
    secret_key = "testing-secret-key-not-real"

    def __init__(self) -> None:
        self.port = free_port()
        self.endpoint_url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def lake(self, url: str, endpoint_url: str | None = None):
        """A :class:`~etl_pipeline.resources.lake.LakeResource` at ``url`` on this server (or ``endpoint_url``)."""
        from etl_pipeline.resources.lake import LakeResource

        return LakeResource(url=url, s3_endpoint_url=endpoint_url or self.endpoint_url,
                            aws_access_key_id=self.access_key, aws_secret_access_key=self.secret_key)

    def start(self) -> None:
        beside_python = Path(sys.executable).with_name("moto_server")  # this venv's moto, not another on PATH
        exe = str(beside_python) if beside_python.exists() else shutil.which("moto_server") or "moto_server"
        self.process = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1)
                return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto_server did not start")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def reset(self) -> None:
        """Forget every bucket and object."""
        req = urllib.request.Request(f"{self.endpoint_url}/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=5)

    def env(self, bucket: str = "warehouse") -> dict[str, str]:
        return {
            "LAKE_URL": f"s3://{bucket}",
            "S3_ENDPOINT_URL": self.endpoint_url,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }


@contextlib.contextmanager
def running_moto() -> Iterator[MotoS3]:
    """An S3 server of the caller's own, stopped afterwards (unavailable, see :func:`unavailable`, if it cannot start)."""
    server = MotoS3()
    try:
        server.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"moto_server could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def s3_server():
    with running_moto() as server:
        yield server


@pytest.fixture
def s3(s3_server: MotoS3) -> MotoS3:
    """The S3 server, emptied before the test."""
    s3_server.reset()
    return s3_server


# -- whole-pipeline runs ------------------------------------------------------------------------------------

#: Variables that would point a run away from ETL_HOME's embedded defaults.
DEPLOYMENT_VARIABLES = ("SOURCE_DB_URL", "WAREHOUSE_DB_URL", "LAKE_URL", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                        "AWS_SECRET_ACCESS_KEY", "SPARK_MASTER", "COVID_DATA_DIR", "ALERT_WEBHOOK_URL",
                        "DAGSTER_HOME")


def embedded_env(etl_home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a ``covid-etl`` subprocess: embedded defaults under ``etl_home`` (on the
    ``--spark-engine`` under test) plus ``overrides``."""
    env = {k: v for k, v in os.environ.items() if k not in DEPLOYMENT_VARIABLES}
    env.update(ETL_HOME=str(etl_home), SPARK_LOCAL_IP="127.0.0.1", PYSPARK_PYTHON=sys.executable,
               COVID_DATA_BASE_URL=f"http://127.0.0.1:{free_port()}",  # never download from the internet
               **_CHILD_MASTER)
    env.update(overrides)
    return env


def covid_etl(*args: str, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess:
    """Run ``covid-etl`` in a child process (its own Spark session, its own Dagster instance)."""
    return subprocess.run([sys.executable, "-m", "etl_pipeline.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="session")
def embedded_run(tmp_path_factory: pytest.TempPathFactory, data_dir: Path):
    """One complete embedded run over the shared data, shared by the tests that only read its results."""
    home = tmp_path_factory.mktemp("embedded_run")
    result = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    assert result.returncode == 0, f"covid-etl run failed:\n{result.stdout}\n{result.stderr}"
    return home, result


# -- PostgreSQL scripts run with psql -------------------------------------------------------------------------


def psql_script(
    server_url: str, script: Path, variables: dict[str, str] | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``script`` with ``psql`` as the admin user of ``server_url`` (no psqlrc, database ``postgres``), the way
    the postgres image runs its init scripts: only ``env`` as the environment (plus the admin's password as
    ``PGPASSWORD``, since the server asks for passwords over TCP) and ``variables`` as ``-v name=value``."""
    import sqlalchemy as sa

    exe = shutil.which("psql")
    if exe is None:
        unavailable("psql not found (Debian package postgresql-client)")
    server = sa.make_url(server_url)
    command = [exe, "-X", "-h", server.host or "127.0.0.1", "-p", str(server.port or 5432), "-U", server.username,
               "-d", "postgres"]
    for name, value in (variables or {}).items():
        command += ["-v", f"{name}={value}"]
    child_env = {**(env or {}), "PGPASSWORD": server.password or "", "PGCONNECT_TIMEOUT": "10"}
    return subprocess.run([*command, "-f", str(script)], capture_output=True, text=True, timeout=60, env=child_env)


@contextlib.contextmanager
def deployment_roles(server_url: str, prefix: str = "") -> Iterator[dict[str, str]]:
    """Unique names and passwords for the scripts of ``deploy/postgres/init`` (the variables ``.env`` gives them);
    every database and role they name is dropped afterwards."""
    import sqlalchemy as sa

    suffix = uuid.uuid4().hex[:8]
    names = {
        "WAREHOUSE_DB_NAME": f"{prefix}wh_{suffix}", "WAREHOUSE_DB_USER": f"{prefix}etl_{suffix}",
        "WAREHOUSE_DB_PASSWORD": f"pw-{uuid.uuid4().hex}",
        "DAGSTER_PG_DB": f"{prefix}dg_{suffix}", "DAGSTER_PG_USER": f"{prefix}dagster_{suffix}",
        "DAGSTER_PG_PASSWORD": f"pw-{uuid.uuid4().hex}",
        "DASHBOARD_DB_USER": f"dashboard_ro_{suffix}", "DASHBOARD_DB_PASSWORD": f"pw-{uuid.uuid4().hex}",
    }  # fmt: skip
    try:
        yield names
    finally:
        admin = sa.create_engine(f"{server_url}/postgres", isolation_level="AUTOCOMMIT", poolclass=sa.NullPool)
        with admin.connect() as conn:
            for database in (names["WAREHOUSE_DB_NAME"], names["DAGSTER_PG_DB"]):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            for role in (names["DASHBOARD_DB_USER"], names["WAREHOUSE_DB_USER"], names["DAGSTER_PG_USER"]):
                conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@pytest.fixture(scope="session")
def spark_jars() -> Path:
    """The Ivy cache holding the Delta and S3A jars (``SPARK_JARS_IVY`` or its default), fetched once if missing: what
    ``covid-etl fetch-jars`` does, in a child process (it starts a JVM of its own)."""
    from etl_pipeline.spark_jars import delta_packages, ivy_dir, manifest_path, project_packages

    ivy = ivy_dir()
    if not all(manifest_path(packages, ivy).is_file() for packages in (delta_packages(), project_packages())):
        done = subprocess.run([sys.executable, "-m", "etl_pipeline.spark_jars", "--ivy", str(ivy)], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=1200,
                              env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
        if done.returncode != 0:
            unavailable(f"the JVM jars could not be fetched into {ivy}: {done.stderr[-2000:]}")
    return ivy
