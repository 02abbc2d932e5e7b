"""Gold layer (Spark): the tables the warehouse loads 1:1, each reconciled with the source by asset checks.

``covid19_daily_stats`` and ``covid19_continent_stats`` are the tables users know; ``dim_country``,
``dim_date``, ``fact_daily_cases`` and ``fact_location_daily`` form the star schema.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.assets.checks import (
    KeyChecks,
    describe,
    finding,
    finding_result,
    findings_by,
    key_checks,
    table_step_name,
)
from etl_pipeline.assets.silver import silver_in
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.transforms import gold, quality

SPARK = {"group_name": "gold", "io_manager_key": "spark_io_manager", "kinds": {"pyspark", "delta"},
         "pool": WRITES_POOL}


def gold_in(table: str) -> dg.AssetIn:
    return dg.AssetIn(key=asset_key("gold", table))


def _describe(table: str) -> str:
    return WAREHOUSE_TABLES[table].comment


@dg.asset(key=asset_key("gold", "covid19_daily_stats"), description=_describe("covid19_daily_stats"),
          ins={"time_series": silver_in("covid19_time_series"), "countries": silver_in("covid19_countries")}, **SPARK)
def daily_stats(time_series: DataFrame, countries: DataFrame) -> DataFrame:
    return gold.daily_stats(time_series, countries)


@dg.asset(key=asset_key("gold", "covid19_continent_stats"), description=_describe("covid19_continent_stats"),
          ins={"daily": gold_in("covid19_daily_stats"), "countries": silver_in("covid19_countries")}, **SPARK)
def continent_stats(daily: DataFrame, countries: DataFrame) -> DataFrame:
    return gold.continent_stats(daily, countries)


@dg.asset(key=asset_key("gold", "dim_country"), description=_describe("dim_country"),
          ins={"countries": silver_in("covid19_countries")}, **SPARK)
def dim_country(countries: DataFrame) -> DataFrame:
    return gold.dim_country(countries)


@dg.asset(key=asset_key("gold", "dim_date"), description=_describe("dim_date"),
          ins={"daily": gold_in("covid19_daily_stats")}, **SPARK)
def dim_date(daily: DataFrame) -> DataFrame:
    return gold.dim_date(daily)


@dg.asset(key=asset_key("gold", "fact_daily_cases"), description=_describe("fact_daily_cases"),
          ins={"daily": gold_in("covid19_daily_stats")}, **SPARK)
def fact_daily_cases(daily: DataFrame) -> DataFrame:
    return gold.fact_daily_cases(daily)


@dg.asset(key=asset_key("gold", "fact_location_daily"), description=_describe("fact_location_daily"),
          ins={"positions": silver_in("covid19_cases_position")}, **SPARK)
def fact_location_daily(positions: DataFrame) -> DataFrame:
    return gold.fact_location_daily(positions)


gold_assets = [daily_stats, continent_stats, dim_country, dim_date, fact_daily_cases, fact_location_daily]

_ERROR, _WARN = dg.AssetCheckSeverity.ERROR, dg.AssetCheckSeverity.WARN

PROVINCES_SUM_TO_COUNTRY = (
    "Data quality (warning): per (date, country), the position rows summed over provinces equal the time series; "
    "a country where they do not is named with the number of dates, the first and last one, and the difference "
    "(positions minus time series). A warning, not a blocker: it compares two source tables with each other, "
    "not gold with the source. Every count in gold is the time series' own (never re-summed from provinces), and "
    "the position rows are published as the source reports them, like negative daily counts; the source, not "
    "the pipeline, has to correct them (the JHU data had such rows, e.g. ships listed as provinces of Canada)."
)

MEASURES_RECOMPUTED = (
    "The 7-day averages, per-capita rates, case fatality ratio, days since the 100th case and the downward-revision "
    "flag equal an independent computation (a group-by over rows copied onto the next 7 days instead of the window "
    "functions that built them; relative tolerance 1e-9); the failure names, per measure, how many rows differ and "
    "the first ones."
)

_DAILY = asset_key("gold", "covid19_daily_stats")
_DAILY_KEYS = KeyChecks(_DAILY, WAREHOUSE_TABLES["covid19_daily_stats"].primary_key)


@dg.multi_asset_check(
    name=table_step_name(_DAILY),
    ins={"daily_stats": gold_in("covid19_daily_stats"), "country_wise": silver_in("covid19_country_wise"),
         "time_series": silver_in("covid19_time_series"), "positions": silver_in("covid19_cases_position"),
         "countries": silver_in("covid19_countries")},
    specs=[
        *_DAILY_KEYS.specs,
        dg.AssetCheckSpec("measures_match_independent_computation", asset=_DAILY, blocking=True,
                          additional_deps=[asset_key("silver", "covid19_countries")],
                          description=MEASURES_RECOMPUTED + " Population comes from covid19_countries."),
        dg.AssetCheckSpec("reconciles_with_country_wise", asset=_DAILY, blocking=True,
                          additional_deps=[asset_key("silver", "covid19_country_wise")],
                          description="Each country's counts on its last date equal covid19_country_wise exactly."),
        dg.AssetCheckSpec("provinces_sum_to_country", asset=_DAILY,
                          additional_deps=[asset_key("silver", "covid19_time_series"),
                                           asset_key("silver", "covid19_cases_position")],
                          description=PROVINCES_SUM_TO_COUNTRY),
        dg.AssetCheckSpec("cumulative_counts_never_decrease", asset=_DAILY, description="Data quality (warning): "
                          "cumulative confirmed/deaths/recovered that go down from one day to the next, as reported "
                          "by the source."),
        dg.AssetCheckSpec("no_negative_values", asset=_DAILY, description="Data quality (warning): negative daily "
                          "new counts or negative active cases."),
    ],
)
def daily_stats_checks(daily_stats: DataFrame, country_wise: DataFrame, time_series: DataFrame,
                       positions: DataFrame, countries: DataFrame) -> Iterator[dg.AssetCheckResult]:
    yield from _DAILY_KEYS.evaluate(daily_stats)
    yield measures_recomputed(_DAILY_KEYS.check("measures_match_independent_computation"),
                              quality.measures_differing(daily_stats, ["country_region"], population=countries))
    yield finding_result(finding(quality.reconcile_country_totals(daily_stats, country_wise), ["country_region"]),
                         check=_DAILY_KEYS.check("reconciles_with_country_wise"), severity=_ERROR,
                         what="countries whose last-date counts differ from covid19_country_wise")
    yield finding_result(finding(quality.provinces_not_summing(time_series, positions), ["country_region"]),
                         check=_DAILY_KEYS.check("provinces_sum_to_country"), severity=_WARN,
                         what="countries whose position rows do not sum to the time series on some dates")
    yield cumulative_counts_never_decrease(daily_stats)
    yield no_negative_values(daily_stats)


def cumulative_counts_never_decrease(daily_stats: DataFrame) -> dg.AssetCheckResult:
    measures = ("confirmed", "deaths", "recovered")
    found = findings_by(quality.cumulative_decreases(daily_stats, ["country_region"], "date", measures), "measure",
                        ["country_region", "date"])
    findings = {m: found.get(m, quality.Finding(count=0, examples=[])) for m in measures}
    total = sum(f["count"] for f in findings.values())
    return dg.AssetCheckResult(
        asset_key=_DAILY, check_name="cumulative_counts_never_decrease", passed=total == 0, severity=_WARN,
        description=", ".join(f"{f['count']} decreases in {m}{_first(f, 'previous_value', 'value')}"
                              for m, f in findings.items()),
        metadata={f"{m}_decreases": f["count"] for m, f in findings.items()}
        | {f"{m}_examples": f["examples"] for m, f in findings.items()},
    )


def no_negative_values(daily_stats: DataFrame) -> dg.AssetCheckResult:
    columns = ["new_cases", "new_deaths", "new_recovered", "active"]
    found = findings_by(quality.negative_values(daily_stats, columns), "negative_column", ["country_region", "date"])
    findings = {c: found.get(c, quality.Finding(count=0, examples=[])) for c in columns}
    return dg.AssetCheckResult(
        asset_key=_DAILY, check_name="no_negative_values", passed=not found, severity=_WARN,
        description=", ".join(f"{f['count']} negative {c}{_first(f, c)}" for c, f in findings.items()),
        metadata={f"negative_{c}": f["count"] for c, f in findings.items()}
        | {f"negative_{c}_examples": f["examples"] for c, f in found.items()},
    )


def measures_recomputed(check: dg.AssetCheckKey, differing: DataFrame) -> dg.AssetCheckResult:
    """Blocking: the measures of ``differing`` (:func:`quality.measures_differing`) counted per measure."""
    found = findings_by(differing, "measure", [c for c in differing.columns if c not in ("value", "expected")])
    described = "; ".join(describe(f, f"rows with a different {m}") for m, f in sorted(found.items()))
    return dg.AssetCheckResult(
        asset_key=check.asset_key, check_name=check.name, passed=not found, severity=_ERROR,
        description=described or "every measure equals its independent computation",
        metadata={"differing_rows": sum(f["count"] for f in found.values())}
        | {f"{m}_examples": f["examples"] for m, f in found.items()},
    )


def _first(found: quality.Finding, *columns: str) -> str:
    """`` (first: <country> on <date>: <columns, joined by ->>)`` for a finding of daily rows; ``""`` if none."""
    if not found["examples"]:
        return ""
    example = found["examples"][0]
    shown = " -> ".join(str(example[c]) for c in columns)
    return f" (first: {example['country_region']} on {example['date']}: {shown})"


_CONTINENT = asset_key("gold", "covid19_continent_stats")
_CONTINENT_KEYS = KeyChecks(_CONTINENT, WAREHOUSE_TABLES["covid19_continent_stats"].primary_key)


@dg.multi_asset_check(
    name=table_step_name(_CONTINENT),
    ins={"continent_stats": gold_in("covid19_continent_stats"), "country_wise": silver_in("covid19_country_wise")},
    specs=[*_CONTINENT_KEYS.specs, dg.AssetCheckSpec(
        "totals_equal_source", asset=_CONTINENT, blocking=True,
        additional_deps=[asset_key("silver", "covid19_country_wise")],
        description="Continent totals add up to the source's global totals, measure by measure.")],
)
def continent_stats_checks(continent_stats: DataFrame, country_wise: DataFrame) -> Iterator[dg.AssetCheckResult]:
    yield from _CONTINENT_KEYS.evaluate(continent_stats)
    rows = [r.asDict() for r in quality.reconcile_overall(continent_stats, country_wise).collect()]
    differing = [f"{r['measure']}: {r['gold_total']:,} in gold, {r['source_total']:,} in the source"
                 for r in rows if r["difference"]]
    yield dg.AssetCheckResult(
        asset_key=_CONTINENT, check_name="totals_equal_source", passed=not differing, severity=_ERROR,
        description="; ".join(differing) or "continent totals equal the source's global totals",
        metadata={r["measure"]: {"gold": r["gold_total"], "source": r["source_total"]} for r in rows},
    )


_LOCATION = asset_key("gold", "fact_location_daily")
_LOCATION_KEYS = KeyChecks(_LOCATION, WAREHOUSE_TABLES["fact_location_daily"].primary_key)


@dg.multi_asset_check(
    name=table_step_name(_LOCATION),
    ins={"locations": gold_in("fact_location_daily")},
    specs=[*_LOCATION_KEYS.specs, dg.AssetCheckSpec(
        "measures_match_independent_computation", asset=_LOCATION, blocking=True,
        description=MEASURES_RECOMPUTED + " New cases and deaths are recomputed from the cumulative counts.")],
)
def fact_location_daily_checks(locations: DataFrame) -> Iterator[dg.AssetCheckResult]:
    yield from _LOCATION_KEYS.evaluate(locations)
    yield measures_recomputed(_LOCATION_KEYS.check("measures_match_independent_computation"),
                              quality.measures_differing(locations, ["country_region", "province_state"],
                                                         derive_new=True))


gold_checks = [
    daily_stats_checks,
    continent_stats_checks,
    fact_location_daily_checks,
    *(key_checks(asset_key("gold", table), WAREHOUSE_TABLES[table].primary_key)
      for table in ("dim_country", "dim_date", "fact_daily_cases")),
]
