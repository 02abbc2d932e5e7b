from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from etl_pipeline.assets.checks import findings_by
from etl_pipeline.transforms.countries import REFERENCE_SCHEMA
from etl_pipeline.transforms.quality import (
    continent_disagreements,
    countries_without_worldometer_row,
    cumulative_decreases,
    duplicate_keys,
    negative_values,
    null_keys,
    provinces_not_summing,
    reconcile_country_totals,
    reconcile_daily_with_positions,
    reconcile_overall,
    unknown_countries,
    worldometer_only,
)

pytestmark = pytest.mark.engines  # the same results on Apache Spark and on Sail

D1, D2, D3 = dt.date(2020, 7, 25), dt.date(2020, 7, 26), dt.date(2020, 7, 27)
COUNTS = "confirmed bigint, deaths bigint, recovered bigint, active bigint"
TIME_SERIES_COUNTS = ["Confirmed", "Deaths", "Recovered", "Active", "New cases", "New deaths", "New recovered"]


@pytest.fixture(scope="module")
def keyed(spark):
    return spark.createDataFrame(
        [("a", "x", 1), ("a", "x", 2), ("b", "x", 1), ("b", None, 1), (None, "y", 3)],
        "k1 string, k2 string, v bigint",
    )


def test_duplicate_keys_counts_rows_per_repeated_key(keyed, rows):
    assert rows(duplicate_keys(keyed, ["k1", "k2"])) == [("a", "x", 2)]
    assert rows(duplicate_keys(keyed, ["k2"])) == [("x", 3)]


def test_null_keys_returns_rows_with_a_null_key_column(keyed, rows):
    assert rows(null_keys(keyed, ["k1", "k2"])) == [(None, "y", 3), ("b", None, 1)]
    assert rows(null_keys(keyed, ["k1"])) == [(None, "y", 3)]


def test_reconcile_country_totals_compares_each_country_on_its_last_date(spark, rows):
    daily = spark.createDataFrame(
        [(D1, "A", 1, 0, 0, 1), (D2, "A", 5, 1, 1, 3), (D2, "B", 7, 1, 2, 4)],
        f"date date, country_region string, {COUNTS}",
    )
    country_wise = spark.createDataFrame(
        [("A", 5, 1, 1, 3), ("B", 7, 2, 2, 3), ("C", 1, 0, 0, 1)], f"country_region string, {COUNTS}"
    )
    mismatches = reconcile_country_totals(daily, country_wise)
    assert mismatches.columns == [
        "country_region",
        "gold_confirmed", "source_confirmed", "gold_deaths", "source_deaths",
        "gold_recovered", "source_recovered", "gold_active", "source_active",
    ]  # fmt: skip
    assert rows(mismatches) == [
        ("B", 7, 7, 1, 2, 2, 2, 4, 3),
        ("C", None, 1, None, 0, None, 0, None, 1),
    ]


def test_reconcile_daily_with_positions_compares_province_sums(spark, rows):
    time_series = spark.createDataFrame(
        [(D1, "A", 3, 0, 1, 2), (D1, "B", 2, 0, 0, 2), (D2, "A", 9, 0, 1, 8)],
        f"date date, country_region string, {COUNTS}",
    )
    positions = spark.createDataFrame(
        [
            (D1, "A", "p", 1, 0, 1, 0), (D1, "A", "q", 2, 0, 0, 2),
            (D1, "B", "", 2, 0, 0, 2),
            (D2, "A", "p", 4, 0, 1, 3), (D2, "A", "q", 4, 0, 0, 4),
        ],
        f"date date, country_region string, province_state string, {COUNTS}",
    )  # fmt: skip
    mismatches = reconcile_daily_with_positions(time_series, positions)
    assert mismatches.columns[:4] == ["date", "country_region", "time_series_confirmed", "positions_confirmed"]
    assert rows(mismatches) == [(D2, "A", 9, 8, 0, 0, 1, 1, 8, 7)]


def test_provinces_not_summing_names_each_country_with_its_dates_and_last_difference(spark, rows):
    time_series = spark.createDataFrame(
        [(D1, "A", 3, 0, 1, 2), (D2, "A", 3, 0, 1, 2), (D3, "A", 5, 0, 1, 4), (D1, "B", 2, 0, 0, 2)],
        f"date date, country_region string, {COUNTS}",
    )
    positions = spark.createDataFrame(
        [
            (D1, "A", "p", 3, 0, 1, 2),
            (D2, "A", "p", 3, 0, 1, 2), (D2, "A", "ship", -1, -1, -1, -1),
            (D3, "A", "p", 5, 0, 1, 4), (D3, "A", "ship", -1, -1, -1, -1), (D3, "A", "ship 2", -1, 0, 0, -1),
            (D1, "B", "", 2, 0, 0, 2), (D2, "B", "", 2, 0, 0, 2),  # a date the time series lacks
        ],
        f"date date, country_region string, province_state string, {COUNTS}",
    )  # fmt: skip
    found = provinces_not_summing(time_series, positions)
    assert found.columns == ["country_region", "dates", "first_date", "last_date", "confirmed_difference",
                             "deaths_difference", "recovered_difference", "active_difference"]
    assert rows(found) == [("A", 2, D2, D3, -2, -1, -1, -2), ("B", 1, D2, D2, 2, 0, 0, 2)]


