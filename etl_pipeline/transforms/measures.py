"""Epidemiological measures per (date, entity), an entity being a country or a location (country, province).

The measures Our World in Data's COVID-19 explorer leads with (https://ourworldindata.org/covid-cases,
variables such as ``new_cases_smoothed`` and ``total_cases_per_million``), computed once here so that the warehouse,
the dashboard and SQL users see the same numbers:

- ``<count>_7d_avg``: the **trailing** 7-day mean of a daily count, over the day and the 6 days before it (OWID
  smooths the same way). NULL unless all 7 days have a value, so a series' first 6 days have none. Negative daily
  counts (downward revisions) are averaged as reported.
- ``<measure>_per_100k`` and ``<measure>_per_million``: the value times 100,000 (1,000,000) divided by the
  population (worldometer, persons); NULL without a known population.
- ``case_fatality_ratio``: deaths / confirmed (a ratio, 0-1, not a percentage), NULL unless confirmed > 0.
- ``days_since_100_cases``: days since the first date with at least 100 confirmed cases (0 on that date); NULL
  before it. Counting goes on if a later revision takes confirmed back under 100.
- ``downward_revision``: true when the source revised a count down that day: a daily count (new cases, deaths,
  recovered) is negative, or a cumulative count (confirmed, deaths, recovered) is lower than the day before (JHU's
  daily columns are clipped at 0, so a revision of confirmed cases shows only there). Counts are kept as reported;
  this flag makes the revisions visible. It covers the columns the table has.

Dates of an entity are days; a gap in them is not filled (a 7-day window over a gap has fewer than 7 values, so
its mean is NULL).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import reduce
from operator import or_

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

#: Daily counts averaged over 7 days.
DAILY_COUNTS = ("new_cases", "new_deaths")
#: Daily counts whose negative values ``downward_revision`` flags, and cumulative counts whose decreases it flags
#: (those the table has).
FLAGGED_DAILY = ("new_cases", "new_deaths", "new_recovered")
FLAGGED_CUMULATIVE = ("confirmed", "deaths", "recovered")
#: Days in the rolling window.
WINDOW_DAYS = 7
#: Confirmed cases that start ``days_since_100_cases``.
CASES_THRESHOLD = 100
#: (suffix, factor) of the per-capita rates.
PER_CAPITA = (("per_100k", 100_000), ("per_million", 1_000_000))
#: The measures given per capita, each under both suffixes.
PER_CAPITA_MEASURES = ("confirmed", "deaths", "new_cases", "new_deaths", "new_cases_7d_avg", "new_deaths_7d_avg")


def rolling_columns() -> list[str]:
    return [f"{c}_7d_avg" for c in DAILY_COUNTS]


def per_capita_columns() -> list[str]:
    return [f"{m}_{suffix}" for m in PER_CAPITA_MEASURES for suffix, _ in PER_CAPITA]


def ratio_columns() -> list[str]:
    return ["case_fatality_ratio", "days_since_100_cases", "downward_revision"]


def _day_number(date: str) -> Column:
    return F.unix_date(F.col(date))


def daily_differences(df: DataFrame, entity: Sequence[str], columns: dict[str, str]) -> DataFrame:
    """``df`` plus, per ``new column -> cumulative column``, the change from the previous day; NULL on an entity's
    first date and after a missing day (no previous day to difference against)."""
    window = Window.partitionBy(*entity).orderBy("date")
    previous_day = F.lag(_day_number("date")).over(window)
    follows = previous_day == _day_number("date") - 1
    return df.withColumns({new: F.when(follows, F.col(cumulative) - F.lag(cumulative).over(window))
                           for new, cumulative in columns.items()})


def with_measures(df: DataFrame, entity: Sequence[str], *, per_capita: bool) -> DataFrame:
    """``df`` (``date``, the ``entity`` columns, ``confirmed``, ``deaths``, ``new_cases``, ``new_deaths``, and
    ``population`` when ``per_capita``) plus the measures of this module, in the order of
    :func:`rolling_columns`, :func:`per_capita_columns` (when ``per_capita``), :func:`ratio_columns`."""
    days = Window.partitionBy(*entity).orderBy(_day_number("date")).rangeBetween(-(WINDOW_DAYS - 1), 0)
    everything = Window.partitionBy(*entity)
    ordered = Window.partitionBy(*entity).orderBy("date")
    yesterday = F.lag(_day_number("date")).over(ordered) == _day_number("date") - 1
    revised = [F.col(c) < 0 for c in FLAGGED_DAILY if c in df.columns] + [
        yesterday & (F.col(c) < F.lag(c).over(ordered)) for c in FLAGGED_CUMULATIVE if c in df.columns]
    rolling = {f"{c}_7d_avg": F.when(F.count(c).over(days) == WINDOW_DAYS, F.avg(c).over(days))
               for c in DAILY_COUNTS}
    first_100 = F.min(F.when(F.col("confirmed") >= CASES_THRESHOLD, F.col("date"))).over(everything)
    since = F.datediff("date", first_100).cast("int")  # an int on every engine (Sail's datediff: a bigint)
    ratios = {
        "case_fatality_ratio": F.when(F.col("confirmed") > 0, F.col("deaths") / F.col("confirmed")),
        "days_since_100_cases": F.when(since >= 0, since),
        "downward_revision": F.coalesce(reduce(or_, [F.coalesce(r, F.lit(False)) for r in revised]), F.lit(False)),
    }
    out = df.withColumns(rolling)
    if per_capita:
        known = F.col("population") > 0
        out = out.withColumns({f"{m}_{suffix}": F.when(known, F.col(m) * float(factor) / F.col("population"))
                               for m in PER_CAPITA_MEASURES for suffix, factor in PER_CAPITA})
    return out.withColumns(ratios)

