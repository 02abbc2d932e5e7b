"""The one-query findings behind every asset check, and the descriptions built from them: counts and examples on
small frames with known problems."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest
from pyspark.sql import SparkSession

from etl_pipeline.assets.checks import KeyChecks, describe, finding, findings_by
from etl_pipeline.assets.silver import worldometer_coverage
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.transforms.countries import REFERENCE_SCHEMA

KEY = dg.AssetKey(["gold", "medical", "t"])

pytestmark = pytest.mark.engines  # the same findings on Apache Spark and on Sail


@pytest.fixture(scope="module")
def spark(spark_engine: str, engine_master: str) -> SparkSession:
    return SparkSessionResource(master="local[1]" if spark_engine == "spark" else engine_master).get_session()


@pytest.fixture(scope="module")
def rows(spark: SparkSession):
    """(day, name) is the key: two NULL-key rows, 'b' twice on day 1, 'c' three times on day 2."""
    data = [(1, "a", 10), (1, "b", 11), (1, "b", 12), (2, "c", 13), (2, "c", 14), (2, "c", 15), (None, "d", 16),
            (3, None, 17), (3, "e", 18)]
    return spark.createDataFrame(data, "day int, name string, value int")


def test_finding_counts_every_row_and_shows_the_first_ones_in_order(rows) -> None:
    found = finding(rows.where("value > 11"), ["value"], examples=2)
    assert found == {"count": 7, "examples": [{"day": 1, "name": "b", "value": 12},
                                              {"day": 2, "name": "c", "value": 13}]}


def test_finding_orders_by_every_column_when_no_order_is_given(rows) -> None:
    assert finding(rows.where("name = 'c'"), examples=1)["examples"] == [{"day": 2, "name": "c", "value": 13}]


def test_an_empty_finding_has_no_examples(rows) -> None:
    assert finding(rows.where("value < 0"), ["value"]) == {"count": 0, "examples": []}


def test_dates_in_examples_are_iso_strings(spark: SparkSession) -> None:
    frame = spark.createDataFrame([(dt.date(2020, 1, 22), 1)], "date date, n int")
    assert finding(frame)["examples"] == [{"date": "2020-01-22", "n": 1}]


def test_findings_by_value_of_a_column(rows) -> None:
    found = findings_by(rows.where("name IS NOT NULL"), "name", ["value"], examples=1)
    assert {name: f["count"] for name, f in found.items()} == {"a": 1, "b": 2, "c": 3, "d": 1, "e": 1}
    assert found["c"]["examples"] == [{"day": 2, "name": "c", "value": 13}]


def test_key_checks_count_null_keys_and_keys_held_by_several_rows(rows) -> None:
    not_null, unique = KeyChecks(KEY, ("day", "name")).evaluate(rows)
    assert (not_null.check_name, unique.check_name) == ("keys_not_null", "keys_unique")
    assert not not_null.passed and not unique.passed
    assert not_null.description == ("2 rows of t with a NULL key column: (day=None, name='d', value=16); "
                                    "(day=3, name=None, value=17)")
    assert not_null.metadata["count"].value == 2
    assert not_null.metadata["examples"].value == [{"day": None, "name": "d", "value": 16},
                                                   {"day": 3, "name": None, "value": 17}]
    assert unique.description == ("2 keys of t held by several rows: (day=1, name='b', rows=2); "
                                  "(day=2, name='c', rows=3)")
    assert unique.metadata["examples"].value == [{"day": 1, "name": "b", "rows": 2}, {"day": 2, "name": "c", "rows": 3}]


def test_key_checks_pass_on_a_table_with_a_proper_key(rows) -> None:
    results = list(KeyChecks(KEY, ("value",)).evaluate(rows))
    assert [(r.passed, r.metadata["count"].value, r.metadata["examples"].value) for r in results] == [
        (True, 0, []), (True, 0, [])]
    assert [r.description for r in results] == ["no rows of t with a NULL key column", "no keys of t held by several rows"]


def test_a_description_names_the_count_and_the_first_examples_and_says_when_there_are_more() -> None:
    found = {"count": 3, "examples": [{"country_region": "Korea, South", "rows": 140},
                                      {"country_region": "X", "rows": 1}]}
    assert describe(found, "unknown names") == (
        "3 unknown names: (country_region='Korea, South', rows=140); (country_region='X', rows=1); ...")
    assert describe({"count": 0, "examples": []}, "unknown names") == "no unknown names"


@pytest.fixture(scope="module")
def reference(spark: SparkSession):
    return spark.createDataFrame([("South Korea", "S. Korea", "Asia"), ("China", None, "Asia"),
                                  ("Czechia", "Czechia", "Europe")], REFERENCE_SCHEMA)


def test_worldometer_coverage_warns_naming_countries_without_their_row_and_rows_that_matched_nothing(
    spark: SparkSession, reference
) -> None:
    """worldometer spelling a country in a way the reference does not know: its population would be lost."""
    countries = spark.createDataFrame([("South Korea", "Asia"), ("China", "Asia"), ("Czechia", "Europe")],
                                      "country_region string, continent string")
    worldometer = spark.createDataFrame(
        [(None, "Korea (South)"), ("Czechia", "Czech Republic"), (None, "Diamond Princess")],
        "country_region string, worldometer_name string",
    ).selectExpr("country_region", "worldometer_name", "'Asia' AS continent", "1 AS population",
                 "1 AS total_cases")

    result = worldometer_coverage(countries, worldometer, reference)

    assert (result.passed, result.severity) == (False, dg.AssetCheckSeverity.WARN)
    assert result.description == ("1 countries without a worldometer row (population NULL): South Korea; "
                                  "2 worldometer rows matched no country: Diamond Princess, Korea (South)")
    assert {k: v.value for k, v in result.metadata.items()} == {
        "countries_without_worldometer_row": 1, "countries": ["South Korea"],
        "unmatched_worldometer_rows": 2, "worldometer_names": ["Diamond Princess", "Korea (South)"]}

    found = worldometer.where("worldometer_name <> 'Korea (South)'").union(
        spark.createDataFrame([("South Korea", "South Korea", "Asia", 1, 1)], worldometer.schema))
    passed = worldometer_coverage(countries, found, reference)
    assert passed.passed
    assert passed.description == ("every country found its worldometer row; 1 worldometer rows matched no country: "
                                  "Diamond Princess")
