"""Where an asset lives in the lake: ``<LAKE_URL>/<layer>/medical/<table>.pq`` (DESIGN.md).

Shared by the MinIO IO manager (pyarrow) and the Spark IO manager so that both agree on one layout.
"""

from __future__ import annotations

from collections.abc import Sequence


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
