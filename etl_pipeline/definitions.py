"""The Dagster code location: every asset, check, job, schedule, sensor and resource, in one place.

Assets run in one process (``in_process_executor``) so that all Spark steps of a run share one Spark
session instead of starting a JVM per step (see resources/spark.py).
"""

from __future__ import annotations

import os

import dagster as dg

from etl_pipeline.assets.bronze import bronze_assets
from etl_pipeline.assets.source import source_assets
from etl_pipeline.resources.minio_io_manager import MinIOIOManager
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.settings import Settings


def from_env(name: str, default: str | None) -> str | dg.EnvVar | None:
    """``EnvVar(name)`` when the variable is set (its value, possibly secret, is resolved only at run time),
    else the embedded default, which holds no secret."""
    return dg.EnvVar(name) if os.environ.get(name, "").strip() else default


def build_resources(settings: Settings) -> dict[str, object]:
    s3 = {
        "s3_endpoint_url": settings.s3_endpoint_url,
        "aws_access_key_id": from_env("AWS_ACCESS_KEY_ID", None),
        "aws_secret_access_key": from_env("AWS_SECRET_ACCESS_KEY", None),
    }
    return {
        "mysql_io_manager": MySQLIOManager(url=from_env("SOURCE_DB_URL", settings.source_db_url)),
        "minio_io_manager": MinIOIOManager(lake_url=settings.lake_url, **s3),
    }


ALL_ASSETS_JOB = "covid19_etl_job"


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        assets=[*source_assets, *bronze_assets],
        jobs=[dg.define_asset_job(ALL_ASSETS_JOB, selection=dg.AssetSelection.all(),
                                  description="Every asset of the platform, source to warehouse.")],
        resources=build_resources(settings),
        executor=dg.in_process_executor,
    )


defs = build_definitions()
