"""Gold layer (Spark): the tables the warehouse loads 1:1, each reconciled with the source by asset checks.

``covid19_daily_stats`` and ``covid19_continent_stats`` are the tables users know; ``dim_country``,
``dim_date``, ``fact_daily_cases`` and ``fact_location_daily`` form the star schema.
"""

from __future__ import annotations

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.assets.checks import finding_result, key_checks
from etl_pipeline.assets.silver import silver_in
from etl_pipeline.transforms import gold, quality
from etl_pipeline.warehouse_model import WAREHOUSE_TABLES

SPARK = {"group_name": "gold", "io_manager_key": "spark_io_manager", "kinds": {"pyspark", "parquet"}}


def gold_key(table: str) -> list[str]:
    return ["gold", "medical", table]


def gold_in(table: str) -> dg.AssetIn:
    return dg.AssetIn(key=gold_key(table))


def _describe(table: str) -> str:
    return WAREHOUSE_TABLES[table].comment


@dg.asset(key=gold_key("covid19_daily_stats"), description=_describe("covid19_daily_stats"),
          ins={"time_series": silver_in("covid19_time_series"), "countries": silver_in("covid19_countries")}, **SPARK)
def daily_stats(time_series: DataFrame, countries: DataFrame) -> DataFrame:
    return gold.daily_stats(time_series, countries)


@dg.asset(key=gold_key("covid19_continent_stats"), description=_describe("covid19_continent_stats"),
          ins={"daily": gold_in("covid19_daily_stats"), "countries": silver_in("covid19_countries")}, **SPARK)
def continent_stats(daily: DataFrame, countries: DataFrame) -> DataFrame:
    return gold.continent_stats(daily, countries)


@dg.asset(key=gold_key("dim_country"), description=_describe("dim_country"),
          ins={"countries": silver_in("covid19_countries")}, **SPARK)
def dim_country(countries: DataFrame) -> DataFrame:
    return gold.dim_country(countries)


@dg.asset(key=gold_key("dim_date"), description=_describe("dim_date"),
          ins={"daily": gold_in("covid19_daily_stats")}, **SPARK)
def dim_date(daily: DataFrame) -> DataFrame:
    return gold.dim_date(daily)


@dg.asset(key=gold_key("fact_daily_cases"), description=_describe("fact_daily_cases"),
          ins={"daily": gold_in("covid19_daily_stats")}, **SPARK)
def fact_daily_cases(daily: DataFrame) -> DataFrame:
    return gold.fact_daily_cases(daily)


@dg.asset(key=gold_key("fact_location_daily"), description=_describe("fact_location_daily"),
          ins={"positions": silver_in("covid19_cases_position")}, **SPARK)
def fact_location_daily(positions: DataFrame) -> DataFrame:
    return gold.fact_location_daily(positions)


gold_assets = [daily_stats, continent_stats, dim_country, dim_date, fact_daily_cases, fact_location_daily]

_COUNTRY_WISE = {"country_wise": silver_in("covid19_country_wise")}
_ERROR, _WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN


@dg.asset_check(asset=daily_stats, name="reconciles_with_country_wise", blocking=True, additional_ins=_COUNTRY_WISE,
                description="Each country's counts on its last date equal covid19_country_wise exactly.")
def reconciles_with_country_wise(daily_stats: DataFrame, country_wise: DataFrame) -> dg.AssetCheckResult:
    found = quality.reconcile_country_totals(daily_stats, country_wise)
    return finding_result(quality.summarize(found, ["country_region"]), severity=_ERROR,
                          what="countries whose last-date counts differ from covid19_country_wise")


@dg.asset_check(asset=daily_stats, name="provinces_sum_to_country", additional_ins={
    "time_series": silver_in("covid19_time_series"), "positions": silver_in("covid19_cases_position")},
    description="Per (date, country), the position rows summed over provinces equal the time series.")
def provinces_sum_to_country(daily_stats: DataFrame, time_series: DataFrame, positions: DataFrame) -> dg.AssetCheckResult:
    found = quality.reconcile_daily_with_positions(time_series, positions)
    return finding_result(quality.summarize(found, ["date", "country_region"]), severity=_ERROR,
                          what="(date, country) pairs where provinces do not sum to the time series")


@dg.asset_check(asset=daily_stats, name="cumulative_counts_never_decrease",
                description="Data quality (warning): cumulative confirmed/deaths/recovered that go down from one "
                "day to the next, as reported by the source.")
def cumulative_counts_never_decrease(daily_stats: DataFrame) -> dg.AssetCheckResult:
    findings = {m: quality.summarize(quality.cumulative_decreases(daily_stats, ["country_region"], "date", m),
                                     ["country_region", "date"])
                for m in ("confirmed", "deaths", "recovered")}
    total = sum(f["count"] for f in findings.values())
    return dg.AssetCheckResult(
        passed=total == 0, severity=_WARN,
        description=", ".join(f"{f['count']} decreases in {m}" for m, f in findings.items()),
        metadata={f"{m}_decreases": f["count"] for m, f in findings.items()}
        | {f"{m}_examples": f["examples"] for m, f in findings.items()},
    )


@dg.asset_check(asset=daily_stats, name="no_negative_values",
                description="Data quality (warning): negative daily new counts or negative active cases.")
def no_negative_values(daily_stats: DataFrame) -> dg.AssetCheckResult:
    columns = ["new_cases", "new_deaths", "new_recovered", "active"]
    found = quality.summarize_by(quality.negative_values(daily_stats, columns), "negative_column",
                                 ["country_region", "date"])
    counts = {c: found.get(c, {"count": 0})["count"] for c in columns}
    return dg.AssetCheckResult(
        passed=sum(counts.values()) == 0, severity=_WARN,
        description=", ".join(f"{n} negative {c}" for c, n in counts.items()),
        metadata={f"negative_{c}": n for c, n in counts.items()}
        | {f"negative_{c}_examples": f["examples"] for c, f in found.items()},
    )


@dg.asset_check(asset=continent_stats, name="totals_equal_source", blocking=True, additional_ins=_COUNTRY_WISE,
                description="Continent totals add up to the source's global totals, measure by measure.")
def totals_equal_source(continent_stats: DataFrame, country_wise: DataFrame) -> dg.AssetCheckResult:
    rows = [r.asDict() for r in quality.reconcile_overall(continent_stats, country_wise).collect()]
    return dg.AssetCheckResult(
        passed=all(r["difference"] == 0 for r in rows), severity=_ERROR,
        metadata={r["measure"]: {"gold": r["gold_total"], "source": r["source_total"]} for r in rows},
    )


gold_checks = [
    *(check for table in gold_assets for check in key_checks(
        list(table.key.path), WAREHOUSE_TABLES[table.key.path[-1]].primary_key)),
    reconciles_with_country_wise,
    provinces_sum_to_country,
    cumulative_counts_never_decrease,
    no_negative_values,
    totals_equal_source,
]
