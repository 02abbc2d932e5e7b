"""One Spark session for the transform tests (Sail, or local Apache Spark under ``--spark-engine=spark``), and the
shared COVID data as simulated bronze tables.

``raw`` holds the CSVs exactly as published (raw headers) for computing expected numbers independently;
``bronze`` holds the same data as Spark DataFrames with the snake_case columns and types of the bronze layer;
``shared`` runs silver and gold over it once per test session.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import (
    DataType,
    DateType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from etl_pipeline.core.source_schema import (
    CASES_POSITION,
    COUNTRY_WISE,
    SOURCE_TABLES,
    TIME_SERIES,
    WORLDOMETER,
    TableSchema,
)
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.transforms import gold, silver
from etl_pipeline.transforms.countries import country_reference_df, worldometer_spellings_df
from etl_pipeline_tests.conftest import ABSENT_FROM_WORLDOMETER, WORLDOMETER_NAMES

SPARK_TYPES: dict[str, DataType] = {"str": StringType(), "int": LongType(), "float": DoubleType(), "date": DateType()}

#: JHU name -> worldometer name as spelled in the raw CSV (with 'Brunei ''s trailing space).
RENAMED = {**WORLDOMETER_NAMES, "Brunei": "Brunei "}


@pytest.fixture(scope="session")
def spark(spark_engine: str, engine_master: str):
    if spark_engine != "spark":
        yield SparkSessionResource(master=engine_master).get_session()
        return
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    session = (
        SparkSession.builder.master("local[2]")
        .appName("etl-transforms-tests")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .getOrCreate()
    )
    yield session
    session.stop()


@pytest.fixture(scope="session")
def renamed() -> dict[str, str]:
    return RENAMED


@pytest.fixture(scope="session")
def absent_from_worldometer() -> set[str]:
    return set(ABSENT_FROM_WORLDOMETER)


@pytest.fixture(scope="session")
def raw(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The four CSVs as published, keyed by source table name."""
    return {name: pd.read_csv(data_dir / table.file_name) for name, table in SOURCE_TABLES.items()}


def _bronze(spark: SparkSession, table: TableSchema, frame: pd.DataFrame) -> DataFrame:
    frame = frame.rename(columns={c.header: c.name for c in table.columns}).replace([np.inf, -np.inf], np.nan)
    for column in table.columns:
        if column.type == "int":
            frame[column.name] = frame[column.name].astype("Int64")
        elif column.type == "date":
            frame[column.name] = pd.to_datetime(frame[column.name]).dt.date
    schema = StructType([StructField(c.name, SPARK_TYPES[c.type], nullable=True) for c in table.columns])
    return spark.createDataFrame(frame[table.column_names], schema)


@pytest.fixture(scope="session")
def bronze(spark: SparkSession, raw: dict[str, pd.DataFrame]) -> dict[str, DataFrame]:
    return {name: _bronze(spark, SOURCE_TABLES[name], frame) for name, frame in raw.items()}


@pytest.fixture(scope="session")
def shared(spark: SparkSession, bronze: dict[str, DataFrame]) -> SimpleNamespace:
    """Silver and gold over the shared data, built by the functions under test (cached: reused by many tests)."""
    silver_tables = {
        name: silver.clean_table(bronze[table.name], table.primary_key, name=table.name).cache()
        for name, table in {
            "time_series": TIME_SERIES,
            "positions": CASES_POSITION,
            "country_wise": COUNTRY_WISE,
            "worldometer": WORLDOMETER,
        }.items()
    }
    reference = country_reference_df(spark).cache()
    worldometer = silver.conform_worldometer(silver_tables.pop("worldometer"), worldometer_spellings_df(spark)).cache()
    countries = silver.build_countries(
        silver_tables["time_series"], silver_tables["positions"], worldometer, reference
    ).cache()
    daily = gold.daily_stats(silver_tables["time_series"], countries).cache()
    return SimpleNamespace(
        **silver_tables,
        reference=reference,
        worldometer=worldometer,
        countries=countries,
        daily=daily,
        continents=gold.continent_stats(daily, countries).cache(),
        locations=gold.fact_location_daily(silver_tables["positions"]),
    )


def sorted_rows(df: DataFrame) -> list[tuple]:
    """Every row of a (tiny) DataFrame as a tuple, in the order of all its columns (NULLs first)."""
    return [tuple(r) for r in df.orderBy(*df.columns).collect()]


@pytest.fixture(scope="session")
def rows():
    return sorted_rows
