"""One typed settings object, built from the environment (see README.md "Configuration").

Every variable is optional; the defaults give the embedded mode (SQLite source and warehouse, a lake
directory, Sail as the Spark engine) under ``$ETL_HOME`` (default ``./.etl``). Secrets live only in the
environment: :func:`~etl_pipeline.core.redaction.redact` is what any code that prints or records a URL
must pass it through.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from etl_pipeline.core.redaction import redact
from etl_pipeline.spark_jars import ivy_dir

#: ``SPARK_MASTER`` when unset (embedded): Sail, chosen by measurement (README, "Spark engines").
EMBEDDED_MASTER = "sail"


@dataclass(frozen=True)
class Settings:
    etl_home: Path
    source_db_url: str
    warehouse_db_url: str
    lake_url: str
    spark_master: str
    covid_data_dir: Path
    spark_jars_ivy: Path
    dagster_home: Path
    lake_retention_hours: int = 168
    s3_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    spark_defaults_conf: Path | None = None
    alert_webhook_url: str | None = None
    dash_map_style: str | None = None
    covid_data_base_url: str | None = None
    #: The variables that were set (non-empty) in the environment these settings were read from: a value that
    #: came from one is passed to Dagster as ``EnvVar(name)``, resolved at run time, never stored.
    from_environment: frozenset[str] = frozenset()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        conf_file = get("SPARK_DEFAULTS_CONF")

        home = Path(get("ETL_HOME") or ".etl").expanduser().absolute()
        return cls(
            etl_home=home,
            source_db_url=get("SOURCE_DB_URL") or f"sqlite:///{home / 'source.db'}",
            warehouse_db_url=get("WAREHOUSE_DB_URL") or f"sqlite:///{home / 'warehouse.db'}",
            lake_url=(get("LAKE_URL") or str(home / "lake")).rstrip("/"),
            spark_master=get("SPARK_MASTER") or EMBEDDED_MASTER,
            covid_data_dir=Path(get("COVID_DATA_DIR") or home / "data").expanduser().absolute(),
            spark_jars_ivy=ivy_dir(env),
            dagster_home=Path(get("DAGSTER_HOME") or home / "dagster").expanduser().absolute(),
            lake_retention_hours=_hours("LAKE_RETENTION_HOURS", get("LAKE_RETENTION_HOURS"), 168),
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            aws_region=get("AWS_DEFAULT_REGION") or get("AWS_REGION") or "us-east-1",
            aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
            spark_defaults_conf=Path(conf_file).expanduser().absolute() if conf_file else None,
            alert_webhook_url=get("ALERT_WEBHOOK_URL"),
            dash_map_style=get("DASH_MAP_STYLE"),
            covid_data_base_url=get("COVID_DATA_BASE_URL"),
            from_environment=frozenset(name for name, value in env.items() if value.strip()),
        )

    def describe(self) -> dict[str, str]:
        """The settings as strings safe to print: passwords in URLs and secret keys are redacted."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None or f.name == "from_environment":
                continue
            secret = f.name in ("aws_secret_access_key", "alert_webhook_url")  # a webhook URL is its own secret
            shown[f.name] = "***" if secret else redact(str(value))
        return shown


def _hours(name: str, value: str | None, default: int) -> int:
    if value is None:
        return default
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number of hours, got {value!r}")
    return int(value)
