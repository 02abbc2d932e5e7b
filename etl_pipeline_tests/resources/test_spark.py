"""The Spark session provider: conf file parsing, conf precedence, one session per process, no leaked secrets."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource, stop_process_session
from etl_pipeline.resources.spark_conf import (
    BASE_CONF,
    REPO_SPARK_DEFAULTS,
    parse_spark_defaults,
    resolve_conf_file,
    session_conf,
)
from etl_pipeline_tests.conftest import unavailable
from etl_pipeline_tests.spark_servers import TEST_SPARK_CONF, StandaloneCluster, write_spark_defaults

FAKE_ENDPOINT = "http://127.0.0.1:9"
FAKE_KEY_ID = "test-key-id-AKIA0000"
FAKE_SECRET = "test-secret-7f3a9c1e-never-log-me"
FAKE_LAKE = LakeResource(url="s3://lake", s3_endpoint_url=FAKE_ENDPOINT, region="eu-west-3",
                         aws_access_key_id=FAKE_KEY_ID, aws_secret_access_key=FAKE_SECRET)


def test_parse_spark_defaults_reads_java_properties_style(tmp_path: Path) -> None:
    conf_file = tmp_path / "spark-defaults.conf"
    conf_file.write_text(
        "# Default system properties\n"
        "\n"
        "spark.master                     spark://master:7077\n"
        "   spark.eventLog.enabled   true   \n"
        "! another comment style\n"
        "spark.sql.shuffle.partitions=16\n"
        "spark.executor.memory: 2g\n"
        "spark.driver.extraJavaOptions  -Dx=1 -Dy=2\n"
        "#spark.disabled.setting yes\n"
        "spark.sql.shuffle.partitions 4\n"
    )
    assert parse_spark_defaults(conf_file.read_text()) == {
        "spark.master": "spark://master:7077",
        "spark.eventLog.enabled": "true",
        "spark.sql.shuffle.partitions": "4",
        "spark.executor.memory": "2g",
        "spark.driver.extraJavaOptions": "-Dx=1 -Dy=2",
    }


def test_conf_file_resolution_order(tmp_path: Path) -> None:
    """The resource's file (``SPARK_DEFAULTS_CONF`` through the settings), else the repository's."""
    from etl_pipeline.definitions import build_resources
    from etl_pipeline.settings import Settings

    explicit = tmp_path / "a.conf"
    assert resolve_conf_file(str(explicit)) == explicit
    repo_default = REPO_SPARK_DEFAULTS if REPO_SPARK_DEFAULTS.is_file() else None
    assert resolve_conf_file(None) == repo_default
    configured = build_resources(Settings.from_env({"SPARK_DEFAULTS_CONF": str(explicit), "ETL_HOME": str(tmp_path)}))
    assert configured["spark"].conf_file == str(explicit)


def test_session_conf_precedence_and_s3() -> None:
    file_conf = {"spark.sql.shuffle.partitions": "3", "spark.driver.host": "etl-dagster", "spark.executor.memory": "1g"}
    conf = session_conf("local[2]", file_conf, s3a=FAKE_LAKE.s3a_conf())
    assert conf["spark.sql.session.timeZone"] == BASE_CONF["spark.sql.session.timeZone"] == "UTC"
    assert conf["spark.sql.shuffle.partitions"] == "3"  # the file beats the base defaults
    assert conf["spark.driver.host"] == conf["spark.driver.bindAddress"] == "127.0.0.1"  # a local driver is loopback
    assert conf["spark.executor.memory"] == "1g"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == FAKE_ENDPOINT
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    assert conf["spark.hadoop.fs.s3a.access.key"] == FAKE_KEY_ID
    assert conf["spark.hadoop.fs.s3a.secret.key"] == FAKE_SECRET
    assert conf["spark.hadoop.fs.s3a.endpoint.region"] == "eu-west-3"
    assert LakeResource(url="/some/dir").s3a_conf() == {}  # a local lake needs no s3a setting

    cluster = session_conf("spark://master:7077", file_conf)
    assert cluster["spark.driver.host"] == "etl-dagster"  # a cluster driver keeps its configured address
    assert not any(key.startswith("spark.hadoop.fs.s3a") for key in cluster)

    connect = session_conf("sc://spark-connect:15002", file_conf, s3a=FAKE_LAKE.s3a_conf())
    assert connect == {
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.shuffle.partitions": "3",
    }


@pytest.fixture(scope="module")
def conf_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_spark_defaults(tmp_path_factory.mktemp("spark") / "spark-defaults.conf", TEST_SPARK_CONF))


def make_resource(conf_file: str, **fields: str) -> SparkSessionResource:
    return SparkSessionResource(
        master="local[2]",
        conf_file=conf_file,
        lake=FAKE_LAKE,
        **fields,
    )


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def built(conf_file: str):
    """The module's local session, built once with (fake) S3 credentials while its log records are captured."""
    records = _Records()
    spark_logger = logging.getLogger("etl_pipeline.resources.spark")
    spark_logger.addHandler(records)
    previous_level = spark_logger.level
    spark_logger.setLevel(logging.DEBUG)
    try:
        resource = make_resource(conf_file)
        session = resource.get_session()
    finally:
        spark_logger.removeHandler(records)
        spark_logger.setLevel(previous_level)
    return resource, session, records.lines


