"""Silver layer (Spark): bronze tables typed, trimmed and deduplicated; worldometer conformed to JHU names;
one row per JHU country with its continent, WHO region, population and coordinates.
"""

from __future__ import annotations

import dagster as dg
from pyspark.sql import DataFrame

from etl_pipeline.assets.checks import finding_result, key_checks
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.transforms import quality, silver
from etl_pipeline.transforms.countries import country_reference_df
from etl_pipeline.transforms.source_schema import SOURCE_TABLES

SPARK = {"group_name": "silver", "io_manager_key": "spark_io_manager", "kinds": {"pyspark", "parquet"}}


def bronze_in(table: str) -> dg.AssetIn:
    """Bronze, read with Spark's own Parquet reader (the Spark IO manager), not through pandas."""
    return dg.AssetIn(key=["bronze", "medical", table], input_manager_key="spark_io_manager")


def silver_in(table: str) -> dg.AssetIn:
    return dg.AssetIn(key=["silver", "medical", table])


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


@dg.asset_check(
    asset=silver_countries,
    name="every_country_mapped",
    blocking=True,
    description="Every JHU country has a continent in the reviewed reference; an unknown name blocks gold.",
)
def every_country_mapped(silver_countries: DataFrame) -> dg.AssetCheckResult:
    return finding_result(quality.summarize(silver.unmapped_countries(silver_countries), ["country_region"]),
                          severity=dg.AssetCheckSeverity.ERROR,
                          what="countries missing from etl_pipeline/transforms/country_reference.csv")


@dg.asset_check(
    asset=silver_worldometer,
    name="worldometer_only_rows",
    description="worldometer rows that are no JHU country (ships, territories): kept out of continent totals "
    "on purpose. Informational: passes, listing them.",
)
def worldometer_only_rows(silver_worldometer: DataFrame) -> dg.AssetCheckResult:
    finding = quality.summarize(quality.worldometer_only(silver_worldometer), ["worldometer_name"], examples=50)
    return dg.AssetCheckResult(
        passed=True,
        metadata={"rows": finding["count"], "names": [e["worldometer_name"] for e in finding["examples"]]},
    )


@dg.asset_check(
    asset=silver_worldometer,
    name="continent_agrees_with_reference",
    description="Where worldometer names a continent, it equals the reviewed reference's.",
)
def continent_agrees_with_reference(
    silver_worldometer: DataFrame, spark: SparkSessionResource
) -> dg.AssetCheckResult:
    found = quality.continent_disagreements(silver_worldometer, country_reference_df(spark.get_session()))
    return finding_result(quality.summarize(found, ["country_region"]), severity=dg.AssetCheckSeverity.WARN,
                          what="countries whose worldometer continent differs from the reference")


silver_checks = [
    *key_checks(["silver", "medical", "covid19_time_series"], SOURCE_TABLES["covid19_time_series"].primary_key),
    *key_checks(["silver", "medical", "covid19_cases_position"], SOURCE_TABLES["covid19_cases_position"].primary_key),
    *key_checks(["silver", "medical", "covid19_country_wise"], ["country_region"]),
    *key_checks(["silver", "medical", "covid19_countries"], ["country_region"]),
    every_country_mapped,
    worldometer_only_rows,
    continent_agrees_with_reference,
]