def test_unknown_countries_are_named_with_where_they_occur(spark, rows):
    reference = spark.createDataFrame([("South Korea", "S. Korea", "Asia")], REFERENCE_SCHEMA)
    time_series = spark.createDataFrame(
        [(D1, "South Korea"), (D2, "Korea, South"), (D3, "Korea, South"), (D3, "Atlantis")],
        "date date, country_region string")
    positions = spark.createDataFrame([(D2, "Korea, South", ""), (D3, "Korea, South", "")],
                                      "date date, country_region string, province_state string")
    country_wise = spark.createDataFrame([("Korea, South", 5)], "country_region string, confirmed bigint")
    found = unknown_countries({"ts": time_series, "cp": positions, "cw": country_wise}, reference)
    assert found.columns == ["country_region", "first_date", "last_date", "rows_in_ts", "rows_in_cp", "rows_in_cw"]
    assert rows(found) == [("Atlantis", D3, D3, 1, 0, 0), ("Korea, South", D2, D3, 2, 2, 1)]
    assert unknown_countries({"ts": time_series.where("country_region = 'South Korea'"), "cw": country_wise.limit(0)},
                             reference).count() == 0


def test_countries_without_worldometer_row_leave_out_the_reviewed_absences(spark, worldometer_conformed, rows):
    reference = spark.createDataFrame(
        [("US", "USA", "North America"), ("Cyprus", "Cyprus", "Europe"), ("Kosovo", None, "Europe"),
         ("China", None, "Asia"), ("Czechia", "Czechia", "Europe")],
        REFERENCE_SCHEMA,
    )
    countries = spark.createDataFrame(
        [("US", "North America"), ("Czechia", "Europe"), ("China", "Asia"), ("Kosovo", "Europe")],
        "country_region string, continent string")
    # Kosovo found a row although the reference expects none: fine; China is absent by review; Czechia is lost
    assert rows(countries_without_worldometer_row(countries, worldometer_conformed, reference)) == [
        ("Czechia", "Europe")]


def test_reconcile_overall_one_row_per_measure(spark, rows):
    continents = spark.createDataFrame(
        [("Asia", 10, 1, 5, 4), ("Unknown", 3, 0, 0, 3)],
        "continent string, total_confirmed bigint, total_deaths bigint, total_recovered bigint, total_active bigint",
    )
    country_wise = spark.createDataFrame([("A", 10, 1, 5, 4), ("B", 4, 0, 0, 4)], f"country_region string, {COUNTS}")
    overall = reconcile_overall(continents, country_wise)
    assert overall.columns == ["measure", "gold_total", "source_total", "difference"]
    assert rows(overall) == [
        ("active", 7, 8, -1),
        ("confirmed", 13, 14, -1),
        ("deaths", 1, 1, 0),
        ("recovered", 5, 5, 0),
    ]
    assert rows(reconcile_overall(continents.limit(0), country_wise.limit(0))) == [
        ("active", 0, 0, 0), ("confirmed", 0, 0, 0), ("deaths", 0, 0, 0), ("recovered", 0, 0, 0),
    ]  # fmt: skip


def test_cumulative_decreases_compares_with_the_previous_row_of_each_partition(spark, rows):
    series = spark.createDataFrame(
        [
            ("A", "p", D1, 5), ("A", "p", D2, 4), ("A", "p", D3, 6),
            ("A", "q", D1, 1), ("A", "q", D3, 0),
            ("B", "p", D2, 9),
        ],
        "country_region string, province_state string, date date, confirmed bigint",
    )
    decreases = cumulative_decreases(series, ["country_region", "province_state"], "date", ["confirmed"])
    assert decreases.columns == ["country_region", "province_state", "date", "measure", "previous_value", "value"]
    assert rows(decreases) == [("A", "p", D2, "confirmed", 5, 4), ("A", "q", D3, "confirmed", 1, 0)]


def test_cumulative_decreases_of_several_columns_in_one_pass(spark, rows):
    series = spark.createDataFrame(
        [("A", D1, 5, 2), ("A", D2, 4, 1), ("A", D3, 6, 1), ("B", D1, 3, 3), ("B", D2, 3, None), ("B", D3, 3, 0)],
        "country_region string, date date, confirmed bigint, deaths bigint",
    )
    decreases = cumulative_decreases(series, ["country_region"], "date", ["confirmed", "deaths"])
    # a NULL is no decrease, and the value after it is compared with the NULL, not with the value before it
    assert rows(decreases) == [("A", D2, "confirmed", 5, 4), ("A", D2, "deaths", 2, 1)]


