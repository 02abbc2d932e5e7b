"""Data-quality findings as small DataFrames, and a helper that turns one into check metadata.

Each finding function returns the offending rows (empty when all is well), lazily; the checks
(``assets/checks.py``: ``finding``, ``findings_by``) turn them into a count and a handful of examples.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from functools import reduce
from operator import or_
from typing import Any, TypedDict

from pyspark.sql import Column, DataFrame, Row, Window
from pyspark.sql import functions as F

from etl_pipeline.transforms.gold import MEASURES, country_last_values


class Finding(TypedDict):
    count: int
    examples: list[dict[str, Any]]


def _any(conditions: Sequence[Column]) -> Column:
    return reduce(or_, conditions)


def duplicate_keys(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Keys held by more than one row: the key columns and ``rows``."""
    return df.groupBy(*keys).agg(F.count("*").alias("rows")).where(F.col("rows") > 1)


def null_keys(df: DataFrame, keys: Sequence[str]) -> DataFrame:
    """Rows with a NULL in any key column."""
    return df.where(_any([F.col(k).isNull() for k in keys]))


def _mismatches(left: DataFrame, right: DataFrame, keys: Sequence[str], prefixes: tuple[str, str]) -> DataFrame:
    """Full outer join of two tables on ``keys``; rows where any measure differs (or one side is missing).

    Output: the keys, then ``<left prefix><measure>`` and ``<right prefix><measure>`` per measure.
    """
    sides = [
        side.select(*keys, *(F.col(m).alias(f"{prefix}{m}") for m in MEASURES))
        for side, prefix in zip((left, right), prefixes)
    ]
    left_prefix, right_prefix = prefixes
    paired = [c for m in MEASURES for c in (f"{left_prefix}{m}", f"{right_prefix}{m}")]
    return (
        sides[0]
        .join(sides[1], list(keys), "full")
        .where(_any([~F.col(f"{left_prefix}{m}").eqNullSafe(F.col(f"{right_prefix}{m}")) for m in MEASURES]))
        .select(*keys, *paired)
    )


def reconcile_country_totals(daily: DataFrame, country_wise: DataFrame) -> DataFrame:
    """Countries whose gold values on their last date differ from ``covid19_country_wise``
    (``gold_<measure>``, ``source_<measure>``); a country missing on one side is a mismatch too."""
    return _mismatches(country_last_values(daily), country_wise, ["country_region"], ("gold_", "source_"))


def reconcile_daily_with_positions(time_series: DataFrame, positions: DataFrame) -> DataFrame:
    """(date, country_region) where the sum over the country's position rows differs from the time series
    (``time_series_<measure>``, ``positions_<measure>``)."""
    keys = ["date", "country_region"]
    sums = positions.groupBy(*keys).agg(*(F.sum(m).alias(m) for m in MEASURES))
    return _mismatches(time_series, sums, keys, ("time_series_", "positions_"))


def provinces_not_summing(time_series: DataFrame, positions: DataFrame) -> DataFrame:
    """Per country, the dates where :func:`reconcile_daily_with_positions` finds a difference: ``country_region``,
    ``dates`` (how many), ``first_date``, ``last_date`` and ``<measure>_difference``, the positions' sum minus
    the time series on the last such date (a side without a row counts 0)."""
    differences = [
        (F.coalesce(F.col(f"positions_{m}"), F.lit(0)) - F.coalesce(F.col(f"time_series_{m}"), F.lit(0)))
        for m in MEASURES
    ]
    return reconcile_daily_with_positions(time_series, positions).groupBy("country_region").agg(
        F.count("*").alias("dates"),
        F.min("date").alias("first_date"),
        F.max("date").alias("last_date"),
        *(F.max_by(d, "date").alias(f"{m}_difference") for m, d in zip(MEASURES, differences)),
    )


