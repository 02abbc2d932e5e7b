"""Fixtures for the dashboard tests: a warehouse built straight from the CSVs with pandas (not by the pipeline),
the dashboard served by ``dashboard.app.serve`` in a subprocess, and headless Chromium.

The test warehouse has every table of ``etl_pipeline.core.warehouse_model`` with its declared types and primary
key. Continents come from worldometer, matched on the country name after the handful of renames below; the
derived measures (7-day averages, per-capita rates, ...) are the pandas floor's (``etl_pipeline.bench.floor``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from etl_pipeline.bench.floor import with_measures
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline_tests.conftest import (
    ABSENT_FROM_WORLDOMETER,
    REPO_ROOT,
    WORLDOMETER_NAMES,
    free_port,
    unavailable,
    wait_for_port,
)

ARTIFACTS = REPO_ROOT / "test-artifacts"

_SA_TYPES = {"text": sa.Text, "bigint": sa.BigInteger, "integer": sa.Integer, "double": sa.Float, "date": sa.Date,
             "boolean": sa.Boolean}


def _snake_case(name: str) -> str:
    """'Country/Region' -> 'country_region', 'New cases' -> 'new_cases'."""
    return name.lower().replace("/", "_").replace(" ", "_")


def read_sources(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The three CSVs the test warehouse is built from, with snake_case columns and ``date`` as datetime."""
    series = pd.read_csv(data_dir / "covid19_time_series.csv", parse_dates=["Date"]).rename(columns=_snake_case)
    positions = (
        pd.read_csv(data_dir / "covid19_cases_position.csv", parse_dates=["Date"])
        .rename(columns=_snake_case)
        .rename(columns={"lat": "latitude", "long": "longitude"})
    )
    positions["province_state"] = positions["province_state"].fillna("")
    worldometer = pd.read_csv(data_dir / "covid19_worldometer.csv")
    worldometer["Country/Region"] = worldometer["Country/Region"].str.strip()
    return {"series": series, "positions": positions, "worldometer": worldometer}


