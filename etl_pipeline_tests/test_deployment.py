"""The deployment files, tested with what runs without a Docker engine.

- docker-compose.yml through a real Compose parser (Debian's ``docker-compose config``, else ``docker compose
  config``) with a ``.env`` made from ``.env.example`` whose secrets are replaced by unique tokens, so the test
  can follow each secret to the services that receive it;
- the PostgreSQL init scripts run by ``psql`` against the real server on 127.0.0.1;
- deploy/dagster.yaml loaded by Dagster against that server;
- the Dockerfile's jar step (etl_pipeline/spark_jars.py run on its own) against Maven Central;
- the Dockerfile, .dockerignore and spark-defaults.conf read as text.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
import uuid
import zipfile
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from etl_pipeline.resources.spark_conf import parse_spark_defaults, resolve_conf_file
from etl_pipeline.spark_jars import DELTA_CONF, s3a_packages
from etl_pipeline_tests.conftest import REPO_ROOT, deployment_roles, psql_script, unavailable

COMPOSE_FILE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / ".env.example"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEPLOY = REPO_ROOT / "deploy"
PG_INIT = DEPLOY / "postgres" / "init"
MAVEN_CENTRAL = "https://repo1.maven.org/maven2"
PYSPARK_JARS = Path(__import__("pyspark").__file__).resolve().parent / "jars"

SERVICES = {
    "mysql", "postgres", "minio", "minio-init",
    "spark-master", "spark-worker-1", "spark-worker-2", "spark-connect",
    "dagster-code", "dagster-webserver", "dagster-daemon", "dashboard", "seed",
}  # fmt: skip
ONE_SHOT = {"minio-init", "seed"}
SECRET_NAME = re.compile(r"PASSWORD|SECRET")
#: A whole value that is one Compose variable reference (``${VAR}`` or ``${VAR:?message}``).
VARIABLE_REFERENCE = re.compile(r"\$\{[A-Z][A-Z0-9_]*(:\?[^}]*)?\}")
URL_PASSWORD = re.compile(r"://[^:/@\s]+:(?P<password>[^@\s]*)@")

#: Who may hold each secret (least privilege: a service gets only the secrets it uses).
SECRET_HOLDERS = {
    "MYSQL_ROOT_PASSWORD": {"mysql"},
    "MYSQL_PASSWORD": {"mysql", "seed", "dagster-code"},
    "POSTGRES_SUPERUSER_PASSWORD": {"postgres"},
    "WAREHOUSE_DB_PASSWORD": {"postgres", "dagster-code"},
    "DASHBOARD_DB_PASSWORD": {"postgres", "dashboard"},
    "DAGSTER_PG_PASSWORD": {"postgres", "dagster-code", "dagster-webserver", "dagster-daemon"},
    "MINIO_ROOT_PASSWORD": {"minio", "minio-init"},
    "AWS_SECRET_ACCESS_KEY": {"minio-init", "dagster-code", "spark-worker-1", "spark-worker-2", "spark-connect"},
}


# --------------------------------------------------------------------------------------------- compose


def read_env_file(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of a Compose env file (comments and blank lines skipped)."""
    entries = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            entries[name.strip()] = value
    return entries


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    unavailable("no Compose parser: install Debian's docker-compose (or the docker compose plugin)")
    raise AssertionError("unreachable")


def compose_config(env: Mapping[str, str], tmp_path: Path) -> subprocess.CompletedProcess:
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in env.items()))
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE),
         "--env-file", str(env_file), "config"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def example_env() -> dict[str, str]:
    return read_env_file(ENV_EXAMPLE)


@pytest.fixture(scope="module")
def test_env(example_env: dict[str, str]) -> dict[str, str]:
    """``.env.example`` with every secret replaced by a token found nowhere else."""
    return {
        name: f"tok{uuid.uuid4().hex}" if SECRET_NAME.search(name) else value for name, value in example_env.items()
    }


