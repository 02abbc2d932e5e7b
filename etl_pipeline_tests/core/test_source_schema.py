"""The source schema: every raw header of the four files mapped to its exact snake_case column name."""

from __future__ import annotations

import csv
from pathlib import Path

import pyarrow as pa
import pytest

from etl_pipeline.core.source_schema import SOURCE_TABLES, arrow_schema, snake_case

#: Raw header -> column name, in file order, written out by hand (the contract the later layers rely on).
EXPECTED_COLUMNS: dict[str, dict[str, str]] = {
    "covid19_cases_position": {
        "Province/State": "province_state",
        "Country/Region": "country_region",
        "Lat": "lat",
        "Long": "long",
        "Date": "date",
        "Confirmed": "confirmed",
        "Deaths": "deaths",
        "Recovered": "recovered",
        "Active": "active",
        "WHO Region": "who_region",
    },
    "covid19_country_wise": {
        "Country/Region": "country_region",
        "Confirmed": "confirmed",
        "Deaths": "deaths",
        "Recovered": "recovered",
        "Active": "active",
        "New cases": "new_cases",
        "New deaths": "new_deaths",
        "New recovered": "new_recovered",
        "Deaths / 100 Cases": "deaths_per_100_cases",
        "Recovered / 100 Cases": "recovered_per_100_cases",
        "Deaths / 100 Recovered": "deaths_per_100_recovered",
        "Confirmed last week": "confirmed_last_week",
        "1 week change": "one_week_change",
        "1 week % increase": "one_week_pct_increase",
        "WHO Region": "who_region",
    },
    "covid19_time_series": {
        "Date": "date",
        "Country/Region": "country_region",
        "Confirmed": "confirmed",
        "Deaths": "deaths",
        "Recovered": "recovered",
        "Active": "active",
        "New cases": "new_cases",
        "New deaths": "new_deaths",
        "New recovered": "new_recovered",
        "WHO Region": "who_region",
    },
    "covid19_worldometer": {
        "Country/Region": "country_region",
        "Continent": "continent",
        "Population": "population",
        "TotalCases": "total_cases",
        "NewCases": "new_cases",
        "TotalDeaths": "total_deaths",
        "NewDeaths": "new_deaths",
        "TotalRecovered": "total_recovered",
        "NewRecovered": "new_recovered",
        "ActiveCases": "active_cases",
        "Serious,Critical": "serious_critical",
        "Tot Cases/1M pop": "tot_cases_per_1m_pop",
        "Deaths/1M pop": "deaths_per_1m_pop",
        "TotalTests": "total_tests",
        "Tests/1M pop": "tests_per_1m_pop",
        "WHO Region": "who_region",
    },
}


def raw_header(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        return next(csv.reader(f))


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
def test_every_raw_header_of_the_file_maps_to_its_expected_name(table: str, data_dir: Path) -> None:
    header = raw_header(data_dir / SOURCE_TABLES[table].file_name)
    assert {h: snake_case(h) for h in header} == EXPECTED_COLUMNS[table]
    assert header == list(EXPECTED_COLUMNS[table])  # the file holds exactly these headers, in this order


@pytest.mark.parametrize("table", sorted(EXPECTED_COLUMNS))
def test_the_schema_declares_exactly_the_file_columns(table: str) -> None:
    schema = SOURCE_TABLES[table]
    assert [(c.header, c.name) for c in schema.columns] == list(EXPECTED_COLUMNS[table].items())
    assert schema.file_name == f"{table}.csv"


@pytest.mark.parametrize(
    ("header", "name"),
    [
        ("  Deaths / 100 Cases ", "deaths_per_100_cases"),
        ("Tests/1M pop", "tests_per_1m_pop"),
        ("Serious,Critical", "serious_critical"),
        ("1 week % increase", "one_week_pct_increase"),
        ("7 day change", "seven_day_change"),
        ("3", "three"),
        ("TotalCases", "total_cases"),
        ("WHO Region", "who_region"),
        ("Country/Region", "country_region"),
    ],
)
def test_snake_case(header: str, name: str) -> None:
    assert snake_case(header) == name


def test_keys_and_nullability() -> None:
    keys = {name: (t.primary_key, t.empty_is_blank) for name, t in SOURCE_TABLES.items()}
    assert keys == {
        "covid19_cases_position": (("date", "country_region", "province_state"), ("province_state",)),
        "covid19_country_wise": (("country_region",), ()),
        "covid19_time_series": (("date", "country_region"), ()),
        "covid19_worldometer": (("country_region",), ()),
    }
    for table in SOURCE_TABLES.values():
        assert not any(table.column(k).nullable for k in table.primary_key), table.name
    nullable = {name: [c.name for c in t.columns if c.nullable] for name, t in SOURCE_TABLES.items()}
    assert nullable["covid19_country_wise"] == [
        "deaths_per_100_cases", "recovered_per_100_cases", "deaths_per_100_recovered", "one_week_pct_increase",
    ]
    assert nullable["covid19_worldometer"] == list(EXPECTED_COLUMNS["covid19_worldometer"].values())[1:]
    assert nullable["covid19_cases_position"] == nullable["covid19_time_series"] == []


def test_arrow_schema_types() -> None:
    assert arrow_schema(SOURCE_TABLES["covid19_cases_position"]) == pa.schema(
        [
            ("province_state", pa.string()),
            ("country_region", pa.string()),
            ("lat", pa.float64()),
            ("long", pa.float64()),
            ("date", pa.date32()),
            ("confirmed", pa.int64()),
            ("deaths", pa.int64()),
            ("recovered", pa.int64()),
            ("active", pa.int64()),
            ("who_region", pa.string()),
        ]
    )
    worldometer = arrow_schema(SOURCE_TABLES["covid19_worldometer"])
    assert [str(t) for t in worldometer.types] == ["string"] * 2 + ["int64"] * 9 + ["double"] * 2 + [
        "int64", "double", "string",
    ]