def unknown_countries(tables: Mapping[str, DataFrame], reference: DataFrame) -> DataFrame:
    """Country names of the JHU ``tables`` (by table name) that the reference does not know, one row per name
    with where it occurs: ``country_region``, ``first_date`` and ``last_date`` over the tables with a ``date``,
    and ``rows_in_<table>`` per table (0 where the name does not occur)."""
    known = F.broadcast(reference.select("country_region"))
    found = None
    for name, df in tables.items():
        dated = "date" in df.columns
        part = df.join(known, "country_region", "left_anti").groupBy("country_region").agg(
            F.count("*").alias(f"rows_in_{name}"),
            (F.min("date") if dated else F.lit(None).cast("date")).alias(f"_first_{name}"),
            (F.max("date") if dated else F.lit(None).cast("date")).alias(f"_last_{name}"),
        )
        found = part if found is None else found.join(part, "country_region", "full")
    return found.select(
        "country_region",
        F.least(*(F.col(f"_first_{name}") for name in tables)).alias("first_date"),
        F.greatest(*(F.col(f"_last_{name}") for name in tables)).alias("last_date"),
        *(F.coalesce(F.col(f"rows_in_{name}"), F.lit(0)).alias(f"rows_in_{name}") for name in tables),
    )


def countries_without_worldometer_row(
    countries: DataFrame, worldometer_conformed: DataFrame, reference: DataFrame
) -> DataFrame:
    """Countries of ``countries`` (silver) that no worldometer row belongs to, so that their population is NULL,
    other than those the reference records as absent from worldometer (no ``worldometer_name``):
    ``country_region``, ``continent``."""
    matched = worldometer_conformed.where(F.col("country_region").isNotNull()).select("country_region")
    reviewed_absent = reference.where(F.col("worldometer_name").isNull()).select("country_region")
    return (
        countries.join(matched, "country_region", "left_anti")
        .join(F.broadcast(reviewed_absent), "country_region", "left_anti")
        .select("country_region", "continent")
    )


def reconcile_overall(gold_continent: DataFrame, country_wise: DataFrame) -> DataFrame:
    """Four rows, one per measure: ``measure, gold_total, source_total, difference``.

    Gold totals sum ``covid19_continent_stats`` (the ``Unknown`` bucket included); an empty side counts 0.
    """
    gold = gold_continent.agg(*(F.coalesce(F.sum(f"total_{m}"), F.lit(0)).alias(m) for m in MEASURES))
    source = country_wise.agg(*(F.coalesce(F.sum(m), F.lit(0)).alias(m) for m in MEASURES))
    rows = F.array(
        *(
            F.struct(
                F.lit(m).alias("measure"), gold[m].alias("gold_total"), source[m].alias("source_total")
            )
            for m in MEASURES
        )
    )
    return (
        gold.crossJoin(source)
        .select(F.explode(rows).alias("row"))
        .select("row.*")
        .withColumn("difference", F.col("gold_total") - F.col("source_total"))
    )


def cumulative_decreases(
    df: DataFrame, partition_cols: Sequence[str], order_col: str, value_cols: Sequence[str]
) -> DataFrame:
    """Rows where a cumulative value is lower than on the previous ``order_col`` of its partition, one per
    (row, value column), every column searched in one pass: the partition columns, ``order_col``, ``measure``
    (the column's name), ``previous_value`` and ``value``. Count per column with ``findings_by(..., "measure")``."""
    window = Window.partitionBy(*partition_cols).orderBy(order_col)
    previous = [F.lag(c).over(window).alias(f"_previous_{c}") for c in value_cols]
    changes = F.array(*(
        F.struct(F.lit(c).alias("measure"), F.col(f"_previous_{c}").alias("previous_value"), F.col(c).alias("value"))
        for c in value_cols
    ))
    decreased = F.filter(changes, lambda change: change["value"] < change["previous_value"])
    return (
        df.select(*partition_cols, order_col, *value_cols, *previous)
        .select(*partition_cols, order_col, F.explode(decreased).alias("change"))
        .select(*partition_cols, order_col, "change.*")
    )


