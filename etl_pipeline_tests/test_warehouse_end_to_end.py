"""The warehouse after a complete embedded ``covid-etl run`` over the shared data, checked against figures
computed here independently with plain pandas over the four CSV files.

A second run over the same files must change nothing, and the same run against MySQL and PostgreSQL must
fill Postgres with exactly the embedded warehouse's content.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import shlex
import sqlite3
import subprocess
from pathlib import Path

import dagster as dg
import pandas as pd
from deltalake import DeltaTable
import pytest
import sqlalchemy as sa

from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.definitions import ALL_ASSETS_JOB
from etl_pipeline_tests.conftest import (
    ABSENT_FROM_WORLDOMETER,
    WORLDOMETER_NAMES,
    covid_etl,
    embedded_env,
)

pytestmark = pytest.mark.engines  # the same warehouse from Apache Spark and from Sail


@pytest.fixture(scope="module")
def csv(data_dir: Path) -> dict[str, pd.DataFrame]:
    return {name: pd.read_csv(data_dir / f"covid19_{name}.csv")
            for name in ("time_series", "cases_position", "country_wise", "worldometer")}


def warehouse(home: Path, table: str) -> pd.DataFrame:
    with contextlib.closing(sqlite3.connect(home / "warehouse.db")) as db:
        return pd.read_sql_query(f"SELECT * FROM {table}", db)


def content_digest(url: str) -> dict[str, str]:
    """sha256 of each warehouse table's rows in primary-key order: equal digests = byte-identical content."""
    engine = sa.create_engine(url)
    digests = {}
    with engine.connect() as conn:
        for table in WAREHOUSE_TABLES.values():
            order = ", ".join(f'"{c}"' for c in table.primary_key)
            rows = conn.execute(sa.text(f"SELECT * FROM {table.name} ORDER BY {order}")).fetchall()
            # SQLite has no boolean: it stores TRUE as 1, which PostgreSQL returns as True (equal, not the same repr)
            plain = [tuple(v.isoformat() if isinstance(v, dt.date) else int(v) if isinstance(v, bool) else v
                           for v in row) for row in rows]
            digests[table.name] = hashlib.sha256(repr(plain).encode()).hexdigest()
    engine.dispose()
    return digests


def test_summary_covers_every_layer(embedded_run):
    _, result = embedded_run
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    # layer, assets, rows, checks ok, warned, failed, seconds
    assert lines["bronze"][1:3] == ["4", "84,620"]
    assert lines["warehouse"][1] == "6" and lines["warehouse"][5] == "0"
    assert lines["gold"][4:6] == ["2", "0"]  # two data-quality warnings (decreases, negatives); nothing failed
    assert "SUCCESS" in result.stdout


def test_summary_says_where_the_output_landed_and_what_to_do_next(embedded_run):
    home, result = embedded_run
    out = result.stdout.splitlines()
    tail = out[out.index("output:"):]
    [run_id] = [run.run_id for run in dg.DagsterInstance.from_config(str(home / "dagster")).get_runs(
        limit=1, filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))]
    assert tail[:4] == [
        "output:",
        f"  lake:        {home / 'lake'}  (Delta tables; versions: ETL_HOME={home} covid-etl lake history "
        "gold.covid19_daily_stats)",
        f"  warehouse:   sqlite:///{home / 'warehouse.db'}",
        f"  run history: {home / 'dagster'}  (run {run_id})",
    ]
    assert tail[4:7] == [
        "next:",
        f"  ETL_HOME={home} covid-etl dashboard   (the spread map and the study at http://127.0.0.1:8050)",
        f"  DAGSTER_HOME={home / 'dagster'} dg dev -h 127.0.0.1 -p 3000   (this run, its checks and step logs at "
        "http://127.0.0.1:3000)",
    ]
    query = tail[7].strip()
    assert query == f'sqlite3 {home / "warehouse.db"} "SELECT COUNT(*) FROM covid19_daily_stats"'
    assert subprocess.run(shlex.split(query), capture_output=True, text=True, check=True).stdout == "35156\n"


def test_daily_stats_is_the_time_series_with_country_attributes(embedded_run, csv):
    home, _ = embedded_run
    daily = warehouse(home, "covid19_daily_stats")
    series = csv["time_series"]
    assert len(daily) == len(series) == 35_156
    merged = series.merge(daily, left_on=["Date", "Country/Region"], right_on=["date", "country_region"],
                          how="outer", indicator=True, validate="one_to_one")
    assert (merged["_merge"] == "both").all()
    for header in ["Confirmed", "Deaths", "Recovered", "Active", "New cases", "New deaths", "New recovered",
                   "WHO Region"]:
        assert (merged[header] == merged[header.lower().replace(" ", "_")]).all(), header

    # coordinates: the country-level position row, else the province with most confirmed on the last date
    positions = csv["cases_position"].fillna({"Province/State": ""})
    last = positions[positions["Date"] == positions["Date"].max()]
    chosen = (last.assign(country_level=last["Province/State"] == "")
              .sort_values(["country_level", "Confirmed", "Province/State"], ascending=[False, False, True])
              .drop_duplicates("Country/Region").set_index("Country/Region"))
    coordinates = daily.drop_duplicates("country_region").set_index("country_region")
    assert coordinates["latitude"].to_dict() == chosen.loc[coordinates.index, "Lat"].to_dict()
    assert coordinates["longitude"].to_dict() == chosen.loc[coordinates.index, "Long"].to_dict()
    assert coordinates.loc["China", ["latitude", "longitude"]].tolist() == [30.9756, 112.2707]  # Hubei


