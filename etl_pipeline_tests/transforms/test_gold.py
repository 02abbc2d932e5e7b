from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from etl_pipeline.transforms.countries import load_country_reference
from etl_pipeline.transforms.gold import (
    CONTINENT_COLUMNS,
    DAILY_COLUMNS,
    LOCATION_COLUMNS,
    continent_stats,
    daily_stats,
    dim_country,
    dim_date,
    fact_daily_cases,
    fact_location_daily,
)

pytestmark = pytest.mark.engines  # the same results on Apache Spark and on Sail

D1, D2 = dt.date(2020, 7, 26), dt.date(2020, 7, 27)
COUNTRIES_SCHEMA = (
    "country_region string, continent string, who_region string, population bigint, "
    "latitude double, longitude double, mapped boolean"
)

MEASURES = ["Confirmed", "Deaths", "Recovered", "Active"]


@pytest.fixture(scope="module")
def countries(spark):
    return spark.createDataFrame(
        [
            ("Andorra", "Europe", "Europe", 77000, 42.5, 1.5, True),
            ("Monaco", "Europe", "Europe", None, 43.7, 7.4, True),
            ("Japan", "Asia", "Western Pacific", 126000000, 36.2, 138.3, True),
            ("Atlantis", None, "Europe", 5, None, None, False),
        ],
        COUNTRIES_SCHEMA,
    )


def test_daily_stats_adds_coordinates_and_continent_to_each_time_series_row(spark, countries, rows):
    time_series = spark.createDataFrame(
        [
            (D1, "Andorra", 10, 1, 2, 7, 3, 0, 1, "Europe"),
            (D2, "Andorra", 12, 1, 2, 9, 2, 0, 0, "Europe"),
            (D2, "Atlantis", 5, 0, 0, 5, 5, 0, 0, "Europe"),
        ],
        "date date, country_region string, confirmed bigint, deaths bigint, recovered bigint, active bigint, "
        "new_cases bigint, new_deaths bigint, new_recovered bigint, who_region string",
    )
    daily = daily_stats(time_series, countries)
    assert daily.columns == list(DAILY_COLUMNS)
    # the measures (from column 15 on) are test_measures.py's subject
    assert rows(daily.select(*DAILY_COLUMNS[:15])) == [
        (D1, "Andorra", 10, 1, 2, 7, 3, 0, 1, 42.5, 1.5, "Europe", "Europe", 77000, None),
        (D2, "Andorra", 12, 1, 2, 9, 2, 0, 0, 42.5, 1.5, "Europe", "Europe", 77000, None),
        (D2, "Atlantis", 5, 0, 0, 5, 5, 0, 0, None, None, "Europe", "Unknown", 5, None),
    ]
    assert DAILY_COLUMNS[13:15] == ("population", "new_cases_7d_avg")
    assert rows(daily.select("confirmed_per_100k", "case_fatality_ratio")) == [
        (10 * 100_000 / 77000, 0.1), (12 * 100_000 / 77000, 1 / 12), (5 * 100_000 / 5, 0.0)]
    facts = fact_daily_cases(daily)
    assert facts.columns == [c for c in DAILY_COLUMNS if c not in (
        "latitude", "longitude", "who_region", "continent", "population")]
    assert rows(facts.select(*facts.columns[:9])) == [
        (D1, "Andorra", 10, 1, 2, 7, 3, 0, 1),
        (D2, "Andorra", 12, 1, 2, 9, 2, 0, 0),
        (D2, "Atlantis", 5, 0, 0, 5, 5, 0, 0),
    ]


def test_dim_country_puts_an_unmapped_country_in_unknown(countries, rows):
    assert rows(dim_country(countries)) == [
        ("Andorra", "Europe", "Europe", 77000, 42.5, 1.5),
        ("Atlantis", "Unknown", "Europe", 5, None, None),
        ("Japan", "Asia", "Western Pacific", 126000000, 36.2, 138.3),
        ("Monaco", "Europe", "Europe", None, 43.7, 7.4),
    ]


def test_dim_date_has_iso_calendar_attributes(spark, rows):
    # 2020-01-22 was a Wednesday in ISO week 4; 2020-03-01 a Sunday in ISO week 9 (2020 is a leap year)
    daily = spark.createDataFrame(
        [(dt.date(2020, 3, 1), "A"), (dt.date(2020, 1, 22), "A"), (dt.date(2020, 1, 22), "B")],
        "date date, country_region string",
    )
    assert rows(dim_date(daily)) == [
        (dt.date(2020, 1, 22), 2020, 1, 22, 4, 3, 0),
        (dt.date(2020, 3, 1), 2020, 3, 1, 9, 7, 39),
    ]


