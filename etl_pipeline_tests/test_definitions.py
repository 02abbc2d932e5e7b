"""The whole code location loads: the module-level ``defs`` and one built from explicit settings, whose databases'
kinds and the daily refresh's default status follow that configuration."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

import etl_pipeline.definitions
from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from etl_pipeline.resources.minio_io_manager import MinIOIOManager
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.settings import Settings

TABLES = ["covid19_cases_position", "covid19_country_wise", "covid19_time_series", "covid19_worldometer"]
SOURCE_KEYS = {dg.AssetKey(["source", "medical", t]) for t in TABLES}
BRONZE_KEYS = {dg.AssetKey(["bronze", "medical", t]) for t in TABLES}


def keys_of_group(defs: dg.Definitions, group: str) -> set[dg.AssetKey]:
    graph = defs.resolve_asset_graph()
    return {key for key in graph.get_all_asset_keys() if graph.get(key).group_name == group}


def check_source_and_bronze(defs: dg.Definitions) -> None:
    dg.Definitions.validate_loadable(defs)
    graph = defs.resolve_asset_graph()
    assert keys_of_group(defs, "source") == SOURCE_KEYS
    assert keys_of_group(defs, "bronze") == BRONZE_KEYS
    for key in SOURCE_KEYS:  # external: filled by `covid-etl seed`, never materialized by Dagster
        assert graph.get(key).is_external and not graph.get(key).is_materializable
    for key in BRONZE_KEYS:
        assert graph.get(key).is_materializable
        assert graph.get(key).parent_keys == {dg.AssetKey(["source", *key.path[1:]])}
    job_keys = defs.resolve_job_def(ALL_ASSETS_JOB).asset_layer.executable_asset_keys
    assert BRONZE_KEYS <= job_keys
    assert {"mysql_io_manager", "minio_io_manager"} <= set(defs.resources)


def database_kinds(defs: dg.Definitions) -> dict[str, set[str]]:
    """The database kinds shown per layer (the lake's kinds, delta and pyspark, are fixed)."""
    graph = defs.resolve_asset_graph()
    kinds: dict[str, set[str]] = {}
    for key in graph.get_all_asset_keys():
        kinds.setdefault(key.path[0], set()).update(set(graph.get(key).kinds) - {"delta", "pyspark"})
    return kinds


def test_the_module_level_definitions_load() -> None:
    check_source_and_bronze(etl_pipeline.definitions.defs)


def test_definitions_built_from_deployment_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    env = {
        "ETL_HOME": str(tmp_path),
        "SOURCE_DB_URL": "mysql+pymysql://etl:db-secret@mysql:3306/covid19",
        "WAREHOUSE_DB_URL": "postgresql+psycopg2://etl:db-secret@postgres:5432/warehouse",
        "LAKE_URL": "s3://warehouse",
        "S3_ENDPOINT_URL": "http://minio:9000",
        "AWS_ACCESS_KEY_ID": "minio",
        "AWS_SECRET_ACCESS_KEY": "minio-secret",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    defs = build_definitions(Settings.from_env(env))
    check_source_and_bronze(defs)

    mysql, minio = defs.resources["mysql_io_manager"], defs.resources["minio_io_manager"]
    assert isinstance(mysql, MySQLIOManager) and isinstance(minio, MinIOIOManager)
    assert (minio.lake.url, minio.lake.s3_endpoint_url) == ("s3://warehouse", "http://minio:9000")
    # secrets are resolved from the environment at run time, never held in the definitions
    assert isinstance(mysql.url, dg.EnvVar) and mysql.url.env_var_name == "SOURCE_DB_URL"
    assert isinstance(minio.lake.aws_secret_access_key, dg.EnvVar)
    assert database_kinds(defs) == {"source": {"mysql"}, "bronze": {"mysql"}, "silver": set(), "gold": set(),
                                    "warehouse": {"postgres"}}
    # deployed, the daemon runs the daily refresh from the start
    assert defs.resolve_sensor_def("daily_refresh").default_status == dg.DefaultSensorStatus.RUNNING


def test_definitions_built_from_embedded_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("SOURCE_DB_URL", "WAREHOUSE_DB_URL", "LAKE_URL", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                 "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    defs = build_definitions(Settings.from_env({"ETL_HOME": str(tmp_path)}))
    check_source_and_bronze(defs)
    assert defs.resources["mysql_io_manager"].url == f"sqlite:///{tmp_path}/source.db"
    assert defs.resources["minio_io_manager"].lake.url == f"{tmp_path}/lake"
    assert database_kinds(defs) == {"source": {"sqlite"}, "bronze": {"sqlite"}, "silver": set(), "gold": set(),
                                    "warehouse": {"sqlite"}}
    # embedded, someone trying the UI does not start a full run by leaving it open past 01:00 UTC
    assert defs.resolve_sensor_def("daily_refresh").default_status == dg.DefaultSensorStatus.STOPPED
