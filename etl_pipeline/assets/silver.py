"""Silver layer (Spark): bronze tables typed, trimmed and deduplicated; worldometer conformed to JHU names;
one row per JHU country with its continent, WHO region, population and coordinates.
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.assets.checks import KeyChecks, finding, finding_result, key_checks, table_step_name
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.transforms import quality, silver
from etl_pipeline.transforms.countries import country_reference_df
from etl_pipeline.transforms.source_schema import SOURCE_TABLES

SPARK = {"group_name": "silver", "io_manager_key": "spark_io_manager", "kinds": {"pyspark", "parquet"}}


def bronze_in(table: str) -> dg.AssetIn:
    """Bronze, read with Spark's own Parquet reader (the Spark IO manager), not through pandas."""
    return dg.AssetIn(key=["bronze", "medical", table], input_manager_key="spark_io_manager")


def silver_key(table: str) -> dg.AssetKey:
    return dg.AssetKey(["silver", "medical", table])


def silver_in(table: str) -> dg.AssetIn:
    return dg.AssetIn(key=silver_key(table))


def _cleaned_asset(table: str) -> dg.AssetsDefinition:
    keys = SOURCE_TABLES[table].primary_key

    @dg.asset(
        key=["silver", "medical", table],
        ins={"bronze": bronze_in(table)},
        description=f"`{table}` with trimmed text, exact duplicates dropped, key {keys} unique "
        "(conflicting rows fail the step rather than being silently chosen).",
        **SPARK,
    )
    def _clean(bronze: DataFrame) -> DataFrame:
        return silver.clean_table(bronze, keys, name=table)

    return _clean


@dg.asset(
    key=["silver", "medical", "covid19_worldometer"],
    ins={"bronze": bronze_in("covid19_worldometer")},
    description="worldometer with `country_region` set to the JHU name through the reviewed country reference "
    "(original kept in `worldometer_name`); rows that are no JHU country keep `country_region` NULL.",
    **SPARK,
)
def silver_worldometer(bronze: DataFrame, spark: SparkSessionResource) -> DataFrame:
    cleaned = silver.clean_table(bronze, ["country_region"], name="covid19_worldometer")
    return silver.conform_worldometer(cleaned, country_reference_df(spark.get_session()))


@dg.asset(
    key=["silver", "medical", "covid19_countries"],
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


_COUNTRIES = dg.AssetKey(["silver", "medical", "covid19_countries"])
_COUNTRY_KEYS = KeyChecks(_COUNTRIES, ("country_region",))


@dg.multi_asset_check(
    name=table_step_name(_COUNTRIES),
    ins={"silver_countries": dg.AssetIn(key=_COUNTRIES)},
    specs=[*_COUNTRY_KEYS.specs, dg.AssetCheckSpec(
        "every_country_mapped", asset=_COUNTRIES, blocking=True,
        description="Every JHU country has a continent in the reviewed reference; an unknown name blocks gold.")],
)
def countries_checks(silver_countries: DataFrame) -> Iterator[dg.AssetCheckResult]:
    yield from _COUNTRY_KEYS.evaluate(silver_countries)
    yield finding_result(finding(silver.unmapped_countries(silver_countries), ["country_region"]),
                         check=dg.AssetCheckKey(_COUNTRIES, "every_country_mapped"),
                         severity=dg.AssetCheckSeverity.ERROR,
                         what="countries missing from etl_pipeline/transforms/country_reference.csv")


_WORLDOMETER = dg.AssetKey(["silver", "medical", "covid19_worldometer"])


@dg.multi_asset_check(
    name=table_step_name(_WORLDOMETER),
    ins={"silver_worldometer": dg.AssetIn(key=_WORLDOMETER)},
    specs=[
        dg.AssetCheckSpec("worldometer_only_rows", asset=_WORLDOMETER,
                          description="worldometer rows that are no JHU country (ships, territories): kept out of "
                          "continent totals on purpose. Informational: passes, listing them."),
        dg.AssetCheckSpec("continent_agrees_with_reference", asset=_WORLDOMETER,
                          description="Where worldometer names a continent, it equals the reviewed reference's."),
    ],
)
def worldometer_checks(silver_worldometer: DataFrame, spark: SparkSessionResource) -> Iterator[dg.AssetCheckResult]:
    only = finding(quality.worldometer_only(silver_worldometer), ["worldometer_name"], examples=50)
    yield dg.AssetCheckResult(
        asset_key=_WORLDOMETER, check_name="worldometer_only_rows", passed=True,
        metadata={"rows": only["count"], "names": [e["worldometer_name"] for e in only["examples"]]},
    )
    found = quality.continent_disagreements(silver_worldometer, country_reference_df(spark.get_session()))
    yield finding_result(finding(found, ["country_region"]),
                         check=dg.AssetCheckKey(_WORLDOMETER, "continent_agrees_with_reference"),
                         severity=dg.AssetCheckSeverity.WARN,
                         what="countries whose worldometer continent differs from the reference")


silver_checks = [
    *(key_checks(["silver", "medical", table], SOURCE_TABLES[table].primary_key)
      for table in ("covid19_time_series", "covid19_cases_position")),
    key_checks(["silver", "medical", "covid19_country_wise"], ["country_region"]),
    countries_checks,
    worldometer_checks,
]
