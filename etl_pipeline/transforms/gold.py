"""Gold transforms: the warehouse tables built from silver.

Counts are JHU's own per-country series (``covid19_time_series``), never re-summed from provinces: the source
states that the province sums equal it, and ``quality.reconcile_daily_with_positions`` verifies that instead.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.transforms import measures
from etl_pipeline.transforms.countries import UNKNOWN_CONTINENT

MEASURES = ("confirmed", "deaths", "recovered", "active")

#: Column order of each gold table: the warehouse model's, which loads it 1:1.
DAILY_COLUMNS, CONTINENT_COLUMNS, LOCATION_COLUMNS, COUNTRY_COLUMNS, FACT_DAILY_COLUMNS = (
    tuple(WAREHOUSE_TABLES[t].column_names) for t in (
        "covid19_daily_stats", "covid19_continent_stats", "fact_location_daily", "dim_country", "fact_daily_cases")
)


def daily_stats(time_series: DataFrame, countries: DataFrame) -> DataFrame:
    """``covid19_daily_stats``: one row per time-series row (date, country_region).

    Coordinates, continent and population come from the country dimension (continent ``Unknown`` for a country
    missing from the reference); ``who_region`` and every count are the time series' own values; the derived
    measures (7-day averages, per-capita rates, case fatality ratio, ...) are :mod:`.measures`'.
    """
    dimensions = dim_country(countries).select("country_region", "latitude", "longitude", "continent", "population")
    joined = time_series.join(F.broadcast(dimensions), "country_region", "left")
    return measures.with_measures(joined, ["country_region"], per_capita=True).select(*DAILY_COLUMNS)


def country_last_values(daily: DataFrame) -> DataFrame:
    """``country_region`` and each measure on that country's own last date."""
    return daily.groupBy("country_region").agg(*(F.max_by(m, "date").alias(m) for m in MEASURES))


def continent_stats(daily: DataFrame, countries: DataFrame) -> DataFrame:
    """``covid19_continent_stats``: one row per continent.

    Totals sum each country's value on its last date; ``population`` sums the known populations (NULL when
    none is known). A country without a continent is counted under ``Unknown``, so the totals still
    reconcile with the source while the blocking unmapped-countries check fails.
    """
    membership = countries.select("country_region", "continent", "population")
    return (
        country_last_values(daily)
        .join(F.broadcast(membership), "country_region", "left")
        .groupBy(F.coalesce("continent", F.lit(UNKNOWN_CONTINENT)).alias("continent"))
        .agg(
            *(F.sum(m).alias(f"total_{m}") for m in MEASURES),
            F.count("*").cast("int").alias("number_of_countries"),
            F.sum("population").alias("population"),
        )
        .select(*CONTINENT_COLUMNS)
    )


def fact_location_daily(positions: DataFrame) -> DataFrame:
    """The spread map's fact table: one row per position row (date, country_region, province_state), with the
    day's new cases and deaths (differences of the cumulative counts) and the measures of :mod:`.measures` that
    need no population (there is none per province)."""
    location = ["country_region", "province_state"]
    renamed = positions.withColumnsRenamed({"lat": "latitude", "long": "longitude"})
    daily = measures.daily_differences(renamed, location, {"new_cases": "confirmed", "new_deaths": "deaths"})
    return measures.with_measures(daily, location, per_capita=False).select(*LOCATION_COLUMNS)


def dim_country(countries: DataFrame) -> DataFrame:
    """The country dimension; a country missing from the reference is in the ``Unknown`` continent."""
    return countries.select(
        "country_region",
        F.coalesce("continent", F.lit(UNKNOWN_CONTINENT)).alias("continent"),
        *COUNTRY_COLUMNS[2:],
    )


def dim_date(daily: DataFrame) -> DataFrame:
    """One row per reported day with calendar attributes; ``day_index`` counts days from the first one."""
    dates = daily.select("date").distinct()
    first = dates.agg(F.min("date").alias("first_date"))
    return dates.crossJoin(first).select(
        "date",
        F.year("date").alias("year"),
        F.month("date").alias("month"),
        F.dayofmonth("date").alias("day"),
        F.weekofyear("date").alias("iso_week"),  # Spark's weekofyear is the ISO 8601 week
        ((F.dayofweek("date") + 5) % 7 + 1).alias("day_of_week"),  # Spark: 1 = Sunday; ISO: 1 = Monday
        F.datediff("date", "first_date").cast("int").alias("day_index"),  # an int (Sail's datediff: a bigint)
    )


def fact_daily_cases(daily: DataFrame) -> DataFrame:
    """The daily fact table: the counts and measures of ``covid19_daily_stats`` without the country's attributes
    (coordinates, regions, population: ``dim_country`` holds them)."""
    return daily.select(*FACT_DAILY_COLUMNS)