def test_negative_values_lists_a_row_once_per_negative_column(spark, rows):
    frame = spark.createDataFrame(
        [("A", 1, -2, 3), ("B", -1, -1, 0), ("C", 0, 0, None)], "country_region string, x bigint, y bigint, z bigint"
    )
    assert rows(negative_values(frame, ["x", "y", "z"])) == [
        ("A", 1, -2, 3, "y"), ("B", -1, -1, 0, "x"), ("B", -1, -1, 0, "y"),
    ]  # fmt: skip


@pytest.fixture(scope="module")
def worldometer_conformed(spark):
    return spark.createDataFrame(
        [
            ("US", "USA", "North America", 331, 5),
            ("Cyprus", "Cyprus", "Europe", 1, 1),
            ("Kosovo", "Kosovo", None, 2, 2),
            (None, "Aruba", "North America", 106, 3),
            (None, "Diamond Princess", None, None, 712),
        ],
        "country_region string, worldometer_name string, continent string, population bigint, total_cases bigint",
    )


def test_worldometer_only_lists_rows_that_are_no_jhu_country(worldometer_conformed, rows):
    assert rows(worldometer_only(worldometer_conformed)) == [
        ("Aruba", "North America", 106, 3),
        ("Diamond Princess", None, None, 712),
    ]


def test_continent_disagreements_compare_worldometer_with_the_reference(spark, worldometer_conformed, rows):
    reference = spark.createDataFrame(
        [("US", "USA", "North America"), ("Cyprus", "Cyprus", "Asia"), ("Kosovo", None, "Europe")], REFERENCE_SCHEMA
    )
    assert rows(continent_disagreements(worldometer_conformed, reference)) == [("Cyprus", "Cyprus", "Europe", "Asia")]


def test_shared_data_findings_are_those_the_source_documents(shared, raw):
    time_series = raw["covid19_time_series"].sort_values(["Country/Region", "Date"])
    decreased = time_series["Confirmed"].diff().lt(0) & time_series["Country/Region"].eq(
        time_series["Country/Region"].shift()
    )
    expected_decreases = set(time_series.loc[decreased, ["Country/Region", "Date"]].itertuples(index=False, name=None))
    assert len(expected_decreases) == 33

    decreases = cumulative_decreases(shared.time_series, ["country_region"], "date", ["confirmed"]).toPandas()
    assert {(r.country_region, r.date.isoformat()) for r in decreases.itertuples()} == expected_decreases

    columns = [c.lower().replace(" ", "_") for c in TIME_SERIES_COUNTS]
    negatives = findings_by(negative_values(shared.time_series, columns), "negative_column")
    expected = {c: int(n) for c, n in zip(columns, (raw["covid19_time_series"][TIME_SERIES_COUNTS] < 0).sum()) if n}
    assert {c: f["count"] for c, f in negatives.items()} == expected
    assert expected == {"new_deaths": 38, "new_recovered": 77, "active": 2}
    assert all(example["active"] < 0 for example in negatives["active"]["examples"])
    assert len(negatives["new_recovered"]["examples"]) == 5


def test_shared_data_reconciles_with_the_source(shared, raw):
    assert reconcile_country_totals(shared.daily, shared.country_wise).count() == 0
    assert reconcile_daily_with_positions(shared.time_series, shared.positions).count() == 0
    overall = {
        r.measure: (r.gold_total, r.source_total)
        for r in reconcile_overall(shared.continents, shared.country_wise).collect()
    }
    country_wise = raw["covid19_country_wise"]
    assert overall == {m.lower(): (country_wise[m].sum(),) * 2 for m in ["Confirmed", "Deaths", "Recovered", "Active"]}
    assert overall["confirmed"] == (16_480_485, 16_480_485)


def test_shared_data_worldometer_only_rows_and_continents(shared, raw, renamed):
    worldometer_names = {n.strip() for n in raw["covid19_worldometer"]["Country/Region"]}
    jhu = set(raw["covid19_time_series"]["Country/Region"])
    expected = worldometer_names - jhu - {n.strip() for n in renamed.values()}
    assert {"Diamond Princess", "Aruba", "Hong Kong", "Réunion"} <= expected
    assert len(expected) == 24

    names = worldometer_only(shared.worldometer).toPandas()["worldometer_name"]
    assert sorted(names) == sorted(expected)
    assert continent_disagreements(shared.worldometer, shared.reference).count() == 0


def test_decrease_check_on_the_shared_data_counts_what_pandas_finds(shared, raw):
    from etl_pipeline.assets.gold import cumulative_counts_never_decrease

    series = raw["covid19_time_series"].sort_values(["Country/Region", "Date"])
    same_country = series["Country/Region"].eq(series["Country/Region"].shift())
    expected = {m.lower(): int((series[m].diff().lt(0) & same_country).sum())
                for m in ["Confirmed", "Deaths", "Recovered"]}
    assert expected["confirmed"] == 33

    result = cumulative_counts_never_decrease(shared.daily)
    assert {m: result.metadata[f"{m}_decreases"].value for m in expected} == expected
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    examples = result.metadata["confirmed_examples"].value
    assert len(examples) == 5 and all(e["value"] < e["previous_value"] for e in examples)
    keys = [(e["country_region"], e["date"]) for e in examples]
    assert keys == sorted(keys)
