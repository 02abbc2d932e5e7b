"""The Dagster code location: every asset, check, job, schedule, sensor and resource, in one place (``defs``, which
``dg`` and ``dagster dev`` load through [tool.dg] in pyproject.toml).

Assets run in one process (``in_process_executor``) so that all Spark steps of a run share one Spark
session instead of starting a JVM per step (see resources/spark.py).
"""

from __future__ import annotations

import functools
import warnings

import dagster as dg

from etl_pipeline.alerts import alert_on_run_failure
from etl_pipeline.assets.bronze import bronze_assets
from etl_pipeline.assets.gold import gold_assets, gold_checks
from etl_pipeline.assets.silver import silver_assets, silver_checks
from etl_pipeline.assets.source import source_assets
from etl_pipeline.assets.warehouse import warehouse_assets
from etl_pipeline.core.engines import backend
from etl_pipeline.resources.lake import lake_from_settings
from etl_pipeline.resources.minio_io_manager import MinIOIOManager
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.spark_io_manager import SparkIOManager
from etl_pipeline.settings import Settings


def from_env(settings: Settings, name: str, value: str | None) -> str | dg.EnvVar | None:
    """``EnvVar(name)`` when ``value`` came from that environment variable (``settings.from_environment``), so
    that the value (possibly a secret) is resolved only at run time and never stored in the definitions; else
    ``value`` itself (an embedded default, which holds no secret)."""
    return dg.EnvVar(name) if value is not None and name in settings.from_environment else value


def build_resources(settings: Settings) -> dict[str, object]:
    lake = lake_from_settings(settings, secret=functools.partial(from_env, settings))
    spark = SparkSessionResource(master=settings.spark_master, lake=lake, ivy_dir=str(settings.spark_jars_ivy),
                                 conf_file=str(settings.spark_defaults_conf) if settings.spark_defaults_conf else None)
    return {
        "mysql_io_manager": MySQLIOManager(url=from_env(settings, "SOURCE_DB_URL", settings.source_db_url)),
        "minio_io_manager": MinIOIOManager(lake=lake),
        "spark": spark,
        "spark_io_manager": SparkIOManager(lake=lake, spark=spark),
        "psql_io_manager": PostgresIOManager(url=from_env(settings, "WAREHOUSE_DB_URL", settings.warehouse_db_url)),
    }


ALL_ASSETS_JOB = "covid19_etl_job"
OBSERVE_JOB = "observe_sources_job"


def database_kind(url: str) -> str:
    """The asset kind of the database at ``url`` (``sqlite``, ``mysql``, ``postgres``): the UI shows the storage that
    the loaded configuration really uses."""
    name = backend(url)
    return "postgres" if name == "postgresql" else name


def with_kind(kind: str, assets: list) -> list:
    return dg.map_asset_specs(lambda spec: spec.merge_attributes(kinds={kind}), assets)


#: The automation condition of every materializable asset: materialize when missing or when an upstream asset was
#: updated (a source observed with a new data version, an upstream asset materialized), as Dagster's ``eager``
#: does, unless a blocking check of an upstream asset failed. Unlike ``eager`` a missing upstream asset does not
#: hold it back (it is requested in the same tick), so a first build is one run rather than one per layer.
REFRESH_WHEN_UPSTREAM_CHANGED = (
    dg.AutomationCondition.eager().without(~dg.AutomationCondition.any_deps_missing())
    & ~dg.AutomationCondition.any_deps_match(
        dg.AutomationCondition.any_checks_match(dg.AutomationCondition.check_failed(), blocking_only=True))
).with_label("eager, unless an upstream blocking check failed")


def refreshed_when_upstream_changed(assets: list) -> list:
    return dg.map_asset_specs(
        lambda spec: spec.replace_attributes(automation_condition=REFRESH_WHEN_UPSTREAM_CHANGED), assets)


def automation_status(settings: Settings) -> dg.DefaultSensorStatus:
    """The daily refresh runs by default only when deployed (a source database server, not a SQLite file): someone
    trying the UI embedded would otherwise start a run by leaving it open past 01:00 UTC."""
    embedded = backend(settings.source_db_url) == "sqlite"
    return dg.DefaultSensorStatus.STOPPED if embedded else dg.DefaultSensorStatus.RUNNING


def daily_refresh(settings: Settings) -> dg.AutomationConditionSensorDefinition:
    """The sensor that evaluates every asset's automation condition (every 30 s under the daemon), the observable
    source tables included."""
    with warnings.catch_warnings():  # include_sources is beta; without it the sources would not be observed
        warnings.simplefilter("ignore", dg.BetaWarning)
        everything = dg.AssetSelection.all(include_sources=True)
    return dg.AutomationConditionSensorDefinition(
        "daily_refresh", target=everything, default_status=automation_status(settings),
        description="Declarative automation: the source tables are observed every day at 01:00 UTC, and an asset "
        "is materialized when an upstream asset changed (a new data version), unless an upstream blocking check "
        "failed. An unchanged day runs nothing.",
    )


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    everything = dg.define_asset_job(
        ALL_ASSETS_JOB, selection=dg.AssetSelection.all(),
        description="Every asset of the platform, source database to warehouse, with all asset checks.",
    )
    observe = dg.define_asset_job(
        OBSERVE_JOB, selection=dg.AssetSelection.assets(*source_assets),
        description="Fingerprint the source tables: their data versions tell which assets are out of date.",
    )
    source_kind, warehouse_kind = database_kind(settings.source_db_url), database_kind(settings.warehouse_db_url)
    return dg.Definitions(
        assets=[*with_kind(source_kind, source_assets),
                *refreshed_when_upstream_changed([*with_kind(source_kind, bronze_assets), *silver_assets,
                                                  *gold_assets, *with_kind(warehouse_kind, warehouse_assets)])],
        asset_checks=[*silver_checks, *gold_checks],
        jobs=[everything, observe],
        sensors=[alert_on_run_failure, daily_refresh(settings)],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
