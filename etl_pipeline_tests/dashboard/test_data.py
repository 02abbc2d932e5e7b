"""The dashboard's warehouse queries, on SQLite and PostgreSQL warehouses built from the CSVs, checked against
plain pandas over the same CSVs; why a read failed (no warehouse yet, an unreachable server); read-only access;
and the short-lived cache."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from dashboard.data import TTLCache, Warehouse, WarehouseNotBuilt, WarehouseUnreachable
from etl_pipeline.core.engines import get_read_only_engine
from etl_pipeline_tests.conftest import WORLDOMETER_NAMES, free_port
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


def test_measure_max_is_the_largest_value_of_any_day(warehouse: Warehouse, sources):
    assert warehouse.measure_max("confirmed") == int(sources["positions"]["confirmed"].max())
    series = sources["series"]
    assert warehouse.measure_max("case_fatality_ratio") == pytest.approx(
        (series["deaths"] / series["confirmed"]).where(series["confirmed"] >= 100).max())  # a ratio of 100+ cases


def _populations(sources) -> pd.Series:
    world = sources["worldometer"].set_index("Country/Region")["Population"]
    names = pd.Series(sorted(sources["series"]["country_region"].unique()))
    return pd.Series(names.map(lambda n: WORLDOMETER_NAMES.get(n, n)).map(world).to_numpy(), index=names)


def test_countries_on_a_day_carry_rates_by_the_worldometer_population(warehouse: Warehouse, sources):
    series = sources["series"]
    day = series[series["date"] == "2020-05-01"].set_index("country_region")
    got = warehouse.countries_on(100).set_index("country_region")  # 2020-01-22 + 100 days
    assert len(got) == 187 and (got["confirmed"] == day["confirmed"].reindex(got.index)).all()
    population = _populations(sources).reindex(got.index)
    expected = day["confirmed"].reindex(got.index) * 100_000 / population
    pd.testing.assert_series_equal(got["confirmed_per_100k"], expected, check_names=False, rtol=1e-9)
    assert got.at["Italy", "deaths_per_million"] == pytest.approx(28_236 * 1e6 / 60_452_568)


def test_country_trends_hold_only_the_chosen_countries(warehouse: Warehouse, sources):
    series = sources["series"]
    got = warehouse.country_trends(["Vietnam", "Cote d'Ivoire", "Vietnam"])
    assert got["country_region"].unique().tolist() == ["Cote d'Ivoire", "Vietnam"]
    for country, rows in got.groupby("country_region"):
        expected = series[series["country_region"] == country].sort_values("date")
        assert rows["confirmed"].tolist() == expected["confirmed"].tolist()
        assert rows["new_cases_7d_avg"].tolist() == pytest.approx(
            expected["new_cases"].rolling(7).mean().tolist(), nan_ok=True)
    vietnam = got[got["country_region"] == "Vietnam"]
    first_100 = vietnam.loc[vietnam["confirmed"] >= 100, "date"].min()
    assert vietnam.loc[vietnam["date"] == first_100, "days_since_100_cases"].tolist() == [0]


def test_country_table_has_the_count_a_week_before(warehouse: Warehouse, sources):
    series = sources["series"].set_index(["country_region", "date"])["confirmed"]
    got = warehouse.country_table(187).set_index("country_region")
    assert len(got) == 187
    assert got.at["US", "confirmed_7_days_before"] == series[("US", pd.Timestamp("2020-07-20"))]
    assert warehouse.country_table(3)["confirmed_7_days_before"].isna().all()


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


def test_a_missing_sqlite_file_is_reported_and_not_created(tmp_path: Path):
    """A reader never creates the database it reads: no file, no directory (``mode=ro``)."""
    missing = tmp_path / "elsewhere" / ".etl" / "warehouse.db"
    with pytest.raises(WarehouseNotBuilt) as failure:
        Warehouse(f"sqlite:///{missing}").dates()
    assert str(failure.value) == (
        f"No warehouse at {missing}: build it with `covid-etl run` (or set ETL_HOME or WAREHOUSE_DB_URL)."
    )
    assert not (tmp_path / "elsewhere").exists()


@pytest.fixture(params=["sqlite", "postgres"])
def warehouse_without_tables(request, tmp_path: Path) -> str:
    """A database that exists but holds none of the warehouse's tables."""
    if request.param == "postgres":
        return f"{request.getfixturevalue('postgres_server_url')}/postgres"
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("CREATE TABLE something_else (x INTEGER)"))
    return url


def test_a_database_without_the_tables_is_not_built_yet(warehouse_without_tables: str):
    with pytest.raises(WarehouseNotBuilt, match=r"The warehouse .* is not built yet \(.*dim_date.*\): build it with"):
        Warehouse(warehouse_without_tables).dates()


def test_an_unreachable_server_is_named_with_the_error_and_no_password():
    port = free_port()  # nothing listens there: the connection is refused
    url = f"postgresql+psycopg2://etl_admin:s3cret-pw@127.0.0.1:{port}/warehouse"
    with pytest.raises(WarehouseUnreachable) as failure:
        Warehouse(url).dates()
    message = str(failure.value)
    assert message.startswith(
        f"The warehouse server postgresql+psycopg2://etl_admin:***@127.0.0.1:{port}/warehouse is not reachable: "
    )
    assert "Connection refused" in message and "WAREHOUSE_DB_URL names it" in message
    assert "s3cret" not in message and "covid-etl run" not in message and "\n" not in message


def test_the_dashboard_cannot_write_to_a_sqlite_warehouse(tmp_path: Path, warehouse_tables):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    load_warehouse(url, {"dim_date": warehouse_tables["dim_date"].head(3)})
    with get_read_only_engine(url).connect() as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
        conn.execute(sa.text("DELETE FROM dim_date"))
    assert len(Warehouse(url).dates()) == 3


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


def test_a_sqlite_path_with_uri_characters_opens_read_only(tmp_path: Path):
    """The read-only SQLite URI quotes the path: a space, '#' or '%' in a directory name stays part of it."""
    path = tmp_path / "my data #1 100%" / "warehouse.db"
    path.parent.mkdir()
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE t (x INTEGER)")
    with get_read_only_engine(f"sqlite:///{path}").connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM t")).scalar_one() == 0
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["my data #1 100%", "warehouse.db"]