@pytest.fixture(scope="module")
def resolved(test_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict:
    """docker-compose.yml as the Compose parser resolves it with ``test_env`` as ``.env``."""
    result = compose_config(test_env, tmp_path_factory.mktemp("compose"))
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def raw_compose() -> dict:
    """docker-compose.yml before interpolation (YAML anchors and merges applied)."""
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_the_example_env_is_accepted_and_a_missing_secret_is_refused(
    example_env: dict[str, str], tmp_path: Path
) -> None:
    assert compose_config(example_env, tmp_path).returncode == 0
    incomplete = {k: v for k, v in example_env.items() if k != "MINIO_ROOT_PASSWORD"}
    refused = compose_config(incomplete, tmp_path)
    assert refused.returncode != 0
    assert "MINIO_ROOT_PASSWORD" in refused.stderr


def test_env_example_documents_exactly_the_variables_compose_uses(example_env: dict[str, str]) -> None:
    lines = [line for line in COMPOSE_FILE.read_text().splitlines() if not line.lstrip().startswith("#")]
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", "\n".join(lines)))
    assert used <= set(example_env), f"used but not in .env.example: {sorted(used - set(example_env))}"
    # COMPOSE_PROJECT_NAME is read by Compose itself
    assert set(example_env) - used == {"COMPOSE_PROJECT_NAME"}
    for name, value in example_env.items():
        if SECRET_NAME.search(name):
            assert value.startswith("change-me"), f"{name} must be an obvious placeholder, not {value!r}"


def test_the_service_set(resolved: dict) -> None:
    assert set(resolved["services"]) == SERVICES
    assert set(resolved["networks"]) == {"etl"}
    assert all(set(service["networks"]) == {"etl"} for service in resolved["services"].values())


def test_every_long_running_service_has_a_health_check_and_one_shot_jobs_do_not_restart(resolved: dict) -> None:
    for name, service in resolved["services"].items():
        if name in ONE_SHOT:
            assert service["restart"] == "no", name
        else:
            assert service["restart"] == "unless-stopped", name
            assert service["healthcheck"]["test"][0] in ("CMD", "CMD-SHELL"), name


def test_depends_on_waits_for_health_or_successful_completion(resolved: dict) -> None:
    services = resolved["services"]
    for name, service in services.items():
        for dependency, rule in service.get("depends_on", {}).items():
            expected = "service_completed_successfully" if dependency in ONE_SHOT else "service_healthy"
            assert rule["condition"] == expected, f"{name} -> {dependency}"
            assert dependency in ONE_SHOT or "healthcheck" in services[dependency]
    waits_for = {name: set(service.get("depends_on", {})) for name, service in services.items()}
    assert waits_for["seed"] == {"mysql"}
    assert waits_for["minio-init"] == {"minio"}
    assert waits_for["spark-worker-1"] == waits_for["spark-worker-2"] == {"spark-master"}
    assert {"seed", "minio-init", "mysql", "postgres", "spark-master"} <= waits_for["dagster-code"]
    assert waits_for["dagster-webserver"] == waits_for["dagster-daemon"] == {"postgres", "dagster-code"}
    assert waits_for["dashboard"] == {"postgres"}


def _credential_values(raw: dict) -> Iterator[tuple[str, str]]:
    """(where, value) of every password/secret in the raw compose file: secret-named variables and URL passwords."""
    for name, service in raw["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_NAME.search(key):
                yield f"{name}.{key}", str(value)
            for match in URL_PASSWORD.finditer(str(value)):
                yield f"{name}.{key} (URL)", match["password"]


def test_no_credential_is_written_literally(raw_compose: dict, example_env: dict[str, str]) -> None:
    found = list(_credential_values(raw_compose))
    assert len(found) >= 10  # the walk does see them
    for where, value in found:
        assert VARIABLE_REFERENCE.fullmatch(value), f"{where} is not a ${{VAR}} reference: {value!r}"
    text = COMPOSE_FILE.read_text()
    for name, value in example_env.items():
        if SECRET_NAME.search(name):
            assert value not in text


def test_each_secret_reaches_only_the_services_that_use_it(resolved: dict, test_env: dict[str, str]) -> None:
    holders = {
        name: {s for s, service in resolved["services"].items() if test_env[name] in json.dumps(service)}
        for name in test_env
        if SECRET_NAME.search(name)
    }
    assert holders == SECRET_HOLDERS


def test_the_dashboard_reads_the_warehouse_with_the_read_only_user(resolved: dict, test_env: dict[str, str]) -> None:
    services = resolved["services"]
    dashboard = sa.make_url(services["dashboard"]["environment"]["WAREHOUSE_DB_URL"])
    pipeline = sa.make_url(services["dagster-code"]["environment"]["WAREHOUSE_DB_URL"])
    assert dashboard.username == test_env["DASHBOARD_DB_USER"]
    assert dashboard.password == test_env["DASHBOARD_DB_PASSWORD"]
    assert (pipeline.username, pipeline.password) == (test_env["WAREHOUSE_DB_USER"], test_env["WAREHOUSE_DB_PASSWORD"])
    assert dashboard.username != pipeline.username
    assert (dashboard.host, dashboard.port, dashboard.database) == (pipeline.host, pipeline.port, pipeline.database)
    assert services["postgres"]["environment"]["DASHBOARD_DB_USER"] == dashboard.username


def _mounts(service: dict) -> dict[str, str]:
    """target -> source of a resolved service's volumes (Compose v1 prints strings, v2 mappings)."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
            mounts[target] = source
        else:
            mounts[volume["target"]] = volume["source"]
    return mounts


def test_the_lake_bucket_is_created_private(resolved: dict, test_env: dict[str, str]) -> None:
    init = resolved["services"]["minio-init"]
    script = DEPLOY / "minio" / "init.sh"
    assert init["entrypoint"] == ["/bin/sh", "/init.sh"]
    assert _mounts(init)["/init.sh"] == str(script)
    subprocess.run(["sh", "-n", str(script)], check=True)  # a real shell parses it
    text = script.read_text()
    assert 'mc mb --ignore-existing "local/$LAKE_BUCKET"' in text
    assert not re.search(r"mc\s+(anonymous|policy)\s+set", text), "the lake bucket must not get a public policy"
    # the pipeline's key gets the policy written here, limited to the bucket, not a built-in one like readwrite
    created = re.findall(r"mc admin policy create local (\S+)", text)
    assert created == re.findall(r"mc admin policy attach local (\S+)", text) == ["lake-readwrite"]
    assert set(re.findall(r"arn:aws:s3:::([^\"]*)", text)) == {"$LAKE_BUCKET", "$LAKE_BUCKET/*"}
    assert resolved["services"]["dagster-code"]["environment"]["LAKE_URL"] == f"s3://{test_env['LAKE_BUCKET']}"


def test_the_spark_cluster_commands(resolved: dict, test_env: dict[str, str]) -> None:
    services = resolved["services"]
    master = services["spark-master"]["command"]
    assert master[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    assert master[master.index("--port") + 1] == "7077"
    for worker in ("spark-worker-1", "spark-worker-2"):
        command = services[worker]["command"]
        assert command[:3] == ["spark-class", "org.apache.spark.deploy.worker.Worker", "spark://spark-master:7077"]
        assert command[command.index("--cores") + 1] == test_env["SPARK_WORKER_CORES"]
        assert command[command.index("--memory") + 1] == test_env["SPARK_WORKER_MEMORY"]
    connect = services["spark-connect"]["command"]
    assert connect[connect.index("--class") + 1] == "org.apache.spark.sql.connect.service.SparkConnectServer"
    assert connect[connect.index("--master") + 1] == "spark://spark-master:7077"
    assert f"spark.hadoop.fs.s3a.endpoint={test_env['S3_ENDPOINT_URL']}" in connect
    assert services["dagster-code"]["environment"]["SPARK_MASTER"] == test_env["SPARK_MASTER"]


def _port(port: str | dict) -> tuple[str, str, str | None]:
    """(container port, host port, host address) of a resolved port (Compose v1 prints strings, v2 mappings)."""
    if isinstance(port, dict):
        return str(port["target"]), str(port["published"]), port.get("host_ip")
    address, published, target = port.split("/")[0].rsplit(":", 2)
    return target, published, address


def test_the_published_ports(resolved: dict, test_env: dict[str, str]) -> None:
    published = {name: {_port(p) for p in service.get("ports", [])} for name, service in resolved["services"].items()}
    address = test_env["PUBLISH_ADDRESS"]
    assert {name: ports for name, ports in published.items() if ports} == {
        "dagster-webserver": {("3000", test_env["DAGSTER_UI_PORT"], address)},
        "spark-master": {("8080", test_env["SPARK_MASTER_UI_PORT"], address)},
        "minio": {("9001", test_env["MINIO_CONSOLE_PORT"], address)},
        "dashboard": {("8050", test_env["DASHBOARD_PORT"], address)},
    }


def test_the_workspace_points_at_the_code_location_service(resolved: dict) -> None:
    workspace = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())
    [entry] = workspace["load_from"]
    server = entry["grpc_server"]
    code = resolved["services"]["dagster-code"]
    command = code["command"]
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["dg"]["project"]
    assert server["host"] == code["hostname"] == "dagster-code"
    assert str(server["port"]) == command[command.index("-p") + 1]
    assert server["location_name"] == project["code_location_name"]
    assert command[command.index("-m") + 1] == project["code_location_target_module"]
    for name in ("dagster-webserver", "dagster-daemon"):
        assert "/opt/dagster/home/workspace.yaml" in resolved["services"][name]["command"]


def test_every_image_is_pinned(resolved: dict, test_env: dict[str, str]) -> None:
    for name, service in resolved["services"].items():
        image = service["image"]
        if image == test_env["ETL_IMAGE"]:
            assert service["build"]["context"] == str(REPO_ROOT), name
        else:
            tag = image.rpartition(":")[2]
            assert tag != "latest" and re.search(r"\d", tag), f"{name}: unpinned image {image}"


# --------------------------------------------------------------------------------------------- PostgreSQL


def psql(
    server: sa.URL, script: Path, variables: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run ``script`` as the server's admin user like the postgres image's entrypoint does (conftest's
    ``psql_script``)."""
    return psql_script(server.render_as_string(hide_password=False), script, dict(variables or {}), dict(env or {}))


def psql_ok(
    server: sa.URL, script: Path, variables: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> None:
    done = psql(server, script, variables, env)
    assert done.returncode == 0, done.stderr


@pytest.fixture
def warehouse_roles(postgres_server_url: str) -> Iterator[dict[str, str]]:
    """Unique names and passwords for the init scripts; everything they create is dropped afterwards."""
    with deployment_roles(postgres_server_url) as names:
        yield names


def _login(server: sa.URL, user: str, password: str, database: str) -> sa.Engine:
    return sa.create_engine(server.set(username=user, password=password, database=database), poolclass=sa.NullPool)


def test_the_init_scripts_create_the_databases_and_a_read_only_dashboard_role(
    postgres_server_url: str, warehouse_roles: dict[str, str]
) -> None:
    import psycopg2.errors

    server, r = sa.make_url(postgres_server_url), warehouse_roles
    databases, readonly = PG_INIT / "10-databases.sql", PG_INIT / "20-dashboard-readonly.sql"
    by_hand = {"warehouse_db": r["WAREHOUSE_DB_NAME"], "owner": r["WAREHOUSE_DB_USER"],
               "ro_user": r["DASHBOARD_DB_USER"], "ro_password": r["DASHBOARD_DB_PASSWORD"]}  # fmt: skip

    # as the postgres image runs them: values from the environment
    psql_ok(server, databases, env=r)
    owner = _login(server, r["WAREHOUSE_DB_USER"], r["WAREHOUSE_DB_PASSWORD"], r["WAREHOUSE_DB_NAME"])
    with owner.begin() as conn:  # a table that exists before the grant
        conn.execute(sa.text("CREATE TABLE early (id int PRIMARY KEY); INSERT INTO early VALUES (1), (2)"))
    # by hand: psql variables; then both again, the other way round (re-running is safe)
    psql_ok(server, readonly, variables=by_hand)
    psql_ok(server, readonly, env=r)
    again = {"warehouse_db": r["WAREHOUSE_DB_NAME"], "etl_user": r["WAREHOUSE_DB_USER"],
             "etl_password": r["WAREHOUSE_DB_PASSWORD"], "dagster_db": r["DAGSTER_PG_DB"],
             "dagster_user": r["DAGSTER_PG_USER"], "dagster_password": r["DAGSTER_PG_PASSWORD"]}  # fmt: skip
    psql_ok(server, databases, variables=again)

    with owner.begin() as conn:  # tables and views created later, as the pipeline does
        conn.execute(sa.text("CREATE TABLE late (id int PRIMARY KEY, n int); INSERT INTO late VALUES (1, 10), (2, 20)"))
        conn.execute(sa.text("CREATE VIEW late_total AS SELECT sum(n) AS total FROM late"))
    dashboard = _login(server, r["DASHBOARD_DB_USER"], r["DASHBOARD_DB_PASSWORD"], r["WAREHOUSE_DB_NAME"])
    with dashboard.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM early")).scalar_one() == 2
        assert conn.execute(sa.text("SELECT sum(n) FROM late")).scalar_one() == 30
        assert conn.execute(sa.text("SELECT total FROM late_total")).scalar_one() == 30
        assert conn.execute(sa.text("SHOW default_transaction_read_only")).scalar_one() == "on"
    # Read-only sessions are only the first line: with them switched off, the privileges still refuse.
    for statement in ("INSERT INTO late VALUES (3, 30)", "UPDATE early SET id = 5", "CREATE TABLE mine (id int)"):
        with dashboard.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(sa.text("SET default_transaction_read_only = off"))
            with pytest.raises(sa.exc.ProgrammingError) as refused:
                conn.execute(sa.text(statement))
            assert isinstance(refused.value.orig, psycopg2.errors.InsufficientPrivilege), statement
    with pytest.raises(sa.exc.OperationalError, match="permission denied for database"):
        with _login(server, r["DASHBOARD_DB_USER"], r["DASHBOARD_DB_PASSWORD"], r["DAGSTER_PG_DB"]).connect():
            pass
    owner.dispose()
    dashboard.dispose()


def test_the_read_only_script_stops_before_any_change_when_a_value_is_missing(
    postgres_server_url: str, warehouse_roles: dict[str, str]
) -> None:
    server, r = sa.make_url(postgres_server_url), warehouse_roles
    done = psql(server, PG_INIT / "20-dashboard-readonly.sql",
                variables={"warehouse_db": r["WAREHOUSE_DB_NAME"], "owner": r["WAREHOUSE_DB_USER"],
                           "ro_password": r["DASHBOARD_DB_PASSWORD"]})  # fmt: skip
    assert done.returncode == 3
    assert "missing: -v ro_user=... or DASHBOARD_DB_USER" in done.stderr
    assert r["DASHBOARD_DB_PASSWORD"] not in done.stdout + done.stderr
    admin = sa.create_engine(f"{postgres_server_url}/postgres", poolclass=sa.NullPool)
    with admin.connect() as conn:
        roles = conn.execute(sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :r"), {"r": r["DASHBOARD_DB_USER"]})
        assert roles.scalar_one() == 0
    admin.dispose()


# --------------------------------------------------------------------------------------------- Dagster


def test_the_dagster_instance_keeps_everything_in_postgres(postgres_url: str, tmp_path: Path, monkeypatch) -> None:
    from dagster import DagsterInstance
    from dagster._core.instance.config import PoolGranularity
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.run_coordinator import QueuedRunCoordinator
    from dagster_postgres import (
        PostgresEventLogStorage,
        PostgresRunStorage,
        PostgresScheduleStorage,
    )

    config = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    assert config["local_artifact_storage"]["config"]["base_dir"] == "/opt/dagster/storage"
    config["local_artifact_storage"]["config"]["base_dir"] = str(tmp_path / "storage")  # not /opt on this host
    config["compute_logs"]["config"]["base_dir"] = str(tmp_path / "storage" / "compute_logs")
    (tmp_path / "dagster.yaml").write_text(yaml.safe_dump(config))
    db = sa.make_url(postgres_url)
    for name, value in {"DAGSTER_PG_HOST": db.host, "DAGSTER_PG_PORT": str(db.port or 5432),
                        "DAGSTER_PG_DB": db.database, "DAGSTER_PG_USER": db.username,
                        "DAGSTER_PG_PASSWORD": db.password or ""}.items():  # fmt: skip
        monkeypatch.setenv(name, value)

    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))
    try:
        assert isinstance(instance.run_storage, PostgresRunStorage)
        assert isinstance(instance.event_log_storage, PostgresEventLogStorage)
        assert isinstance(instance.schedule_storage, PostgresScheduleStorage)
        assert isinstance(instance.run_coordinator, QueuedRunCoordinator)
        concurrency = instance.get_concurrency_config()
        assert concurrency.run_queue_config.max_concurrent_runs == 2
        assert [(limit["key"], limit["limit"]) for limit in concurrency.run_queue_config.tag_concurrency_limits] == [
            ("dagster/backfill", 1)]
        # one run at a time holds the writers' pool (WRITES_POOL, the only pool), however it was launched
        assert concurrency.pool_config.pool_granularity == PoolGranularity.RUN
        assert concurrency.pool_config.default_pool_limit == 1
        assert not instance.telemetry_enabled
        assert instance.get_runs_count() == 0
    finally:
        instance.dispose()
    engine = sa.create_engine(postgres_url, poolclass=sa.NullPool)
    assert {"runs", "event_logs", "jobs"} <= set(sa.inspect(engine).get_table_names())  # created in *this* database
    engine.dispose()


def test_a_run_that_writes_waits_in_the_queue_while_another_holds_the_pool(tmp_path: Path) -> None:
    """deploy/dagster.yaml's concurrency settings, judged as the daemon's queue judges a queued run: "Materialize all"
    in the UI (the implicit asset job) waits while a run of the job (e.g. a manual launch) is in progress, and
    goes once that run has ended."""
    import dagster as dg
    from dagster._core.execution.api import create_execution_plan
    from dagster._core.op_concurrency_limits_counter import GlobalOpConcurrencyLimitsCounter
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
    from etl_pipeline.settings import Settings

    concurrency = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())["concurrency"]
    defs = build_definitions(Settings.from_env({"ETL_HOME": str(tmp_path)}))
    with dg.instance_for_test(overrides={"concurrency": concurrency}) as instance:

        def run_of(job: dg.JobDefinition, status: dg.DagsterRunStatus | None = None) -> dg.DagsterRun:
            return instance.create_run_for_job(job, execution_plan=create_execution_plan(job), status=status)

        def waits(run: dg.DagsterRun) -> bool:
            storage = instance.event_log_storage
            return GlobalOpConcurrencyLimitsCounter(
                instance, [run], instance.get_run_records(dg.RunsFilter(statuses=IN_PROGRESS_RUN_STATUSES)),
                concurrency_keys=storage.get_concurrency_keys(), pool_limits=storage.get_pool_limits(),
                pool_granularity=instance.get_concurrency_config().pool_config.pool_granularity,
            ).is_blocked(run)

        # judged as the queue judges it (a run queued from the UI also carries the UI's code location origin)
        materialize_all = run_of(defs.resolve_implicit_global_asset_job_def())
        assert not waits(materialize_all)  # nothing in progress (this first look sets the pool's limit: 1)
        scheduled = run_of(defs.resolve_job_def(ALL_ASSETS_JOB), dg.DagsterRunStatus.STARTED)
        assert waits(materialize_all)
        instance.report_run_failed(scheduled)
        assert not waits(materialize_all)


# --------------------------------------------------------------------------------------------- image


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped."""
    logical, current = [], ""
    for line in DOCKERFILE.read_text().splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip("\\").strip() + " "
        if not line.endswith("\\"):
            logical.append(current.strip())
            current = ""
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the build context: the last matching pattern decides, and a
    pattern matching a parent directory matches everything below it."""
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*")
        parts = path.split("/")
        if any(re.fullmatch(regex, "/".join(parts[:i])) for i in range(1, len(parts) + 1)):
            excluded = not negated
    return excluded


def test_the_build_context_holds_what_the_dockerfile_copies_and_no_secrets() -> None:
    lines = (REPO_ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    sources = [src for kind, args in dockerfile_instructions() if kind == "COPY" for src in args.split()[:-1]]
    assert {"pyproject.toml", "README.md", "etl_pipeline", "dashboard", "etl_pipeline/spark_jars.py"} <= set(sources)
    for source in sources:
        files = [source] if not (REPO_ROOT / source).is_dir() else [
            str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / source).rglob("*.py") if "__pycache__" not in p.parts
        ]
        assert files, f"COPY {source}: nothing to copy"
        for path in files:
            assert not dockerignore_excludes(path, patterns), f"{path} is copied but .dockerignore leaves it out"
    left_out = [".env", ".git/config", ".venv/bin/python", "etl_pipeline_tests/conftest.py",
                "etl_pipeline/__pycache__/cli.cpython-311.pyc", "deploy/postgres/init/10-databases.sql"]  # fmt: skip
    for path in left_out:
        assert dockerignore_excludes(path, patterns), path


def test_the_dockerfile_pins_its_base_runs_as_non_root_and_ships_only_sdk_v2() -> None:
    instructions = dockerfile_instructions()
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=python:(\d+\.\d+)\.\d+-slim-\w+$", text, re.M)
    assert base, "the base image must be pinned to a Python patch release"
    assert ("ENV", f"SPARK_HOME=/opt/venv/lib/python{base[1]}/site-packages/pyspark") in instructions
    runs = [args for kind, args in instructions if kind == "RUN"]
    assert any("python /tmp/spark_jars.py" in run for run in runs)
    assert any("pip install -c /tmp/build/constraints.txt" in run for run in runs)
    assert "aws-java-sdk" not in text  # the v1 SDK bundle is never fetched
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert instructions[-2:] == [("ENTRYPOINT", '["/usr/bin/tini", "--"]'), ("CMD", '["covid-etl", "--help"]')]


def _required_distributions(requirements: list[str]) -> dict[str, Requirement]:
    """Every distribution needed to satisfy ``requirements`` in this environment (transitively, with extras)."""
    needed: dict[str, Requirement] = {}
    pending = [Requirement(r) for r in requirements]
    while pending:
        requirement = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in needed and requirement.extras <= needed[name].extras:
            continue
        needed.setdefault(name, requirement).extras |= requirement.extras
        extras = needed[name].extras or {""}
        for dependency in map(Requirement, metadata.requires(requirement.name) or []):
            if dependency.marker is None or any(dependency.marker.evaluate({"extra": e}) for e in extras):
                pending.append(dependency)
    return needed


def test_the_image_pins_every_runtime_package_at_the_tested_version() -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    image_extras = [
        line.split("#")[0].strip() for line in (DEPLOY / "requirements-image.txt").read_text().splitlines()
    ]
    pins = dict(
        line.split("==") for line in (DEPLOY / "constraints.txt").read_text().splitlines() if "==" in line
    )
    pins = {canonicalize_name(name): version for name, version in pins.items()}
    needed = _required_distributions(pyproject + [r for r in image_extras if r])
    assert {"pyspark", "dagster", "dagster-postgres", "pyarrow", "grpcio"} <= set(needed)
    for name, requirement in needed.items():
        assert name in pins, f"{name} is not pinned in deploy/constraints.txt (regenerate it, see its header)"
        assert pins[name] == metadata.version(name), f"{name}: pinned {pins[name]}, tested {metadata.version(name)}"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name} {pins[name]} vs {requirement}"


