"""Settings from the environment: embedded defaults, every variable honoured, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl_pipeline.core.redaction import redact
from etl_pipeline.definitions import build_resources
from etl_pipeline.settings import Settings

DEPLOYMENT_ENV = {
    "ETL_HOME": "/opt/etl",
    "SOURCE_DB_URL": "mysql+pymysql://etl:db-pass-1@mysql:3306/covid19",
    "WAREHOUSE_DB_URL": "postgresql+psycopg2://etl:db-pass-2@postgres:5432/warehouse",
    "LAKE_URL": "s3://warehouse/",
    "S3_ENDPOINT_URL": "http://minio:9000",
    "AWS_ACCESS_KEY_ID": "minio-user",
    "AWS_SECRET_ACCESS_KEY": "minio-secret-key",
    "SPARK_MASTER": "spark://spark-master:7077",
    "COVID_DATA_DIR": "/opt/etl/csv",
    "SPARK_JARS_IVY": "/opt/spark-ivy",
    "DAGSTER_HOME": "/opt/dagster/home",
    "AWS_REGION": "eu-west-3",
    "LAKE_RETENTION_HOURS": "24",
    "SPARK_DEFAULTS_CONF": "/opt/spark/conf/spark-defaults.conf",
    "ALERT_WEBHOOK_URL": "https://hooks.example.org/T000/B000/webhook-secret",
    "DASH_MAP_STYLE": "white-bg",
    "COVID_DATA_BASE_URL": "http://mirror.example.org/covid19",
}
SECRETS = ("db-pass-1", "db-pass-2", "minio-secret-key", "webhook-secret")


def test_empty_environment_gives_the_embedded_defaults_under_dot_etl(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env({})
    home = tmp_path / ".etl"
    assert settings == Settings(
        etl_home=home,
        source_db_url=f"sqlite:///{home}/source.db",
        warehouse_db_url=f"sqlite:///{home}/warehouse.db",
        lake_url=f"{home}/lake",
        spark_master="sail",  # measured faster than Apache Spark (README, "Spark engines")
        covid_data_dir=home / "data",
        spark_jars_ivy=Path.home() / ".cache" / "covid-etl" / "ivy",
        dagster_home=home / "dagster",
    )
    [delta] = build_resources(settings)["spark"].required_packages()  # Delta Lake only: a local lake needs no S3A
    assert delta.startswith("io.delta:delta-spark_2.13:")


def test_etl_home_moves_every_default(tmp_path: Path) -> None:
    settings = Settings.from_env({"ETL_HOME": str(tmp_path)})
    assert settings.source_db_url == f"sqlite:///{tmp_path}/source.db"
    assert settings.warehouse_db_url == f"sqlite:///{tmp_path}/warehouse.db"
    assert settings.lake_url == f"{tmp_path}/lake"
    assert settings.covid_data_dir == tmp_path / "data"
    assert settings.dagster_home == tmp_path / "dagster"


def test_every_variable_is_honoured() -> None:
    settings = Settings.from_env(DEPLOYMENT_ENV)
    assert settings == Settings(
        etl_home=Path("/opt/etl"),
        source_db_url=DEPLOYMENT_ENV["SOURCE_DB_URL"],
        warehouse_db_url=DEPLOYMENT_ENV["WAREHOUSE_DB_URL"],
        lake_url="s3://warehouse",  # trailing slash dropped: paths are joined with "/"
        spark_master="spark://spark-master:7077",
        covid_data_dir=Path("/opt/etl/csv"),
        spark_jars_ivy=Path("/opt/spark-ivy"),
        dagster_home=Path("/opt/dagster/home"),
        s3_endpoint_url="http://minio:9000",
        aws_region="eu-west-3",
        aws_access_key_id="minio-user",
        aws_secret_access_key="minio-secret-key",
        lake_retention_hours=24,
        spark_defaults_conf=Path("/opt/spark/conf/spark-defaults.conf"),
        alert_webhook_url=DEPLOYMENT_ENV["ALERT_WEBHOOK_URL"],
        dash_map_style="white-bg",
        covid_data_base_url="http://mirror.example.org/covid19",
        from_environment=frozenset(DEPLOYMENT_ENV),
    )
    spark = build_resources(settings)["spark"]
    delta, s3a = spark.required_packages()  # Delta Lake and the S3A connector, at the Hadoop version pyspark bundles
    assert delta.startswith("io.delta:delta-spark_2.13:") and s3a.startswith("org.apache.hadoop:hadoop-aws:3.")


def test_blank_variables_count_as_unset(tmp_path: Path) -> None:
    blank = {name: "  " for name in DEPLOYMENT_ENV} | {"ETL_HOME": str(tmp_path)}
    assert Settings.from_env(blank) == Settings.from_env({"ETL_HOME": str(tmp_path)})


def test_from_env_reads_the_process_environment_by_default(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("ETL_HOME", str(tmp_path))
    monkeypatch.setenv("SPARK_MASTER", "sc://spark-connect:15002")
    settings = Settings.from_env()
    assert settings.etl_home == tmp_path
    assert settings.spark_master == "sc://spark-connect:15002"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("mysql+pymysql://etl:s3cret@mysql:3306/covid19", "mysql+pymysql://etl:***@mysql:3306/covid19"),
        ("redis://:s3cret@cache:6379", "redis://:***@cache:6379"),
        # an unescaped "@" or "/" in the password must not leave part of it visible
        ("mysql://etl:p@ss/w:rd@mysql/db", "mysql://etl:***@mysql/db"),
        (
            "cannot reach postgresql://a:one@pg/w, then mysql://b:two@my/s\nretry mysql://c:three@x",
            "cannot reach postgresql://a:***@pg/w, then mysql://b:***@my/s\nretry mysql://c:***@x",
        ),
        ("sqlite:////opt/etl/source.db", "sqlite:////opt/etl/source.db"),
        ("mysql://etl@mysql/db", "mysql://etl@mysql/db"),
        ("http://minio:9000/warehouse", "http://minio:9000/warehouse"),
    ],
)
def test_redact_hides_the_password_of_every_url(text: str, shown: str) -> None:
    assert redact(text) == shown


def test_describe_shows_no_secret_but_everything_else() -> None:
    shown = Settings.from_env(DEPLOYMENT_ENV).describe()
    assert not [value for value in shown.values() for secret in SECRETS if secret in value]
    assert shown == {
        "etl_home": "/opt/etl",
        "source_db_url": "mysql+pymysql://etl:***@mysql:3306/covid19",
        "warehouse_db_url": "postgresql+psycopg2://etl:***@postgres:5432/warehouse",
        "lake_url": "s3://warehouse",
        "spark_master": "spark://spark-master:7077",
        "covid_data_dir": "/opt/etl/csv",
        "spark_jars_ivy": "/opt/spark-ivy",
        "dagster_home": "/opt/dagster/home",
        "lake_retention_hours": "24",
        "s3_endpoint_url": "http://minio:9000",
        "aws_region": "eu-west-3",
        "aws_access_key_id": "minio-user",
        "aws_secret_access_key": "***",
        "spark_defaults_conf": "/opt/spark/conf/spark-defaults.conf",
        "alert_webhook_url": "***",  # the URL is the credential
        "dash_map_style": "white-bg",
        "covid_data_base_url": "http://mirror.example.org/covid19",
    }


def test_describe_leaves_out_unset_values(tmp_path: Path) -> None:
    assert set(Settings.from_env({"ETL_HOME": str(tmp_path)}).describe()) == {
        "etl_home", "source_db_url", "warehouse_db_url", "lake_url", "spark_master", "covid_data_dir",
        "spark_jars_ivy", "dagster_home", "lake_retention_hours", "aws_region",
    }


def test_a_value_from_the_environment_reaches_dagster_as_an_env_var_a_default_as_itself(tmp_path: Path) -> None:
    """Secrets in the definitions are ``EnvVar`` (resolved at run time, never stored); embedded defaults are
    plain values."""
    import dagster as dg

    from etl_pipeline.definitions import build_resources

    deployed = build_resources(Settings.from_env({**DEPLOYMENT_ENV, "SPARK_MASTER": "sc://spark-connect:15002"}))
    lake = deployed["minio_io_manager"].lake
    assert lake.aws_secret_access_key == dg.EnvVar("AWS_SECRET_ACCESS_KEY")
    assert lake.aws_access_key_id == dg.EnvVar("AWS_ACCESS_KEY_ID")
    assert (lake.url, lake.region, lake.retention_hours) == ("s3://warehouse", "eu-west-3", 24)
    assert deployed["spark"].lake is lake and deployed["spark_io_manager"].lake is lake  # one lake for all
    assert deployed["psql_io_manager"].url == dg.EnvVar("WAREHOUSE_DB_URL")
    embedded = build_resources(Settings.from_env({"ETL_HOME": str(tmp_path)}))
    assert embedded["psql_io_manager"].url == f"sqlite:///{tmp_path}/warehouse.db"