def negative_values(df: DataFrame, columns: Sequence[str]) -> DataFrame:
    """One row per (row of ``df``, negative column): all columns of ``df`` plus ``negative_column``
    naming the column that is negative. Count per column with ``findings_by(..., "negative_column")``."""
    negative = F.array_compact(F.array(*(F.when(F.col(c) < 0, F.lit(c)) for c in columns)))
    return df.select("*", F.explode(negative).alias("negative_column"))


def worldometer_only(worldometer_conformed: DataFrame) -> DataFrame:
    """Worldometer rows that matched no JHU country: ships and territories, kept out of continent totals on
    purpose, and any spelling the reference does not know yet."""
    return worldometer_conformed.where(F.col("country_region").isNull()).select(
        "worldometer_name", "continent", "population", "total_cases"
    )


def continent_disagreements(worldometer_conformed: DataFrame, reference: DataFrame) -> DataFrame:
    """Countries where worldometer names a continent that differs from the reference's:
    ``country_region, worldometer_name, worldometer_continent, reference_continent``."""
    return (
        worldometer_conformed.where(F.col("country_region").isNotNull() & F.col("continent").isNotNull())
        .select("country_region", "worldometer_name", F.col("continent").alias("worldometer_continent"))
        .join(reference.select("country_region", F.col("continent").alias("reference_continent")), "country_region")
        .where(F.col("worldometer_continent") != F.col("reference_continent"))
    )


def plain_dict(row: Row, drop: Sequence[str] = ()) -> dict[str, Any]:
    """A collected row, less the ``drop`` columns, as a dict that JSON (Dagster metadata) can hold: dates as ISO
    strings."""
    return {k: v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v for k, v in row.asDict().items()
            if k not in drop}


#: Relative difference under which a recomputed measure counts as equal (floating-point sums in another order).
MEASURE_TOLERANCE = 1e-9