def test_continent_totals_reconcile_with_the_source(embedded_run, csv):
    home, _ = embedded_run
    continents = warehouse(home, "covid19_continent_stats").set_index("continent")

    worldometer = csv["worldometer"].assign(name=lambda w: w["Country/Region"].str.strip())
    by_name = worldometer.set_index("name")
    country_wise = csv["country_wise"].set_index("Country/Region")
    names = [WORLDOMETER_NAMES.get(c, c) for c in country_wise.index]
    continent = [ABSENT_FROM_WORLDOMETER.get(c) or by_name.loc[n, "Continent"]
                 for c, n in zip(country_wise.index, names)]
    expected = (country_wise.assign(
        continent=pd.Series(continent, index=country_wise.index).replace({"Australia/Oceania": "Oceania"}),
        population=[by_name["Population"].get(n) for n in names])
        .groupby("continent")
        .agg(total_confirmed=("Confirmed", "sum"), total_deaths=("Deaths", "sum"),
             total_recovered=("Recovered", "sum"), total_active=("Active", "sum"),
             number_of_countries=("Confirmed", "size"), population=("population", "sum")))

    assert sorted(continents.index) == ["Africa", "Asia", "Europe", "North America", "Oceania", "South America"]
    assert continents.astype("int64").to_dict("index") == expected.astype("int64").to_dict("index")
    assert continents["total_confirmed"].sum() == 16_480_485
    assert continents["total_deaths"].sum() == 654_036
    assert continents.loc["North America", "total_confirmed"] >= 4_290_259  # the US is in, not dropped


def test_star_schema_matches_the_source(embedded_run, csv):
    home, _ = embedded_run
    positions = csv["cases_position"]
    location = warehouse(home, "fact_location_daily")
    assert len(location) == len(positions) == 49_068
    assert location["confirmed"].sum() == positions["Confirmed"].sum()
    assert (location["province_state"] == "").sum() == positions["Province/State"].isna().sum()

    fact = warehouse(home, "fact_daily_cases")
    assert len(fact) == 35_156 and fact["new_cases"].sum() == csv["time_series"]["New cases"].sum()

    dates = warehouse(home, "dim_date")
    assert len(dates) == 188 and dates["day_index"].tolist() == list(range(188))
    assert dates.set_index("date").loc["2020-07-27", ["iso_week", "day_of_week"]].tolist() == [31, 1]

    countries = warehouse(home, "dim_country").set_index("country_region")
    assert len(countries) == 187 and "Unknown" not in set(countries["continent"])
    assert countries.loc["US", "population"] == 331_198_130  # from worldometer's "USA"
    assert pd.isna(countries.loc["Kosovo", "population"]) and countries.loc["Kosovo", "continent"] == "Europe"


def test_warehouse_equals_gold_in_the_lake(embedded_run):
    home, _ = embedded_run
    for table in WAREHOUSE_TABLES.values():
        key = list(table.primary_key)
        gold = DeltaTable(str(home / "lake" / "gold" / "medical" / table.name)).to_pandas()
        if "date" in gold:
            gold["date"] = gold["date"].astype(str)  # SQLite stores dates as ISO text
        gold = gold.sort_values(key).reset_index(drop=True)
        loaded = warehouse(home, table.name).sort_values(key).reset_index(drop=True)[list(gold.columns)]
        pd.testing.assert_frame_equal(loaded, gold, check_dtype=False, obj=table.name)


def test_second_run_changes_nothing(embedded_run, data_dir):
    home, _ = embedded_run
    before = content_digest(f"sqlite:///{home / 'warehouse.db'}")
    result = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    assert result.returncode == 0, result.stderr
    assert "not reloaded" in result.stdout
    assert "up to date: no source table changed" in result.stdout  # observed, nothing materialized
    assert content_digest(f"sqlite:///{home / 'warehouse.db'}") == before


def test_mysql_source_and_postgres_warehouse_hold_the_embedded_content(
    embedded_run, data_dir, tmp_path, mysql_url, postgres_url
):
    home, _ = embedded_run
    env = embedded_env(tmp_path, SOURCE_DB_URL=mysql_url, WAREHOUSE_DB_URL=postgres_url)
    result = covid_etl("run", "--data-dir", str(data_dir), env=env)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert content_digest(postgres_url) == content_digest(f"sqlite:///{home / 'warehouse.db'}")
