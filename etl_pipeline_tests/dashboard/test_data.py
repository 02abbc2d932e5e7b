"""The dashboard's warehouse queries, on SQLite and PostgreSQL warehouses built from the CSVs, checked against
plain pandas over the same CSVs; and the short-lived cache."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard.data import TTLCache, Warehouse
from etl_pipeline.core.errors import WarehouseError
from etl_pipeline_tests.dashboard.conftest import load_warehouse


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def warehouse(request) -> Warehouse:
    url = request.getfixturevalue(f"{request.param}_warehouse_url")
    return Warehouse(url)


def test_dates_are_every_reported_day_in_order(warehouse: Warehouse, sources):
    dates = warehouse.dates()
    expected = sorted(sources["series"]["date"].unique())
    assert dates["date"].tolist() == expected
    assert dates["day_index"].tolist() == list(range(len(expected)))
    assert (len(dates), dates["date"].iat[0], dates["date"].iat[-1]) == (
        188,
        pd.Timestamp("2020-01-22"),
        pd.Timestamp("2020-07-27"),
    )


@pytest.mark.parametrize("day_index", [0, 70, 187])
def test_locations_on_a_day_are_that_days_position_rows(warehouse: Warehouse, sources, day_index: int):
    positions = sources["positions"]
    day = sorted(positions["date"].unique())[day_index]
    expected = positions[positions["date"] == day].sort_values(["country_region", "province_state"])
    got = warehouse.locations_on(day_index)
    columns = ["country_region", "province_state", "latitude", "longitude", "confirmed", "deaths"]
    pd.testing.assert_frame_equal(got[columns], expected[columns].reset_index(drop=True), check_dtype=False)
    who = sources["series"].drop_duplicates("country_region").set_index("country_region")["who_region"]
    assert got["who_region"].tolist() == got["country_region"].map(who).tolist()
    assert got["continent"].notna().all()


def test_locations_on_the_last_day_sum_to_the_world_total(warehouse: Warehouse):
    last = warehouse.locations_on(187)
    assert (len(last), int(last["confirmed"].sum())) == (261, 16_480_485)


def test_max_location_confirmed_is_the_largest_of_any_day(warehouse: Warehouse, sources):
    assert warehouse.max_location_confirmed() == int(sources["positions"]["confirmed"].max())


@pytest.mark.parametrize("country", ["Vietnam", "Cote d'Ivoire"])
def test_country_trend_is_the_countrys_time_series(warehouse: Warehouse, sources, country: str):
    series = sources["series"]
    expected = series[series["country_region"] == country].sort_values("date").reset_index(drop=True)
    got = warehouse.country_trend(country)
    columns = ["date", "confirmed", "deaths", "recovered", "active", "new_cases", "new_deaths"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)


def test_continent_totals_reconcile_with_the_country_wise_table(warehouse: Warehouse, data_dir: Path):
    country_wise = pd.read_csv(data_dir / "covid19_country_wise.csv")
    totals = warehouse.continent_totals()
    assert int(totals["total_confirmed"].sum()) == int(country_wise["Confirmed"].sum()) == 16_480_485
    assert int(totals["total_deaths"].sum()) == int(country_wise["Deaths"].sum())
    assert int(totals["number_of_countries"].sum()) == len(country_wise) == 187
    assert totals["total_confirmed"].is_monotonic_decreasing


def test_study_panel_holds_only_the_chosen_countries_with_population(warehouse: Warehouse, sources):
    panel = warehouse.study_panel(["Vietnam", "Burma", "Vietnam"])
    series = sources["series"]
    expected = series[series["country_region"].isin(["Burma", "Vietnam"])].sort_values(["country_region", "date"])
    assert panel[["country_region", "date", "confirmed"]].values.tolist() == (
        expected[["country_region", "date", "confirmed"]].values.tolist()
    )
    population = panel.drop_duplicates("country_region").set_index("country_region")["population"]
    assert population.to_dict() == {"Burma": 54_446_389, "Vietnam": 97_425_470}


def test_a_missing_table_is_a_clear_error(tmp_path: Path):
    empty = f"sqlite:///{tmp_path / 'empty.db'}"
    with pytest.raises(
        WarehouseError, match=r"cannot read the warehouse sqlite:///.*empty\.db: no such table: dim_date"
    ):
        Warehouse(empty).dates()


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_cache_reuses_results_until_they_expire():
    clock, calls = FakeClock(), []
    cache = TTLCache(ttl_s=60, max_entries=10, clock=clock)

    def compute() -> int:
        calls.append(clock.now)
        return len(calls)

    assert [cache.get_or_compute("k", compute) for _ in range(3)] == [1, 1, 1]
    clock.now = 59.9
    assert cache.get_or_compute("k", compute) == 1
    clock.now = 60.0
    assert cache.get_or_compute("k", compute) == 2
    assert calls == [0.0, 60.0]


def test_cache_evicts_the_least_recently_used_entry():
    cache = TTLCache(ttl_s=60, max_entries=2, clock=FakeClock())
    computed: list[str] = []

    def value(key: str):
        return cache.get_or_compute(key, lambda: computed.append(key) or key)

    value("a"), value("b"), value("a"), value("c")  # "b" is now the least recently used: evicted
    value("a"), value("b")
    assert computed == ["a", "b", "c", "b"]


def test_warehouse_changes_show_after_the_cache_expires(tmp_path: Path, warehouse_tables):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    load_warehouse(url, {"dim_date": warehouse_tables["dim_date"].head(3)})
    clock = FakeClock()
    warehouse = Warehouse(url, cache=TTLCache(ttl_s=60, max_entries=10, clock=clock))
    assert len(warehouse.dates()) == 3

    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("DELETE FROM dim_date WHERE day_index = 2"))
    assert len(warehouse.dates()) == 3, "served from the cache"
    clock.now = 61
    assert len(warehouse.dates()) == 2


def test_results_are_copies_callers_may_modify(sqlite_warehouse_url: str):
    warehouse = Warehouse(sqlite_warehouse_url)
    warehouse.dates()["day_index"] = -1
    assert warehouse.dates()["day_index"].min() == 0
