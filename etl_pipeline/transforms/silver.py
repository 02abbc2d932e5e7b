"""Silver transforms: typed bronze tables trimmed, deduplicated and conformed to the JHU country names.

Every function takes and returns Spark DataFrames built with the DataFrame API only (no RDDs, no UDFs),
so the same code runs on a local session, a standalone cluster and Spark Connect.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import StringType, StructField

from etl_pipeline.transforms.countries import WORLDOMETER_CONTINENT_NAMES
from etl_pipeline.transforms.quality import duplicate_keys, plain_dict

#: The one column where "no value" means the country itself, so it is part of a key and never NULL.
PROVINCE = "province_state"

COUNTRY_COLUMNS = ("country_region", "continent", "who_region", "population", "latitude", "longitude", "mapped")


def _cleaned(field: StructField) -> Column:
    column = F.col(field.name)
    if not isinstance(field.dataType, StringType):
        return column
    if field.name == PROVINCE:
        return F.coalesce(F.trim(column), F.lit("")).alias(field.name)
    return F.trim(column).alias(field.name)


def clean_table(df: DataFrame, key_columns: Sequence[str], name: str = "table") -> DataFrame:
    """Trim every string column, turn a NULL ``province_state`` into ``""``, drop exact duplicate rows.

    Two *different* rows with the same key are a conflict the data cannot settle, so this raises
    ``ValueError`` naming the table, the key and up to five conflicting keys instead of picking one.
    The returned DataFrame is lazy; the conflict search runs now, as one aggregation by key over a 64-bit hash
    of the other columns (a third of the work of deduplicating first and grouping after; measured on 4.9
    million rows). Keys whose hashes differ are then checked exactly, so a difference the deduplication does
    not see (``0.0`` and ``-0.0``) is no conflict; two different rows whose hashes collide (odds 2^-64) are left
    to the blocking ``keys_unique`` check of the stored table.
    """
    trimmed = df.select(*(_cleaned(field) for field in df.schema.fields))
    cleaned = trimmed.dropDuplicates()
    if _may_conflict(trimmed, key_columns):
        examples = duplicate_keys(cleaned, key_columns).limit(5).collect()
        if examples:
            raise ValueError(
                f"{name}: different rows share the key ({', '.join(key_columns)}); "
                f"examples (key and number of rows): {[plain_dict(row) for row in examples]}"
            )
    return cleaned


def _may_conflict(df: DataFrame, key_columns: Sequence[str]) -> bool:
    """Whether some key has rows whose other columns hash differently (NULLs hashed apart from values)."""
    others = [c for c in df.columns if c not in key_columns]
    if not others:
        return False
    digest = F.xxhash64(*others, *(F.col(c).isNull() for c in others))
    spread = df.groupBy(*key_columns).agg(F.min(digest).alias("_low"), F.max(digest).alias("_high"))
    return bool(spread.where(F.col("_low") != F.col("_high")).limit(1).collect())


def conform_worldometer(worldometer: DataFrame, spellings: DataFrame) -> DataFrame:
    """Worldometer with ``country_region`` set to the JHU name, the original kept as ``worldometer_name``.

    A row belongs to the country one of whose spellings it uses (``countries.worldometer_spellings_df``: the
    reviewed worldometer name, the JHU name itself, or a known alias). Rows that are not JHU countries (Diamond
    Princess, Aruba, Hong Kong, ...) are kept with ``country_region`` NULL, so they are visible
    (``quality.worldometer_only``, the ``worldometer_coverage`` check) but never join to a JHU country.
    ``continent`` is spelled as in the reference (``Australia/Oceania`` -> ``Oceania``).
    Expects a cleaned (trimmed) worldometer table.
    """
    renamed = worldometer.withColumnRenamed("country_region", "worldometer_name")
    others = [c for c in renamed.columns if c != "worldometer_name"]
    return (
        renamed.join(F.broadcast(spellings), on="worldometer_name", how="left")
        .select("country_region", "worldometer_name", *others)
        .replace(WORLDOMETER_CONTINENT_NAMES, subset=["continent"])
    )


def build_countries(
    time_series: DataFrame, positions: DataFrame, worldometer_conformed: DataFrame, reference: DataFrame
) -> DataFrame:
    """One row per country of the time series: ``country_region, continent, who_region, population,
    latitude, longitude, mapped``.

    - ``continent`` comes from the reference only; NULL (and ``mapped`` false) for a name it lacks.
    - ``who_region`` is the time series' value on the country's latest date.
    - ``population`` is worldometer's; NULL when worldometer has no row for the country (China, Kosovo).
    - ``latitude``/``longitude`` (the positions' ``lat``/``long``): those of the country-level position row
      (``province_state = ''``) when the country has one; otherwise (Australia, Canada, China) those of the
      province with the most confirmed cases on the country's last date, ties broken by province name.
      Locations do not move between dates in the source.
    """
    who_regions = time_series.groupBy("country_region").agg(F.max_by("who_region", "date").alias("who_region"))
    continents = reference.select("country_region", "continent")
    populations = worldometer_conformed.where(F.col("country_region").isNotNull()).select(
        "country_region", "population"
    )
    preference = Window.partitionBy("country_region").orderBy(
        (F.col(PROVINCE) != "").asc(), F.col("date").desc(), F.col("confirmed").desc(), F.col(PROVINCE).asc()
    )
    coordinates = (
        positions.withColumn("_rank", F.row_number().over(preference))
        .where(F.col("_rank") == 1)
        .select("country_region", F.col("lat").alias("latitude"), F.col("long").alias("longitude"))
    )
    return (
        who_regions.join(F.broadcast(continents), "country_region", "left")
        .join(F.broadcast(populations), "country_region", "left")
        .join(coordinates, "country_region", "left")
        .withColumn("mapped", F.col("continent").isNotNull())
        .select(*COUNTRY_COLUMNS)
    )
