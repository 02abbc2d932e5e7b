"""The epidemiological measures: hand-computed series, named countries of the shared data against the raw CSVs,
and the independent recomputation the blocking checks run."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from pyspark.sql import functions as F

from etl_pipeline.transforms import measures, quality

pytestmark = pytest.mark.engines  # the same results on Apache Spark and on Sail

START = dt.date(2020, 3, 1)
SCHEMA = ("date date, country_region string, confirmed bigint, deaths bigint, new_cases bigint, new_deaths bigint, "
          "new_recovered bigint, population bigint")
# Country A: 9 consecutive days, a revision on day 4 (confirmed 120 -> 98, new cases -22), population 200,000
A = [  # (confirmed, deaths, new_cases, new_deaths)
    (0, 0, 0, 0), (50, 0, 50, 0), (99, 1, 49, 1), (120, 1, 21, 0), (98, 1, -22, 0),
    (150, 2, 52, 1), (200, 2, 50, 0), (260, 3, 60, 1), (300, 3, 40, 0),
]


def day(i: int) -> dt.date:
    return START + dt.timedelta(days=i)


@pytest.fixture(scope="module")
def computed(spark) -> dict[str, list[tuple]]:
    rows = [(day(i), "A", c, d, n, nd, 0, 200_000) for i, (c, d, n, nd) in enumerate(A)]
    rows += [(day(i), "B", 100, 0, 1, 0, 0, None) for i in range(8) if i != 3]  # day 3 missing, no population
    rows += [(day(0), "C", 5, 1, 5, 1, 0, 0)]  # a population of 0
    # D: confirmed revised down while the reported daily count is clipped at 0, as JHU's is
    rows += [(day(i), "D", c, 0, n, 0, 0, 1000) for i, (c, n) in enumerate([(10, 0), (9, 0), (12, 3)])]
    frame = measures.with_measures(spark.createDataFrame(rows, SCHEMA), ["country_region"], per_capita=True)
    assert frame.columns[8:] == [*measures.rolling_columns(), *measures.per_capita_columns(),
                                 *measures.ratio_columns()]
    return {country: [tuple(r) for r in frame.where(F.col("country_region") == country).orderBy("date")
                      .select(*frame.columns[8:]).collect()]
            for country in "ABCD"}


def column(rows: list[tuple], name: str) -> list:
    names = [*measures.rolling_columns(), *measures.per_capita_columns(), *measures.ratio_columns()]
    return [r[names.index(name)] for r in rows]


def test_seven_day_averages_are_trailing_and_need_seven_days(computed) -> None:
    a = computed["A"]
    assert column(a, "new_cases_7d_avg") == [None] * 6 + [pytest.approx(200 / 7), pytest.approx(260 / 7),
                                                           pytest.approx(250 / 7)]
    assert column(a, "new_deaths_7d_avg") == [None] * 6 + [pytest.approx(2 / 7), pytest.approx(3 / 7),
                                                            pytest.approx(3 / 7)]
    # B misses day 3: no window of 7 days has 7 values
    assert column(computed["B"], "new_cases_7d_avg") == [None] * 7


def test_rates_per_capita_need_a_known_population(computed) -> None:
    a = computed["A"]
    assert column(a, "confirmed_per_100k") == [pytest.approx(c * 100_000 / 200_000) for c, *_ in A]
    assert column(a, "deaths_per_million") == [pytest.approx(d * 1_000_000 / 200_000) for _, d, *_ in A]
    assert column(a, "new_cases_per_million")[4] == pytest.approx(-22 * 5)
    assert column(a, "new_cases_7d_avg_per_million") == [None] * 6 + [
        pytest.approx(v / 7 * 5) for v in (200, 260, 250)]
    for country in "BC":  # population NULL, population 0
        assert {v for name in measures.per_capita_columns() for v in column(computed[country], name)} == {None}


def test_fatality_ratio_days_since_100_cases_and_the_revision_flag(computed) -> None:
    a = computed["A"]
    assert column(a, "case_fatality_ratio") == [None] + [pytest.approx(d / c) for c, d, *_ in A[1:]]
    # 100 reached on day 3; the revision under 100 on day 4 does not restart the count
    assert column(a, "days_since_100_cases") == [None, None, None, 0, 1, 2, 3, 4, 5]
    assert column(computed["B"], "days_since_100_cases") == [0, 1, 2, 4, 5, 6, 7]  # calendar days, over the gap
    assert column(a, "downward_revision") == [False, False, False, False, True, False, False, False, False]
    assert column(computed["D"], "downward_revision") == [False, True, False]  # 10 -> 9, new cases 0


def test_daily_differences_are_null_after_a_missing_day(spark) -> None:
    frame = spark.createDataFrame([(day(0), "X", 1), (day(1), "X", 4), (day(3), "X", 10), (day(4), "X", 9)],
                                  "date date, country_region string, confirmed bigint")
    diffs = measures.daily_differences(frame, ["country_region"], {"new_cases": "confirmed"})
    assert [r["new_cases"] for r in diffs.orderBy("date").collect()] == [None, 3, None, -1]


def _raw_series(raw: dict[str, pd.DataFrame], country: str) -> pd.DataFrame:
    series = raw["covid19_time_series"]
    return series[series["Country/Region"] == country].assign(date=lambda t: pd.to_datetime(t["Date"]).dt.date)


@pytest.mark.parametrize(("country", "worldometer_name", "date"), [
    ("US", "USA", dt.date(2020, 7, 27)),
    ("Italy", "Italy", dt.date(2020, 3, 3)),
    ("Brazil", "Brazil", dt.date(2020, 5, 15)),
    ("South Korea", "S. Korea", dt.date(2020, 2, 29)),
])
def test_named_countries_equal_the_raw_csv(shared, raw, country, worldometer_name, date) -> None:
    """Straight from the CSV files: the worldometer row's population, the time series' rows of the 7 days."""
    series = _raw_series(raw, country)
    worldometer = raw["covid19_worldometer"]
    population = int(worldometer.loc[worldometer["Country/Region"].str.strip() == worldometer_name,
                                     "Population"].iloc[0])
    today = series[series["date"] == date].iloc[0]
    week = series[(series["date"] > date - dt.timedelta(days=7)) & (series["date"] <= date)]
    assert len(week) == 7
    first_100 = series.loc[series["Confirmed"] >= 100, "date"].min()

    row = shared.daily.where((F.col("country_region") == country) & (F.col("date") == date)).first().asDict()

    assert row["population"] == population
    assert row["confirmed_per_100k"] == pytest.approx(today["Confirmed"] * 1e5 / population, rel=1e-12)
    assert row["deaths_per_million"] == pytest.approx(today["Deaths"] * 1e6 / population, rel=1e-12)
    assert row["new_cases_7d_avg"] == pytest.approx(week["New cases"].sum() / 7, rel=1e-12)
    assert row["new_deaths_7d_avg"] == pytest.approx(week["New deaths"].sum() / 7, rel=1e-12)
    assert row["new_cases_7d_avg_per_million"] == pytest.approx(week["New cases"].sum() / 7 * 1e6 / population,
                                                                rel=1e-12)
    assert row["case_fatality_ratio"] == pytest.approx(today["Deaths"] / today["Confirmed"], rel=1e-12)
    assert row["days_since_100_cases"] == (None if date < first_100 else (date - first_100).days)


def test_us_figures_on_the_last_day(shared) -> None:
    """Literal values worked out by hand from the CSVs: 4,290,259 cases and 148,011 deaths on 2020-07-27,
    worldometer population 331,198,130; 100 or more cases first on 2020-03-04, 145 days earlier."""
    row = shared.daily.where((F.col("country_region") == "US") & (F.col("date") == dt.date(2020, 7, 27))).first()
    assert round(row["confirmed_per_100k"], 2) == 1295.38
    assert round(row["deaths_per_million"], 1) == 446.9
    assert round(row["case_fatality_ratio"], 4) == 0.0345
    assert row["days_since_100_cases"] == 145


def test_the_recomputation_finds_nothing_on_the_shared_data(shared) -> None:
    daily = quality.measures_differing(shared.daily, ["country_region"], population=shared.countries)
    locations = quality.measures_differing(shared.locations, ["country_region", "province_state"], derive_new=True)
    assert daily.count() == 0
    assert locations.count() == 0


def test_the_recomputation_names_a_wrong_value_and_a_missing_one(shared) -> None:
    us_last = (F.col("country_region") == "US") & (F.col("date") == dt.date(2020, 7, 27))
    tampered = shared.daily.withColumns({
        "confirmed_per_100k": F.when(us_last, F.col("confirmed_per_100k") * 2).otherwise(F.col("confirmed_per_100k")),
        "new_cases_7d_avg": F.when(us_last, F.lit(None)).otherwise(F.col("new_cases_7d_avg")),
    })
    found = quality.measures_differing(tampered, ["country_region"], population=shared.countries).collect()
    assert sorted((r["measure"], r["country_region"], r["date"]) for r in found) == [
        ("confirmed_per_100k", "US", dt.date(2020, 7, 27)),
        ("new_cases_7d_avg", "US", dt.date(2020, 7, 27)),
    ]
    wrong = next(r for r in found if r["measure"] == "confirmed_per_100k")
    assert wrong["value"] == pytest.approx(2 * wrong["expected"])


def test_downward_revisions_on_the_shared_data_are_those_of_the_raw_csv(shared, raw) -> None:
    """A negative daily count or a cumulative count under the day before, straight from the time-series CSV."""
    series = raw["covid19_time_series"].assign(date=lambda t: pd.to_datetime(t["Date"]).dt.date)
    series = series.sort_values(["Country/Region", "date"])
    by_country = series.groupby("Country/Region")
    decreased = (by_country[["Confirmed", "Deaths", "Recovered"]].diff() < 0).any(axis=1)
    negative = (series[["New cases", "New deaths", "New recovered"]] < 0).any(axis=1)
    flagged = series[decreased | negative]
    expected = set(zip(flagged["Country/Region"], flagged["date"], strict=True))

    found = {(r["country_region"], r["date"]) for r in shared.daily.where("downward_revision").collect()}

    assert found == expected
    assert len(found) == len(expected) > 113  # more than the negative daily counts alone
