"""The spread page's URL state and the country table's derived columns (pure functions)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from dashboard.country_table import COLUMNS, doubling_time_days, table_rows
from dashboard.view_state import SpreadView, TrendView, parse, search_string

DATES = ["2020-01-22", "2020-01-23", "2020-07-27"]
COUNTRIES = ["Italy", "Korea, South", "US", "Vietnam"]


def _parse(search: str | None) -> SpreadView:
    return parse(search, dates=DATES, countries=COUNTRIES, default_countries=["Vietnam"])


def test_no_query_is_the_default_view_on_the_last_day() -> None:
    assert _parse(None) == SpreadView("confirmed", "2020-07-27", TrendView(("Vietnam",)))
    assert _parse("") == _parse("?")


def test_a_view_survives_its_own_url() -> None:
    view = SpreadView("deaths_per_million", "2020-01-23", TrendView(
        ("Korea, South", "US"), count="deaths", mode="daily", scale="per_million", axis="log", align="days_since_100"))
    search = search_string(view)
    assert search.startswith("?measure=deaths_per_million&date=2020-01-23&country=Korea%2C+South&country=US")
    assert _parse(search) == view


def test_unknown_values_fall_back_to_the_defaults() -> None:
    view = _parse("?measure=DROP+TABLE&date=2021-01-01&country=Atlantis&axis=cubic&mode=daily")
    assert view == SpreadView("confirmed", "2020-07-27", TrendView(("Vietnam",), mode="daily"))


def test_at_most_eight_countries_once_each() -> None:
    many = "&".join(f"country={c}" for c in ["US", "US", "Italy"] + ["Vietnam"] * 3)
    assert _parse("?" + many).trend.countries == ("US", "Italy", "Vietnam")
    ten = [f"Country {i}" for i in range(10)]
    view = parse("?" + "&".join(f"country={c}" for c in ten), dates=DATES, countries=ten, default_countries=[])
    assert view.trend.countries == tuple(ten[:8])


def test_doubling_time_at_the_growth_of_the_last_week() -> None:
    now = pd.Series([200, 150, 100, 5, 0])
    before = pd.Series([100, 100, 100, 0, 0])
    got = doubling_time_days(now, before)
    assert got[0] == pytest.approx(7.0)  # doubled in exactly a week
    assert got[1] == pytest.approx(7 * math.log(2) / math.log(1.5))
    assert got[2:].isna().all()  # no growth; nothing a week before


def test_table_rows_have_the_change_over_7_days() -> None:
    frame = pd.DataFrame({
        "country_region": ["A", "B"], "continent": ["Asia", "Europe"], "population": [1000, None],
        "confirmed": [300, 10], "deaths": [3, 0], "confirmed_per_100k": [30_000.0, None],
        "deaths_per_million": [3000.0, None], "new_cases_7d_avg": [28.6, 0.0],
        "new_cases_7d_avg_per_million": [28_600.0, None], "case_fatality_ratio": [0.01, 0.0],
        "confirmed_7_days_before": [100, None],
    })
    rows = table_rows(frame)
    assert list(rows.columns) == [c for c, _, _ in COLUMNS]
    assert rows["confirmed_7_day_change"].tolist()[0] == 200
    assert rows["confirmed_7_day_change_pct"].tolist()[0] == pytest.approx(200.0)
    assert rows["doubling_time_days"].tolist()[0] == pytest.approx(7 * math.log(2) / math.log(3))
    assert rows.iloc[1][["confirmed_7_day_change", "confirmed_7_day_change_pct", "doubling_time_days"]].isna().all()