def measures_differing(table: DataFrame, entity: Sequence[str], *, population: DataFrame | None = None,
                       derive_new: bool = False) -> DataFrame:
    """Rows of ``table`` whose measures (:mod:`etl_pipeline.transforms.measures`) differ from an independent
    computation: one row per (row, measure) with the ``entity`` columns, ``date``, ``measure``, ``value`` and
    ``expected`` (as doubles). Count per measure with ``findings_by(..., "measure")``.

    Independent: one group-by instead of the window functions that built the table. Each row is copied onto
    the 7 days after it (``_offset`` 1..7) and its own day (0), and every (entity, day) gathers what it needs
    from the copies: yesterday's cumulative counts (offset 1), the daily counts of the 7 days of its window
    (offsets 0..6) and, where ``new_*`` are differences of the cumulative counts (``derive_new``, the location
    table), the counts a week earlier (offset 7), since those 7 differences add up to ``count(t) - count(t-7)``
    when all 8 days are there. Only the counts are copied; the measures under test are joined back by key
    (carried through the 8 copies, they made the check twice as slow: 29 s against 16 s on the 4.9 M-row
    location table at 100x, PERFORMANCE.md). The 100th-case date is a grouped minimum; the population comes from
    ``population`` (``country_region``, ``population``: the silver countries) when given, and is compared
    too; ``derive_new`` also compares ``new_cases``/``new_deaths`` with the cumulative counts' differences.
    Values are equal when both are NULL or they differ by at most ``MEASURE_TOLERANCE`` relatively.
    """
    keys = [*entity, "date"]
    daily = ["new_cases", "new_deaths"]
    cumulative = [c for c in ("confirmed", "deaths", "recovered") if c in table.columns]
    flagged_daily = [c for c in ("new_cases", "new_deaths", "new_recovered") if c in table.columns]
    given_daily = [] if derive_new else flagged_daily
    # The recomputed measures, by name (column expressions, resolved on ``expected`` below).
    columns: dict[str, Column] = {
        f"{c}_7d_avg": F.when(F.col(f"_{c}_days") == 7, F.col(f"_{c}_sum") / 7.0) for c in daily}
    if derive_new:
        columns |= {c: F.col(c) for c in daily}
    if population is not None:
        columns["population"] = F.col("population")
        for measure in ("confirmed", "deaths", *daily, *(f"{c}_7d_avg" for c in daily)):
            value = columns.get(measure, F.col(measure))
            for suffix, factor in (("per_100k", 100_000), ("per_million", 1_000_000)):
                columns[f"{measure}_{suffix}"] = F.when(F.col("population") > 0,
                                                        value * factor / F.col("population"))
    days_since = F.datediff("date", "_first_100")
    columns |= {
        "case_fatality_ratio": F.when(F.col("confirmed") > 0, F.col("deaths") / F.col("confirmed")),
        "days_since_100_cases": F.when(F.col("date") >= F.col("_first_100"), days_since),
        "downward_revision": F.greatest(
            *(F.coalesce(F.col(c) < 0, F.lit(False)) for c in flagged_daily),
            *(F.coalesce(F.col(c) < F.col(f"_yesterday_{c}"), F.lit(False)) for c in cumulative)),
    }

    offset = F.col("_offset")
    copies = (table.select(*entity, "date", *cumulative, *given_daily,
                           F.explode(F.sequence(F.lit(0), F.lit(7))).alias("_offset"))
              .withColumn("date", F.date_add("date", offset)))

    def at(days_before: int, column: str) -> Column:
        return F.max(F.when(offset == days_before, F.col(column)))

    counts = dict(zip(daily, ("confirmed", "deaths")))  # what each daily count is the difference of
    agg = {c: at(0, c) for c in [*cumulative, *given_daily]}
    agg |= {f"_yesterday_{c}": at(1, c) for c in cumulative}
    if derive_new:
        agg |= {f"_week_ago_{count}": at(7, count) for count in counts.values()}
        agg |= {f"_{new}_days": F.count(F.when(offset <= 7, F.col(count))) - 1 for new, count in counts.items()}
    else:
        agg |= {f"_{new}_sum": F.sum(F.when(offset < 7, F.col(new))) for new in daily}
        agg |= {f"_{new}_days": F.count(F.when(offset < 7, F.col(new))) for new in daily}
    values = table.select(*keys, *(F.col(k).alias(f"_value_{k}") for k in columns))
    expected = (copies.groupBy(*keys).agg(*(value.alias(name) for name, value in agg.items()))
                .join(values, keys))  # the table's rows only, not the 7 days after an entity's last one
    if derive_new:
        expected = expected.withColumns(
            {f"_{new}_sum": F.col(count) - F.col(f"_week_ago_{count}") for new, count in counts.items()}
            | {new: F.col(count) - F.col(f"_yesterday_{count}") for new, count in counts.items()})
    first_100 = table.where(F.col("confirmed") >= 100).groupBy(*entity).agg(F.min("date").alias("_first_100"))
    expected = expected.join(F.broadcast(first_100), list(entity), "left")
    if population is not None:
        expected = expected.join(F.broadcast(population.select("country_region", "population")), "country_region",
                                 "left")
    pairs = F.array(*(F.struct(F.lit(k).alias("measure"), F.col(f"_value_{k}").cast("double").alias("value"),
                               v.cast("double").alias("expected")) for k, v in columns.items()))

    def equal(pair: Column) -> Column:
        both_null = pair["value"].isNull() & pair["expected"].isNull()
        close = F.abs(pair["value"] - pair["expected"]) <= MEASURE_TOLERANCE * F.greatest(
            F.lit(1.0), F.abs(pair["expected"]))
        return both_null | F.coalesce(close, F.lit(False))

    differs = F.filter(pairs, lambda pair: ~equal(pair))
    return expected.select(*keys, F.explode(differs).alias("pair")).select(*keys, "pair.*")
