"""The lake: where ``LAKE_URL`` is and how every reader and writer reaches it, decided once.

The lake is a local directory or ``s3://bucket[/prefix]`` (MinIO or any S3 API at ``s3_endpoint_url``). An
asset ``[layer, medical, table]`` is the Delta table ``<lake>/<layer>/medical/<table>`` (DESIGN.md). Both lake IO
managers (delta-rs and Spark), the Spark session (its ``s3a`` settings) and ``covid-etl lake`` take one
:class:`LakeResource`, so they agree on the layout, the endpoint, the region and the credentials.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlparse

import dagster as dg
import pyarrow.fs as pafs
from pydantic import Field

from etl_pipeline.resources.delta_lake import DEFAULT_RETENTION_HOURS
from etl_pipeline.settings import Settings


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``; ``ValueError`` for another scheme."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


class LakeResource(dg.ConfigurableResource):
    """``LAKE_URL`` with the S3 endpoint, region and credentials that reach it (unused for a local lake)."""

    url: str = Field(description="a local directory or s3://bucket[/prefix]")
    s3_endpoint_url: str | None = Field(default=None, description="MinIO or another S3 API; default: AWS")
    region: str = "us-east-1"
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    retention_hours: int = Field(default=DEFAULT_RETENTION_HOURS,
                                 description="VACUUM keeps the files of versions younger than this")

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    def table_uri(self, key_path: Sequence[str]) -> str:
        """``s3://bucket/bronze/medical/t`` or ``/abs/dir/bronze/medical/t`` for key ``[bronze, medical, t]``."""
        base = self.url.rstrip("/") if self.is_s3 else os.path.abspath(self.url)
        return "/".join([base, *key_path])

    def spark_uri(self, key_path: Sequence[str]) -> str:
        """The same table as Spark addresses it: ``s3a://`` (Hadoop's S3 connector) for an S3 lake."""
        return self.spark_uri_of(self.table_uri(key_path))

    @staticmethod
    def spark_uri_of(uri: str) -> str:
        """A lake URI (``s3://...``, a local path or ``file://`` URI) as Spark addresses it: ``s3://`` becomes
        ``s3a://``."""
        return "s3a://" + uri[len("s3://"):] if uri.startswith("s3://") else uri

    def where(self, uri: str) -> str:
        """Where ``uri`` is, for error messages (no credential)."""
        if self.is_s3:
            bucket, key = split_s3_url(uri)
            return f"endpoint {self.s3_endpoint_url or 'AWS default'}, bucket {bucket!r}, table {key!r}"
        return f"path {uri!r}"

    def storage_options(self) -> dict[str, str]:
        """delta-rs ``storage_options`` (https://delta-io.github.io/delta-rs/integrations/object-storage/s3/); none
        for a local lake.

        Commits use S3 conditional writes (``aws_conditional_put=etag``, which MinIO, AWS S3 and moto honour): two
        writers of one table cannot both create the same log entry, so one commit wins and the other fails with
        ``CommitFailedError`` instead of overwriting it, with no DynamoDB lock table.
        """
        if not self.is_s3:
            return {}
        options = {"AWS_REGION": self.region, "aws_conditional_put": "etag"}
        if self.s3_endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.s3_endpoint_url
            options["AWS_ALLOW_HTTP"] = str(self.s3_endpoint_url.startswith("http://")).lower()
        if self.aws_access_key_id:
            options["AWS_ACCESS_KEY_ID"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            options["AWS_SECRET_ACCESS_KEY"] = self.aws_secret_access_key
        return options

    def s3a_conf(self) -> dict[str, str]:
        """Spark's ``spark.hadoop.fs.s3a.*`` settings reaching this lake (none for a local lake)."""
        if not self.is_s3:
            return {}
        conf = {"spark.hadoop.fs.s3a.endpoint.region": self.region}
        if self.s3_endpoint_url:
            conf["spark.hadoop.fs.s3a.endpoint"] = self.s3_endpoint_url
            conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
            conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(self.s3_endpoint_url.startswith("https://")).lower()
        if self.aws_access_key_id:
            conf["spark.hadoop.fs.s3a.access.key"] = self.aws_access_key_id
        if self.aws_secret_access_key:
            conf["spark.hadoop.fs.s3a.secret.key"] = self.aws_secret_access_key
        return conf

    def filesystem(self, connect_timeout: float = 10, request_timeout: float = 60,
                   attempts: int | None = None) -> pafs.S3FileSystem:
        """pyarrow's S3 client for the lake, timeouts bounded so that a stopped endpoint fails instead of hanging;
        ``attempts``: per request (default: the AWS SDK's standard retries)."""
        options: dict = {"access_key": self.aws_access_key_id, "secret_key": self.aws_secret_access_key,
                         "region": self.region, "allow_bucket_creation": True,
                         "connect_timeout": connect_timeout, "request_timeout": request_timeout}
        if attempts is not None:
            options["retry_strategy"] = pafs.AwsStandardS3RetryStrategy(max_attempts=attempts)
        if self.s3_endpoint_url:
            parsed = urlparse(self.s3_endpoint_url)
            options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
        return pafs.S3FileSystem(**options)

    def ensure_bucket(self) -> None:
        """Create the lake's bucket when missing (private: no policy is attached); nothing for a local lake."""
        if self.is_s3:
            bucket, _ = split_s3_url(self.url)
            fs = self.filesystem()
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                fs.create_dir(bucket)


def lake_from_settings(settings: Settings, secret: Callable[[str, str | None], Any] = lambda _name, value: value,
                       ) -> LakeResource:
    """The lake of ``settings``. ``secret(variable, value)`` passes each credential (Dagster definitions make it an
    ``EnvVar``; code running outside a run keeps the value)."""
    return LakeResource(
        url=settings.lake_url, s3_endpoint_url=settings.s3_endpoint_url, region=settings.aws_region,
        aws_access_key_id=secret("AWS_ACCESS_KEY_ID", settings.aws_access_key_id),
        aws_secret_access_key=secret("AWS_SECRET_ACCESS_KEY", settings.aws_secret_access_key),
        retention_hours=settings.lake_retention_hours,
    )
