"""Building blocks shared by the asset checks of every Spark layer.

The checks of one table run as one step (a ``multi_asset_check``): its tables are read once, and each finding
becomes a count plus a few examples in a single Spark query. One step and one read per check, and a count
query plus an examples query per finding, made the checks the largest part of a run (``covid-etl bench``).

A check's description states the count and the first examples (:func:`describe`): it is what ``covid-etl run``
prints for a failed or warning check and what the Dagster UI shows first, so it must say what is wrong without
opening the metadata.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import reduce
from operator import or_

import dagster as dg
from pyspark.sql import DataFrame, Row, Window
from pyspark.sql import functions as F

from etl_pipeline.transforms import quality

EXAMPLES = 5
_COUNT, _RANK = "__finding_count", "__finding_rank"
_KIND, _NULL_KEY, _SEVERAL = "__key_problem", "null_key", "several_rows"


def finding(df: DataFrame, order_by: Sequence[str] = (), examples: int = EXAMPLES) -> quality.Finding:
    """Count of rows of ``df`` and the first ``examples`` of them by ``order_by`` (all columns when empty), as
    plain dicts, from one Spark query (the first rows, a top-k, each carrying the count of all rows)."""
    first = df.orderBy(*(order_by or df.columns)).limit(examples)
    rows = first.crossJoin(df.agg(F.count("*").alias(_COUNT))).collect()
    return _finding(rows)


def findings_by(df: DataFrame, column: str, order_by: Sequence[str] = (),
                examples: int = EXAMPLES) -> dict[str, quality.Finding]:
    """:func:`finding` per value of ``column`` (e.g. ``negative_column``), from one Spark query; values
    without rows are absent.

    Each group's count and its first rows come from window functions over the group (a row number in
    ``order_by`` order), so only ``examples`` rows per group reach this process. (Spark 4.2's
    ``min_by(x, ord, k)`` would do it in one aggregate, but Sail does not know its third argument.)
    """
    ordered = Window.partitionBy(column).orderBy(*(order_by or df.columns))
    rows = (df.withColumn(_COUNT, F.count("*").over(Window.partitionBy(column)))
            .withColumn(_RANK, F.row_number().over(ordered))
            .filter(F.col(_RANK) <= examples)
            .orderBy(column, _RANK)
            .collect())
    values = dict.fromkeys(r[column] for r in rows)  # in order, each once
    return {value: _finding([r for r in rows if r[column] == value]) for value in values}


def _finding(rows: Sequence[Row]) -> quality.Finding:
    """The finding of a group's first rows, each holding the group's row count in ``_COUNT``."""
    return quality.Finding(count=rows[0][_COUNT] if rows else 0,
                           examples=[quality.plain_dict(r, drop=(_COUNT, _RANK)) for r in rows])


def render(example: dict) -> str:
    """One example as ``name=value, ...`` (text quoted, so that a name holding a comma stays one value)."""
    return ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in example.items())


def describe(found: quality.Finding, what: str) -> str:
    """``"<count> <what>: <example>; <example>"`` (``...`` when there are more), or ``"no <what>"``."""
    if not found["count"]:
        return f"no {what}"
    more = "; ..." if found["count"] > len(found["examples"]) else ""
    return f"{found['count']} {what}: " + "; ".join(f"({render(e)})" for e in found["examples"]) + more


def finding_result(found: quality.Finding, *, check: dg.AssetCheckKey, severity: dg.AssetCheckSeverity,
                   what: str) -> dg.AssetCheckResult:
    """Pass when nothing was found; otherwise fail at ``severity`` with the count and a few examples."""
    return dg.AssetCheckResult(
        asset_key=check.asset_key,
        check_name=check.name,
        passed=found["count"] == 0,
        severity=severity,
        description=describe(found, what),
        metadata={"count": found["count"], "examples": found["examples"]},
    )


@dataclass(frozen=True)
class KeyChecks:
    """The two blocking checks every table gets: its key columns are never NULL, no key is held by two rows."""

    asset_key: dg.AssetKey
    keys: tuple[str, ...]

    @property
    def specs(self) -> list[dg.AssetCheckSpec]:
        key_list = ", ".join(self.keys)
        return [
            dg.AssetCheckSpec("keys_not_null", asset=self.asset_key, blocking=True,
                              description=f"No NULL in the key ({key_list})."),
            dg.AssetCheckSpec("keys_unique", asset=self.asset_key, blocking=True,
                              description=f"Exactly one row per ({key_list})."),
        ]

    def evaluate(self, df: DataFrame) -> Iterator[dg.AssetCheckResult]:
        """Both checks from one aggregation by key, whose offending groups (a NULL in the key, or several rows)
        are split by kind with :func:`findings_by`; the rows with a NULL key are only fetched (for examples)
        when there are some."""
        table, keys, error = self.asset_key.path[-1], list(self.keys), dg.AssetCheckSeverity.ERROR
        groups = df.groupBy(*keys).agg(F.count("*").alias("rows"))
        kinds = F.array_compact(F.array(F.when(reduce(or_, [F.col(k).isNull() for k in keys]), F.lit(_NULL_KEY)),
                                        F.when(F.col("rows") > 1, F.lit(_SEVERAL))))
        offending = groups.select(*keys, "rows", F.explode(kinds).alias(_KIND))
        found = findings_by(offending, _KIND, keys)
        nulls = finding(quality.null_keys(df, keys)) if _NULL_KEY in found else quality.Finding(count=0, examples=[])
        duplicates = found.get(_SEVERAL, quality.Finding(count=0, examples=[]))
        for example in duplicates["examples"]:
            del example[_KIND]
        yield finding_result(nulls, check=self.check("keys_not_null"), severity=error,
                             what=f"rows of {table} with a NULL key column")
        yield finding_result(duplicates, check=self.check("keys_unique"), severity=error,
                             what=f"keys of {table} held by several rows")

    def check(self, name: str) -> dg.AssetCheckKey:
        return dg.AssetCheckKey(self.asset_key, name)


def table_step_name(asset_key: dg.AssetKey) -> str:
    """``<layer>__medical__<table>_checks``: the step runs with its table's layer."""
    return "__".join(asset_key.path) + "_checks"


def key_checks(asset_key: dg.AssetKey, keys: Sequence[str]) -> dg.AssetChecksDefinition:
    """One step with the two key checks of a table that has no other check."""
    checks = KeyChecks(asset_key, tuple(keys))

    @dg.multi_asset_check(specs=checks.specs, name=table_step_name(checks.asset_key),
                          ins={"df": dg.AssetIn(key=checks.asset_key)})
    def _key_checks(df: DataFrame) -> Iterator[dg.AssetCheckResult]:
        yield from checks.evaluate(df)

    return _key_checks