def test_continent_stats_sums_each_country_on_its_last_date(spark, countries, rows):
    daily = spark.createDataFrame(
        [
            (D1, "Andorra", 10, 1, 2, 7),
            (D2, "Andorra", 12, 1, 3, 8),
            (D2, "Monaco", 4, 0, 1, 3),
            (D1, "Japan", 30, 2, 20, 8),  # Japan's last date is D1
            (D1, "Atlantis", 9, 0, 0, 9),
            (D2, "Atlantis", 8, 0, 0, 8),  # a decrease: the last date still wins
        ],
        "date date, country_region string, confirmed bigint, deaths bigint, recovered bigint, active bigint",
    )
    continents = continent_stats(daily, countries)
    assert continents.columns == list(CONTINENT_COLUMNS)
    assert rows(continents) == [
        ("Asia", 30, 2, 20, 8, 1, 126000000),
        ("Europe", 16, 1, 4, 11, 2, 77000),
        ("Unknown", 8, 0, 0, 8, 1, 5),
    ]


def test_fact_location_daily_keeps_each_position_row(spark, rows):
    positions = spark.createDataFrame(
        [
            ("", "Japan", 36.2, 138.3, D2, 30, 2, 20, 8, "Western Pacific"),
            ("Atlantis Bay", "Atlantis", 1.0, 2.0, D2, 5, 0, 0, 5, "Europe"),
            ("Atlantis Bay", "Atlantis", 1.0, 2.0, D1, 4, 0, 0, 4, "Europe"),
        ],
        "province_state string, country_region string, lat double, long double, date date, "
        "confirmed bigint, deaths bigint, recovered bigint, active bigint, who_region string",
    )
    locations = fact_location_daily(positions)
    assert locations.columns == list(LOCATION_COLUMNS)
    # new cases and deaths are differences from the location's previous day, NULL on its first one
    assert rows(locations.select(*LOCATION_COLUMNS[:11])) == [
        (D1, "Atlantis", "Atlantis Bay", 1.0, 2.0, 4, 0, 0, 4, None, None),
        (D2, "Atlantis", "Atlantis Bay", 1.0, 2.0, 5, 0, 0, 5, 1, 0),
        (D2, "Japan", "", 36.2, 138.3, 30, 2, 20, 8, None, None),
    ]


def test_daily_stats_on_shared_data_is_the_time_series_row_for_row(shared, raw):
    source = raw["covid19_time_series"].assign(date=lambda t: pd.to_datetime(t["Date"]).dt.date)
    daily = shared.daily.toPandas()

    assert len(daily) == len(source) == 35_156
    assert not daily.duplicated(["date", "country_region"]).any()
    merged = source.merge(daily, left_on=["date", "Country/Region"], right_on=["date", "country_region"], how="outer")
    assert len(merged) == 35_156
    for header in [*MEASURES, "New cases", "New deaths", "New recovered", "WHO Region"]:
        column = header.lower().replace(" ", "_")
        assert (merged[header] == merged[column]).all(), header
    assert daily[["latitude", "longitude", "continent"]].notna().all().all()


def test_continent_stats_on_shared_data_reconcile_with_the_source(shared, raw, renamed):
    time_series, worldometer = raw["covid19_time_series"], raw["covid19_worldometer"]
    last = time_series[time_series["Date"] == time_series.groupby("Country/Region")["Date"].transform("max")]
    reference = load_country_reference().set_index("country_region")
    population = dict(zip(worldometer["Country/Region"], worldometer["Population"]))
    by_country = last.set_index("Country/Region")[MEASURES].assign(
        continent=reference["continent"],
        population=[population.get(renamed.get(c, c)) for c in last["Country/Region"]],
    )
    expected = by_country.groupby("continent").agg(
        **{f"total_{m.lower()}": (m, "sum") for m in MEASURES},
        number_of_countries=("Confirmed", "size"),
        population=("population", "sum"),
    )

    continents = shared.continents.toPandas().set_index("continent").sort_index()
    assert sorted(continents.index) == sorted(expected.index) == sorted(
        ["Africa", "Asia", "Europe", "North America", "South America", "Oceania"]
    )
    assert continents.astype("int64").to_dict("index") == expected.astype("int64").to_dict("index")

    country_wise = raw["covid19_country_wise"]
    assert continents["total_confirmed"].sum() == country_wise["Confirmed"].sum() == 16_480_485
    assert continents["total_deaths"].sum() == country_wise["Deaths"].sum() == 654_036
    assert continents["number_of_countries"].sum() == 187


def test_fact_location_daily_on_shared_data_has_one_row_per_position(shared, raw):
    counts = shared.locations.agg(
        F.count("*").alias("rows"),
        F.count_distinct("date", "country_region", "province_state").alias("keys"),
        F.sum("confirmed").alias("confirmed"),
    ).first()
    positions = raw["covid19_cases_position"]
    assert counts.asDict() == {"rows": 49_068, "keys": 49_068, "confirmed": int(positions["Confirmed"].sum())}
    assert len(positions) == 49_068
    assert len(raw["covid19_cases_position"]) == 49_068