def build_tables(sources: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Every warehouse table, as DataFrames with exactly the model's columns."""
    series, positions, worldometer = sources["series"], sources["positions"], sources["worldometer"]
    names = series["country_region"].drop_duplicates().sort_values()
    world = worldometer.set_index("Country/Region")
    matched = names.map(lambda n: WORLDOMETER_NAMES.get(n, n))
    # Country coordinates: the country-level position row, else the first province's.
    coords = positions.sort_values(["country_region", "province_state"]).drop_duplicates("country_region")
    countries = pd.DataFrame(
        {
            "country_region": names.to_numpy(),
            "continent": matched.map(world["Continent"]).fillna(names.map(ABSENT_FROM_WORLDOMETER)).to_numpy(),
            "who_region": names.map(
                series.drop_duplicates("country_region").set_index("country_region")["who_region"]
            ).to_numpy(),
            "population": matched.map(world["Population"]).astype("Int64").to_numpy(),
        }
    ).merge(coords[["country_region", "latitude", "longitude"]], on="country_region", how="left")
    assert countries["continent"].notna().all(), countries[countries["continent"].isna()]

    daily = with_measures(series.merge(
        countries[["country_region", "latitude", "longitude", "continent", "population"]], on="country_region"),
        ["country_region"])
    last = daily.sort_values("date").groupby("country_region").tail(1)
    continents = (
        last.groupby("continent")
        .agg(
            total_confirmed=("confirmed", "sum"),
            total_deaths=("deaths", "sum"),
            total_recovered=("recovered", "sum"),
            total_active=("active", "sum"),
            number_of_countries=("country_region", "count"),
            population=("population", "sum"),
        )
        .reset_index()
    )
    days = pd.Series(sorted(series["date"].unique()))
    dates = pd.DataFrame(
        {
            "date": days,
            "year": days.dt.year,
            "month": days.dt.month,
            "day": days.dt.day,
            "iso_week": days.dt.isocalendar().week.astype(int),
            "day_of_week": days.dt.dayofweek + 1,
            "day_index": range(len(days)),
        }
    )
    frames = {
        "covid19_daily_stats": daily,
        "covid19_continent_stats": continents,
        "dim_country": countries,
        "dim_date": dates,
        "fact_daily_cases": daily,
        "fact_location_daily": with_measures(positions, ["country_region", "province_state"], derive_new=True),
    }
    return {name: frames[name][WAREHOUSE_TABLES[name].column_names] for name in WAREHOUSE_TABLES}


def load_warehouse(url: str, tables: dict[str, pd.DataFrame]) -> None:
    """Create the model's tables (types, primary keys) at ``url`` and insert the frames."""
    metadata = sa.MetaData()
    declared = {
        name: sa.Table(
            name,
            metadata,
            *(sa.Column(c.name, _SA_TYPES[c.type], nullable=c.nullable) for c in table.columns),
            sa.PrimaryKeyConstraint(*table.primary_key),
        )
        for name, table in WAREHOUSE_TABLES.items()
    }
    engine = sa.create_engine(url)
    metadata.create_all(engine)
    with engine.begin() as conn:
        for name, frame in tables.items():
            rows = frame.astype(object).where(frame.notna(), None)
            if "date" in rows.columns:
                rows["date"] = frame["date"].dt.date
            conn.execute(declared[name].insert(), rows.to_dict("records"))
    engine.dispose()


@pytest.fixture(scope="session")
def sources(data_dir: Path) -> dict[str, pd.DataFrame]:
    return read_sources(data_dir)


@pytest.fixture(scope="session")
def warehouse_tables(sources: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return build_tables(sources)


@pytest.fixture(scope="session")
def sqlite_warehouse_url(warehouse_tables: dict[str, pd.DataFrame], tmp_path_factory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('warehouse') / 'warehouse.db'}"
    load_warehouse(url, warehouse_tables)
    return url


@pytest.fixture(scope="session")
def postgres_warehouse_url(postgres_server_url: str, warehouse_tables: dict[str, pd.DataFrame]):
    name = f"dashboard_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"{postgres_server_url}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = f"{postgres_server_url}/{name}"
        load_warehouse(url, warehouse_tables)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def served_dashboard(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[str]:
    """Base URL of ``dashboard.app.serve`` running in a subprocess with environment ``env`` in directory ``cwd``.
    The server's output goes to ``log_path`` (a pipe nobody reads could fill and block it)."""
    port = free_port()
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", f"from dashboard.app import serve; serve(port={port})"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        if not wait_for_port(port, timeout=60):
            pytest.fail(f"the dashboard did not start:\n{log_path.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


@pytest.fixture(scope="session")
def dashboard_url(sqlite_warehouse_url: str, tmp_path_factory):
    """The dashboard over the SQLite test warehouse, with the offline map style."""
    env = {**os.environ, "WAREHOUSE_DB_URL": sqlite_warehouse_url, "DASH_MAP_STYLE": "white-bg"}
    with served_dashboard(env, REPO_ROOT, tmp_path_factory.mktemp("dashboard") / "server.log") as url:
        yield url


def _chromium_paths() -> tuple[str, str]:
    browser = shutil.which("chromium") or "/usr/bin/chromium"
    driver = shutil.which("chromedriver") or "/usr/bin/chromedriver"
    if not (Path(browser).exists() and Path(driver).exists()):
        unavailable("chromium and chromedriver are not installed (Debian: apt-get install chromium chromium-driver)")
    return browser, driver


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium through chromedriver, logging the browser console (read with ``get_log('browser')``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = _chromium_paths()
    profile = tempfile.mkdtemp(prefix="dashboard-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--enable-unsafe-swiftshader",  # software WebGL for the MapLibre canvas (no GPU here)
        "--run-all-compositor-stages-before-draw",
        "--window-size=1600,1100",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where browser tests save screenshots (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
