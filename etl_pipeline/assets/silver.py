"""Silver layer (Spark): bronze tables typed, trimmed and deduplicated; worldometer conformed to JHU names;
one row per JHU country with its continent, WHO region, population and coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.assets.checks import KeyChecks, finding, finding_result, key_checks, table_step_name
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.transforms import quality, silver
from etl_pipeline.transforms.countries import REFERENCE_FILE, country_reference_df, worldometer_spellings_df

SPARK = {"group_name": "silver", "io_manager_key": "spark_io_manager", "kinds": {"pyspark", "delta"},
         "pool": WRITES_POOL}


def bronze_in(table: str) -> dg.AssetIn:
    """Bronze, read as a Delta table by Spark (the Spark IO manager), not through pandas."""
    return dg.AssetIn(key=asset_key("bronze", table), input_manager_key="spark_io_manager")


def silver_in(table: str) -> dg.AssetIn:
    return dg.AssetIn(key=asset_key("silver", table))


def _cleaned_asset(table: str) -> dg.AssetsDefinition:
    keys = SOURCE_TABLES[table].primary_key

    @dg.asset(
        key=asset_key("silver", table),
        ins={"bronze": bronze_in(table)},
        description=f"`{table}` with trimmed text, exact duplicates dropped, key {keys} unique "
        "(conflicting rows fail the step rather than being silently chosen).",
        **SPARK,
    )
    def _clean(bronze: DataFrame) -> DataFrame:
        return silver.clean_table(bronze, keys, name=table)

    return _clean


@dg.asset(
    key=asset_key("silver", "covid19_worldometer"),
    ins={"bronze": bronze_in("covid19_worldometer")},
    description="worldometer with `country_region` set to the JHU name through the reviewed country reference "
    "(its worldometer name, the JHU name or a known alias; original kept in `worldometer_name`); rows that are no "
    "JHU country keep `country_region` NULL.",
    **SPARK,
)
def silver_worldometer(bronze: DataFrame, spark: SparkSessionResource) -> DataFrame:
    cleaned = silver.clean_table(bronze, ["country_region"], name="covid19_worldometer")
    return silver.conform_worldometer(cleaned, worldometer_spellings_df(spark.get_session()))


@dg.asset(
    key=asset_key("silver", "covid19_countries"),
    ins={
        "time_series": silver_in("covid19_time_series"),
        "positions": silver_in("covid19_cases_position"),
        "worldometer": silver_in("covid19_worldometer"),
    },
    description="One row per country of the time series: continent (reference), WHO region (latest), "
    "population (worldometer), coordinates (country-level position, else the province with most cases).",
    **SPARK,
)
def silver_countries(
    time_series: DataFrame, positions: DataFrame, worldometer: DataFrame, spark: SparkSessionResource
) -> DataFrame:
    return silver.build_countries(time_series, positions, worldometer, country_reference_df(spark.get_session()))


silver_assets = [
    *(_cleaned_asset(t) for t in ("covid19_time_series", "covid19_cases_position", "covid19_country_wise")),
    silver_worldometer,
    silver_countries,
]


_COUNTRIES = asset_key("silver", "covid19_countries")
_COUNTRY_KEYS = KeyChecks(_COUNTRIES, ("country_region",))
_JHU_TABLES = ("covid19_time_series", "covid19_cases_position", "covid19_country_wise")
_WORLDOMETER = asset_key("silver", "covid19_worldometer")
#: worldometer names listed by the coverage check (the shared data has 24 rows that are no JHU country).
LISTED_NAMES = 50


@dg.multi_asset_check(
    name=table_step_name(_COUNTRIES),
    ins={"silver_countries": dg.AssetIn(key=_COUNTRIES), "worldometer": dg.AssetIn(key=_WORLDOMETER),
         **{table: silver_in(table) for table in _JHU_TABLES}},
    specs=[
        *_COUNTRY_KEYS.specs,
        dg.AssetCheckSpec(
            "every_country_mapped", asset=_COUNTRIES, blocking=True,
            additional_deps=[asset_key("silver", table) for table in _JHU_TABLES],
            description="Every country name of the JHU tables (time series, positions, country-wise) is in the "
            "reviewed reference, so it has a continent; an unknown name blocks gold and the warehouse and is named "
            "with the tables, rows and dates where it occurs."),
        dg.AssetCheckSpec(
            "worldometer_coverage", asset=_COUNTRIES, additional_deps=[_WORLDOMETER],
            description="Data coverage (warning): every country found its worldometer row (its population), except "
            "those the reference records as absent from worldometer (China, Kosovo); every worldometer row that "
            "matched no country (ships, territories, an unknown spelling) is listed. A warning, not a blocker: "
            "worldometer is a separate snapshot whose coverage may differ, and population is nullable."),
    ],
)
def countries_checks(silver_countries: DataFrame, worldometer: DataFrame, spark: SparkSessionResource,
                     **jhu_tables: DataFrame) -> Iterator[dg.AssetCheckResult]:
    reference = country_reference_df(spark.get_session())
    yield from _COUNTRY_KEYS.evaluate(silver_countries)
    in_order = {table: jhu_tables[table] for table in _JHU_TABLES}  # Dagster passes them sorted by name
    yield finding_result(finding(quality.unknown_countries(in_order, reference), ["country_region"]),
                         check=dg.AssetCheckKey(_COUNTRIES, "every_country_mapped"),
                         severity=dg.AssetCheckSeverity.ERROR,
                         what=f"country names missing from etl_pipeline/transforms/{REFERENCE_FILE}")
    yield worldometer_coverage(silver_countries, worldometer, reference)


def worldometer_coverage(countries: DataFrame, worldometer: DataFrame, reference: DataFrame) -> dg.AssetCheckResult:
    """Warns naming the countries without a worldometer row; lists the worldometer rows that matched none."""
    missing = finding(quality.countries_without_worldometer_row(countries, worldometer, reference),
                      ["country_region"], examples=LISTED_NAMES)
    unmatched = finding(quality.worldometer_only(worldometer), ["worldometer_name"], examples=LISTED_NAMES)
    missing_names = [e["country_region"] for e in missing["examples"]]
    unmatched_names = [e["worldometer_name"] for e in unmatched["examples"]]
    return dg.AssetCheckResult(
        asset_key=_COUNTRIES, check_name="worldometer_coverage", passed=missing["count"] == 0,
        severity=dg.AssetCheckSeverity.WARN,
        description=(f"{missing['count']} countries without a worldometer row (population NULL): "
                     f"{', '.join(missing_names)}" if missing["count"] else "every country found its worldometer row")
        + f"; {unmatched['count']} worldometer rows matched no country: {', '.join(unmatched_names)}",
        metadata={"countries_without_worldometer_row": missing["count"], "countries": missing_names,
                  "unmatched_worldometer_rows": unmatched["count"], "worldometer_names": unmatched_names},
    )


@dg.multi_asset_check(
    name=table_step_name(_WORLDOMETER),
    ins={"silver_worldometer": dg.AssetIn(key=_WORLDOMETER)},
    specs=[
        dg.AssetCheckSpec("continent_agrees_with_reference", asset=_WORLDOMETER,
                          description="Where worldometer names a continent, it equals the reviewed reference's."),
    ],
)
def worldometer_checks(silver_worldometer: DataFrame, spark: SparkSessionResource) -> Iterator[dg.AssetCheckResult]:
    found = quality.continent_disagreements(silver_worldometer, country_reference_df(spark.get_session()))
    yield finding_result(finding(found, ["country_region"]),
                         check=dg.AssetCheckKey(_WORLDOMETER, "continent_agrees_with_reference"),
                         severity=dg.AssetCheckSeverity.WARN,
                         what="countries whose worldometer continent differs from the reference")


silver_checks = [
    *(key_checks(asset_key("silver", table), SOURCE_TABLES[table].primary_key)
      for table in ("covid19_time_series", "covid19_cases_position")),
    key_checks(asset_key("silver", "covid19_country_wise"), ["country_region"]),
    countries_checks,
    worldometer_checks,
]
