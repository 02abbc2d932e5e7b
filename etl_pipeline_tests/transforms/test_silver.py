from __future__ import annotations

import datetime as dt

import pytest

from etl_pipeline.transforms.countries import REFERENCE_SCHEMA, SPELLINGS_SCHEMA
from etl_pipeline.transforms.silver import build_countries, clean_table, conform_worldometer

pytestmark = pytest.mark.engines  # the same results on Apache Spark and on Sail

D1, D2 = dt.date(2020, 7, 26), dt.date(2020, 7, 27)
POSITION_COLUMNS = "province_state string, country_region string, date date, confirmed bigint, who_region string"


@pytest.fixture(scope="module")
def reference(spark):
    return spark.createDataFrame(
        [
            ("Australia", "Australia", "Oceania"),
            ("Denmark", "Denmark", "Europe"),
            ("Fiji", "Fiji", "Oceania"),
            ("Kosovo", None, "Europe"),
            ("US", "USA", "North America"),
        ],
        REFERENCE_SCHEMA,
    )


def test_clean_table_trims_blanks_provinces_and_drops_exact_duplicates(spark, rows):
    bronze = spark.createDataFrame(
        [
            (None, " Denmark ", D1, 1, "Europe"),
            ("", "Denmark", D1, 1, "Europe "),  # the same row once trimmed
            ("Faroe Islands ", "Denmark", D1, 2, None),
            ("  ", "Greenland", D1, 3, "Europe"),
        ],
        POSITION_COLUMNS,
    )
    cleaned = clean_table(bronze, ["date", "country_region", "province_state"])
    assert [(f.name, f.dataType) for f in cleaned.schema] == [(f.name, f.dataType) for f in bronze.schema]
    assert rows(cleaned) == [
        ("", "Denmark", D1, 1, "Europe"),
        ("", "Greenland", D1, 3, "Europe"),
        ("Faroe Islands", "Denmark", D1, 2, None),
    ]


def test_clean_table_refuses_to_pick_between_rows_sharing_a_key(spark):
    bronze = spark.createDataFrame(
        [(D1, "US", 10), (D1, " US", 11), (D1, "Chad", 1), (D1, "Chad", 1)],
        "date date, country_region string, confirmed bigint",
    )
    with pytest.raises(ValueError, match=r"time_series: different rows share the key \(date, country_region\)") as e:
        clean_table(bronze, ["date", "country_region"], name="time_series")
    assert "'country_region': 'US'" in str(e.value) and "'rows': 2" in str(e.value)
    assert "Chad" not in str(e.value)


def test_conform_worldometer_maps_every_spelling_and_keeps_rows_outside_jhu(spark, rows):
    spellings = spark.createDataFrame(
        [("USA", "US"), ("US", "US"), ("United States", "US"), ("Fiji", "Fiji"), ("Czechia", "Czechia"),
         ("Czech Republic", "Czechia")],
        SPELLINGS_SCHEMA,
    )
    worldometer = spark.createDataFrame(
        [
            ("USA", "North America", 331, 5),
            ("Fiji", "Australia/Oceania", 1, 2),
            ("Czech Republic", "Europe", 10, 3),
            ("Diamond Princess", None, None, 712),
        ],
        "country_region string, continent string, population bigint, total_cases bigint",
    )
    conformed = conform_worldometer(worldometer, spellings)
    assert conformed.columns == ["country_region", "worldometer_name", "continent", "population", "total_cases"]
    assert rows(conformed) == [
        (None, "Diamond Princess", None, None, 712),
        ("Czechia", "Czech Republic", "Europe", 10, 3),
        ("Fiji", "Fiji", "Oceania", 1, 2),
        ("US", "USA", "North America", 331, 5),
    ]


