"""Building blocks shared by the asset checks of every Spark layer."""

from __future__ import annotations

from collections.abc import Sequence

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.transforms import quality


def finding_result(finding: quality.Finding, *, severity: dg.AssetCheckSeverity, what: str) -> dg.AssetCheckResult:
    """Pass when nothing was found; otherwise fail at ``severity`` with the count and a few examples."""
    return dg.AssetCheckResult(
        passed=finding["count"] == 0,
        severity=severity,
        description=f"{finding['count']} {what}" if finding["count"] else f"no {what}",
        metadata={"count": finding["count"], "examples": finding["examples"]},
    )


def key_checks(asset_key: Sequence[str], keys: Sequence[str]) -> list[dg.AssetChecksDefinition]:
    """Two blocking checks on a table: its key columns are never NULL, and no key is held by two rows."""
    table = asset_key[-1]
    key_list = ", ".join(keys)

    @dg.asset_check(asset=dg.AssetKey(list(asset_key)), name="keys_not_null", blocking=True,
                    description=f"No NULL in the key ({key_list}).")
    def keys_not_null(df: DataFrame) -> dg.AssetCheckResult:
        return finding_result(quality.summarize(quality.null_keys(df, keys)), severity=dg.AssetCheckSeverity.ERROR,
                              what=f"rows of {table} with a NULL key column")

    @dg.asset_check(asset=dg.AssetKey(list(asset_key)), name="keys_unique", blocking=True,
                    description=f"Exactly one row per ({key_list}).")
    def keys_unique(df: DataFrame) -> dg.AssetCheckResult:
        return finding_result(quality.summarize(quality.duplicate_keys(df, keys), list(keys)),
                              severity=dg.AssetCheckSeverity.ERROR, what=f"keys of {table} held by several rows")

    return [keys_not_null, keys_unique]