def test_one_session_per_process(built, conf_file: str) -> None:
    resource, session, _ = built
    assert resource.get_session() is session
    assert make_resource(conf_file).get_session() is session  # another instance, same configuration
    assert session.sparkContext.master == "local[2]"
    assert session.range(10).selectExpr("sum(id) AS s").first()["s"] == 45


def test_session_is_built_from_file_and_resource(built) -> None:
    _, session, _ = built
    assert session.conf.get("spark.sql.shuffle.partitions") == TEST_SPARK_CONF["spark.sql.shuffle.partitions"]
    assert session.conf.get("spark.ui.enabled") == "false"
    assert session.conf.get("spark.sql.session.timeZone") == "UTC"
    assert session.conf.get("spark.driver.host") == "127.0.0.1"
    assert session.conf.get("spark.hadoop.fs.s3a.endpoint") == FAKE_ENDPOINT
    assert session.sparkContext.appName == "covid19-etl"


def test_secrets_stay_out_of_repr_and_logs(built, conf_file: str) -> None:
    resource, session, log_lines = built
    assert session.conf.get("spark.hadoop.fs.s3a.secret.key") == FAKE_SECRET  # the secret is in use ...
    assert FAKE_SECRET not in repr(resource) and FAKE_SECRET not in str(resource)  # ... but never shown
    assert FAKE_KEY_ID not in repr(resource)
    creation = [line for line in log_lines if "Spark session ready" in line]
    assert len(creation) == 1
    assert "spark.hadoop.fs.s3a.secret.key': '***'" in creation[0]
    assert "spark.hadoop.fs.s3a.access.key': '***'" in creation[0]
    assert not any(FAKE_SECRET in line or FAKE_KEY_ID in line for line in log_lines)


@pytest.mark.cluster
def test_standalone_master_replaces_the_local_session(built, tmp_path: Path) -> None:
    """Runs last in this module: a different master stops the process's local session and starts a driver."""
    local_resource, local_session, _ = built
    cluster = StandaloneCluster(tmp_path, workers=2)
    try:
        cluster.start()
    except (OSError, RuntimeError) as exc:
        unavailable(f"standalone Spark cluster could not start: {exc}")
    try:
        resource = SparkSessionResource(master=cluster.master_url, conf_file=local_resource.conf_file)
        session = resource.get_session()
        assert local_session.sparkContext._jsc is None  # the local session was stopped, not leaked
        assert session.sparkContext.master == cluster.master_url
        total = session.range(0, 1000, numPartitions=4).selectExpr("sum(id) AS s").first()["s"]
        assert total == sum(range(1000))
        assert cluster.alive_workers() == 2
        assert resource.get_session() is session
    finally:
        stop_process_session()
        cluster.stop()


