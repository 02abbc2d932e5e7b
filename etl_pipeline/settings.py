"""One typed settings object, built from the environment (see DESIGN.md "Configuration contract").

Every variable is optional; the defaults give the embedded mode (SQLite source and warehouse, a lake
directory, in-process Spark) under ``$ETL_HOME`` (default ``./.etl``). Secrets live only in the
environment: :func:`redact` is what any code that prints or records a URL must pass it through.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

from etl_pipeline.spark_jars import ivy_dir

#: Variables that hold secrets on their own (not inside a URL).
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY",)


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
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ

        def get(name: str) -> str | None:
            value = env.get(name, "").strip()
            return value or None

        home = Path(get("ETL_HOME") or ".etl").expanduser().absolute()
        return cls(
            etl_home=home,
            source_db_url=get("SOURCE_DB_URL") or f"sqlite:///{home / 'source.db'}",
            warehouse_db_url=get("WAREHOUSE_DB_URL") or f"sqlite:///{home / 'warehouse.db'}",
            lake_url=(get("LAKE_URL") or str(home / "lake")).rstrip("/"),
            spark_master=get("SPARK_MASTER") or "local[*]",
            covid_data_dir=Path(get("COVID_DATA_DIR") or home / "data").expanduser().absolute(),
            spark_jars_ivy=ivy_dir(env),
            dagster_home=Path(get("DAGSTER_HOME") or home / "dagster").expanduser().absolute(),
            s3_endpoint_url=get("S3_ENDPOINT_URL"),
            aws_access_key_id=get("AWS_ACCESS_KEY_ID"),
            aws_secret_access_key=get("AWS_SECRET_ACCESS_KEY"),
        )

    @property
    def lake_is_s3(self) -> bool:
        return self.lake_url.startswith("s3://")

    def spark_packages(self) -> list[str]:
        """Maven coordinates the Spark driver must resolve: the S3A connector for an ``s3://`` lake, none
        otherwise, and none for Spark Connect (the server is started with them)."""
        from etl_pipeline.spark_jars import s3a_packages

        return s3a_packages() if self.lake_is_s3 and not self.spark_master.startswith("sc://") else []

    def describe(self) -> dict[str, str]:
        """The settings as strings safe to print: passwords in URLs and secret keys are redacted."""
        shown = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            shown[f.name] = "***" if f.name == "aws_secret_access_key" else redact(str(value))
        return shown


# The password runs to the last "@" before the host (it may itself hold an unescaped "@" or "/").
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*?)(?=@[^@\s]*(?:\s|$))")


def redact(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text`` by ``***``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)


def get_settings() -> Settings:
    return Settings.from_env()