def test_build_countries_one_row_per_time_series_country(spark, reference, rows):
    time_series = spark.createDataFrame(
        [
            (D1, "Denmark", "Europe"), (D2, "Denmark", "Europe"),
            (D1, "Australia", "Western Pacific"), (D2, "Australia", "Western Pacific"),
            (D1, "Atlantis", "Europe"), (D2, "Atlantis", "Americas"),
            (D2, "Kosovo", "Europe"),
        ],
        "date date, country_region string, who_region string",
    )  # fmt: skip
    positions = spark.createDataFrame(
        [
            ("", "Denmark", 56.26, 9.50, D2, 10),
            ("Faroe Islands", "Denmark", 61.89, -6.91, D2, 1000),  # more cases, but Denmark has a country row
            ("Victoria", "Australia", -37.81, 144.96, D1, 50),  # most cases, but not on the last date
            ("Victoria", "Australia", -37.81, 144.96, D2, 10),
            ("New South Wales", "Australia", -33.87, 151.21, D2, 10),  # tie on the last date: first by name
            ("", "Kosovo", 42.60, 20.90, D2, 5),
        ],
        "province_state string, country_region string, lat double, long double, date date, confirmed bigint",
    )
    worldometer = spark.createDataFrame(
        [
            ("Denmark", "Denmark", "Europe", 5792202),
            ("Australia", "Australia", "Oceania", 25499884),
            ("US", "USA", "North America", 331002651),
            (None, "Diamond Princess", None, None),
        ],
        "country_region string, worldometer_name string, continent string, population bigint",
    )
    countries = build_countries(time_series, positions, worldometer, reference)
    assert countries.columns == [
        "country_region", "continent", "who_region", "population", "latitude", "longitude", "mapped",
    ]  # fmt: skip
    assert rows(countries) == [
        ("Atlantis", None, "Americas", None, None, None, False),
        ("Australia", "Oceania", "Western Pacific", 25499884, -33.87, 151.21, True),
        ("Denmark", "Europe", "Europe", 5792202, 56.26, 9.50, True),
        ("Kosovo", "Europe", "Europe", None, 42.60, 20.90, True),
    ]


def _expected_coordinates(positions):
    """The documented rule, in pandas: the country row, else the province with most confirmed on the last date."""
    positions = positions.assign(province=positions["Province/State"].fillna(""))
    last = positions[positions["Date"] == positions.groupby("Country/Region")["Date"].transform("max")]
    ranked = last.assign(is_province=last["province"] != "").sort_values(
        ["is_province", "Confirmed", "province"], ascending=[True, False, True]
    )
    first = ranked.drop_duplicates("Country/Region")
    return {r["Country/Region"]: (r["Lat"], r["Long"]) for _, r in first.iterrows()}


def test_countries_on_shared_data_match_every_jhu_country_to_its_worldometer_row(
    shared, raw, renamed, absent_from_worldometer
):
    time_series, worldometer = raw["covid19_time_series"], raw["covid19_worldometer"]
    population = dict(zip(worldometer["Country/Region"], worldometer["Population"]))
    latest = time_series[time_series["Date"] == time_series["Date"].max()]
    who_region = dict(zip(latest["Country/Region"], latest["WHO Region"]))
    coordinates = _expected_coordinates(raw["covid19_cases_position"])

    # A naive join on the raw names loses these countries; the README counts 16 holding 4,803,479 confirmed.
    country_wise = raw["covid19_country_wise"]
    naive_losses = country_wise[~country_wise["Country/Region"].isin(worldometer["Country/Region"])]
    assert set(naive_losses["Country/Region"]) == set(renamed) | absent_from_worldometer
    assert naive_losses["Confirmed"].sum() == 4_803_479

    countries = {r.country_region: r for r in shared.countries.collect()}
    assert sorted(countries) == sorted(who_region)
    for name, row in countries.items():
        expected_population = population.get(renamed.get(name, name))
        assert (row.mapped, row.continent is not None) == (True, True), name
        assert row.population == (None if name in absent_from_worldometer else int(expected_population)), name
        assert row.who_region == who_region[name], name
        assert (row.latitude, row.longitude) == coordinates[name], name
    assert countries["US"].population == 331_198_130