def test_how_each_master_gets_the_extra_jars(tmp_path: Path) -> None:
    """A driver puts the cached jars on its (executors') class path, never shipping them, from the manifest with the
    fewest jars that covers the packages; a local driver whose cache lacks them resolves them itself; a Connect
    client needs none; a cluster driver with an unfetched cache names the command."""
    from etl_pipeline.resources.spark_conf import jars_conf
    from etl_pipeline.spark_jars import DELTA_CONF, PROVIDED_BY_SPARK, JarsUnavailable, manifest_path

    packages = ["org.example:a:1.0"]
    excludes = ",".join(PROVIDED_BY_SPARK)
    assert jars_conf("local[*]", packages, tmp_path) == {
        "spark.jars.packages": "org.example:a:1.0", "spark.jars.excludes": excludes, "spark.jars.ivy": str(tmp_path)}
    assert jars_conf("local[*]", ["io.delta:delta-spark_2.13:9.9", *packages], tmp_path) == {  # a Delta session
        "spark.jars.packages": "io.delta:delta-spark_2.13:9.9,org.example:a:1.0", "spark.jars.excludes": excludes,
        "spark.jars.ivy": str(tmp_path), **DELTA_CONF}
    assert jars_conf("sc://host:15002", packages, tmp_path) == {}
    assert jars_conf("spark://host:7077", [], tmp_path) == {}
    with pytest.raises(JarsUnavailable, match="covid-etl fetch-jars"):
        jars_conf("spark://host:7077", packages, tmp_path)
    jars = [tmp_path / "jars" / "org.example_a-1.0.jar", tmp_path / "jars" / "org.example_b-2.0.jar"]
    jars[0].parent.mkdir()
    for jar in jars:
        jar.write_bytes(b"PK")
    manifest_path(["org.example:a:1.0", "org.example:b:2.0"], tmp_path).write_text(  # as fetch_jars writes it
        "# org.example:a:1.0,org.example:b:2.0\n" + "".join(f"{jar}\n" for jar in jars))
    classpath = f"{jars[0]}:{jars[1]}"
    with pytest.raises(JarsUnavailable, match="covid-etl fetch-jars"):  # a package no manifest lists
        jars_conf("spark://host:7077", ["org.example:c:3.0"], tmp_path)
    assert jars_conf("spark://host:7077", packages, tmp_path) == {  # a subset of what was fetched
        "spark.driver.extraClassPath": classpath, "spark.executor.extraClassPath": classpath}
    assert jars_conf("local[*]", packages, tmp_path) == {  # fetched: a local driver takes them from the cache too
        "spark.driver.extraClassPath": classpath, "spark.executor.extraClassPath": classpath}
    manifest_path(packages, tmp_path).write_text(f"# org.example:a:1.0\n{jars[0]}\n")  # fewer jars, same package
    assert jars_conf("local[*]", packages, tmp_path)["spark.driver.extraClassPath"] == str(jars[0])
    manifest_path(packages, tmp_path).unlink()
    jars[1].unlink()  # a cache emptied since: refused, not a class path with a hole
    with pytest.raises(JarsUnavailable, match="covid-etl fetch-jars"):
        jars_conf("spark://host:7077", packages, tmp_path)


def test_sail_is_a_connect_client_that_gets_only_runtime_settings_and_no_jars(tmp_path: Path) -> None:
    from etl_pipeline.resources.sail_server import connect_url
    from etl_pipeline.resources.spark_conf import is_connect, jars_conf

    file_conf = {"spark.sql.shuffle.partitions": "3", "spark.executor.memory": "1g"}
    for master in ("sail", "sail://sail-host:50051"):
        assert is_connect(master)
        assert session_conf(master, file_conf, s3a=FAKE_LAKE.s3a_conf()) == {
            "spark.sql.session.timeZone": "UTC", "spark.sql.shuffle.partitions": "3"}
        assert jars_conf(master, ["org.example:a:1.0"], tmp_path) == {}
    assert not is_connect("local[*]") and not is_connect("sailing")
    assert connect_url("sail://sail-host:50051") == "sc://sail-host:50051"  # a running server: no server started


def test_sail_refuses_an_s3_lake_by_name() -> None:
    resource = SparkSessionResource(master="sail", lake=FAKE_LAKE)
    with pytest.raises(ValueError, match="SPARK_MASTER=sail: Sail runs on a lake directory only, not on s3://lake"):
        resource.get_session()
