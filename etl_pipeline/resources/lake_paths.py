"""Where an asset lives in the lake: ``<LAKE_URL>/<layer>/medical/<table>.pq`` (DESIGN.md).

Shared by the MinIO IO manager (pyarrow) and the Spark IO manager so that both agree on one layout and
reach an S3 lake the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from urllib.parse import urlparse

import pyarrow.fs as pafs


def lake_path(lake_url: str, asset_key_path: Sequence[str]) -> str:
    """``s3://bucket/bronze/medical/t.pq`` or ``/abs/dir/bronze/medical/t.pq`` for key ``[bronze, medical, t]``."""
    *prefix, table = asset_key_path
    return "/".join([lake_url.rstrip("/"), *prefix, f"{table}.pq"])


def split_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/key`` -> ``("bucket", "some/key")``."""
    if not url.startswith("s3://"):
        raise ValueError(f"not an s3:// URL: {url!r}")
    bucket, _, key = url[len("s3://"):].partition("/")
    return bucket, key


def s3_filesystem(endpoint_url: str | None, access_key: str | None, secret_key: str | None) -> pafs.S3FileSystem:
    """pyarrow's S3 client for the lake: MinIO (or any S3 API) at ``endpoint_url``, else AWS.

    Buckets may be created (a new bucket is private: no policy is attached). Timeouts are bounded so that a
    stopped endpoint fails a step instead of hanging it.
    """
    options: dict = {
        "access_key": access_key,
        "secret_key": secret_key,
        "region": os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
        "allow_bucket_creation": True,
        "connect_timeout": 10,
        "request_timeout": 60,
    }
    if endpoint_url:
        parsed = urlparse(endpoint_url)
        options.update(endpoint_override=parsed.netloc, scheme=parsed.scheme)
    return pafs.S3FileSystem(**options)