# --------------------------------------------------------------------------------------------- JVM jars


def maven_central_reachable() -> bool:
    try:
        urllib.request.urlopen(f"{MAVEN_CENTRAL}/org/apache/hadoop/hadoop-aws/maven-metadata.xml", timeout=10)
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def fetched_by_the_dockerfile_step(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, Path]:
    """The Dockerfile's jar step, run as it is written there (``python spark_jars.py`` on its own, outside the
    package) against Maven Central, into an empty Ivy cache: Spark's own Ivy resolves everything. Returns the
    cache, what the step printed and the image's spark-defaults.conf it appended to."""
    if not maven_central_reachable():
        unavailable(f"{MAVEN_CENTRAL} unreachable: the jar step cannot be checked")
    ivy = tmp_path_factory.mktemp("ivy")
    build = tmp_path_factory.mktemp("build")
    standalone, image_conf = build / "spark_jars.py", build / "spark-defaults.conf"
    shutil.copy(REPO_ROOT / "etl_pipeline" / "spark_jars.py", standalone)
    shutil.copy(REPO_ROOT / "spark-defaults.conf", image_conf)
    done = subprocess.run([sys.executable, str(standalone), "--ivy", str(ivy), "--append-to", str(image_conf)],
                          cwd=build, capture_output=True, text=True, timeout=900,
                          env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return ivy, done.stdout, image_conf


def test_the_dockerfile_step_resolves_hadoop_aws_at_pyspark_s_hadoop_with_the_sdk_v2_only(
    fetched_by_the_dockerfile_step: tuple[Path, str, Path],
) -> None:
    """Also Delta Lake at the installed delta-spark's version, and nothing that pyspark already ships."""
    ivy, report, image_conf = fetched_by_the_dockerfile_step
    [client_api] = PYSPARK_JARS.glob("hadoop-client-api-*.jar")
    hadoop = client_api.name.removeprefix("hadoop-client-api-").removesuffix(".jar")
    assert s3a_packages() == [f"org.apache.hadoop:hadoop-aws:{hadoop}"]
    jars = sorted(p.name for p in (ivy / "jars").glob("*.jar"))
    assert f"org.apache.hadoop_hadoop-aws-{hadoop}.jar" in jars
    assert [j for j in jars if j.startswith("software.amazon.awssdk_bundle-2.")], jars  # the SDK v2, shaded
    assert not [j for j in jars if j.startswith("com.amazonaws")], jars  # never the v1 SDK
    assert not [j for j in jars if j.startswith("org.apache.hadoop_") and "hadoop-aws" not in j], jars
    assert f"io.delta_delta-spark_2.13-{metadata.version('delta-spark')}.jar" in jars
    shipped = {re.sub(r"-\d[\w.\-]*\.jar$", "", p.name) for p in PYSPARK_JARS.glob("*.jar")}
    resolved = {re.sub(r"-\d[\w.\-]*\.jar$", "", j.split("_", 1)[1]) for j in jars}
    assert resolved.isdisjoint(shipped), sorted(resolved & shipped)  # one Hadoop, one Parquet, one Jackson
    assert f"{len(jars)} jar(s)" in report and str(ivy) in report
    # the hadoop-aws POM that Ivy read names the same Hadoop: the pin and the resolver agree
    [pom] = (ivy / "cache" / "org.apache.hadoop" / "hadoop-aws").glob(f"ivy-{hadoop}.xml")
    assert f'revision="{hadoop}"' in pom.read_text()
    # the image's spark-defaults.conf puts exactly the resolved jars on every driver's and executor's class path
    conf = parse_spark_defaults(image_conf.read_text())
    classpath = conf["spark.executor.extraClassPath"].split(":")
    assert conf["spark.driver.extraClassPath"] == conf["spark.executor.extraClassPath"]
    assert sorted(Path(p).name for p in classpath) == jars and all(Path(p).parent == ivy / "jars" for p in classpath)
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"  # the project's own lines are kept
    assert {key: conf[key] for key in DELTA_CONF} == DELTA_CONF  # every session of the image is a Delta session


def test_without_maven_central_and_cache_the_session_names_the_command_that_fetches_the_jars(tmp_path: Path) -> None:
    """A local session that needs the S3A jars, with an empty cache and no repository reachable, fails with
    the command to run, not with Py4J's 'Java gateway process exited'."""
    settings_file = tmp_path / "ivysettings.xml"  # a repository chain that reaches nothing
    settings_file.write_text('<ivysettings><settings defaultResolver="none"/><resolvers>'
                             '<ibiblio name="none" m2compatible="true" root="http://127.0.0.1:9/maven2/"/>'
                             "</resolvers></ivysettings>")
    code = f"""
import sys
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.spark_jars import JarsUnavailable, s3a_packages
resource = SparkSessionResource(master="local[1]", packages=s3a_packages(), ivy_dir={str(tmp_path / "ivy")!r},
                                conf_file={str(write_conf(tmp_path, settings_file))!r}, class_archive=False)
try:
    resource.get_session()
except JarsUnavailable as exc:
    print(exc)
    sys.exit(3)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          cwd=REPO_ROOT, env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"})
    assert done.returncode == 3, done.stdout + done.stderr[-3000:]
    assert "could not resolve org.apache.hadoop:hadoop-aws:" in done.stdout
    assert "covid-etl fetch-jars" in done.stdout


def write_conf(directory: Path, ivy_settings: Path) -> Path:
    path = directory / "spark-defaults.conf"
    path.write_text(f"spark.jars.ivySettings {ivy_settings}\nspark.ui.enabled false\n")
    return path


# --------------------------------------------------------------------------------------------- Spark


def hadoop_default_credential_providers() -> set[str]:
    """The credential provider classes Hadoop's own core-default.xml (in pyspark's client jar) lists."""
    [client_api] = PYSPARK_JARS.glob("hadoop-client-api-*.jar")
    with zipfile.ZipFile(client_api) as jar:
        xml = jar.read("core-default.xml").decode()
    value = re.search(r"<name>fs\.s3a\.aws\.credentials\.provider</name>\s*<value>(.*?)</value>", xml, re.S)[1]
    return {name.strip() for name in value.split(",") if name.strip()}


def test_spark_defaults_configure_s3a_without_credentials() -> None:
    path = REPO_ROOT / "spark-defaults.conf"
    assert resolve_conf_file(None) == path  # the session provider's default in a checkout
    conf = parse_spark_defaults(path.read_text())
    assert not [key for key in conf if re.search(r"(?i)access\.key|secret|password|token|session\.token", key)]
    assert not [key for key, value in conf.items() if "://" in value], "the endpoint comes from S3_ENDPOINT_URL"
    providers = conf["spark.hadoop.fs.s3a.aws.credentials.provider"].split(",")
    assert "software.amazon.awssdk.auth.credentials.EnvironmentVariableCredentialsProvider" in providers
    assert set(providers) <= hadoop_default_credential_providers()  # names this Hadoop release accepts
    assert not any(p.startswith("com.amazonaws.") for p in providers)  # no SDK v1 class
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.endpoint.region"]
    assert conf["spark.sql.execution.arrow.pyspark.enabled"] == "true"
    assert conf["spark.sql.adaptive.enabled"] == "true"
    assert 1 <= int(conf["spark.sql.shuffle.partitions"]) <= 16
    # every line is a setting or a comment: nothing the parser would silently take as a key
    for line in path.read_text().splitlines():
        assert not line.strip() or line.startswith("#") or re.match(r"^spark\.\S+\s+\S", line), line
