"""``covid-etl run`` end to end in embedded mode (SQLite source, lake directory) under a temporary ETL_HOME.

Only the source and bronze layers are asserted here; whatever else the job holds must simply succeed. The
tests share one ETL_HOME and run in file order: the first run seeds, the second must not, and a run over
another snapshot must reseed.
"""

from __future__ import annotations

import contextlib
import io
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from deltalake import DeltaTable

from etl_pipeline.cli import main
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline_tests.conftest import DEPLOYMENT_VARIABLES, embedded_env
from etl_pipeline_tests.resources.test_mysql_io_manager import EXPECTED_ROWS, arrow_frame
from etl_pipeline_tests.test_seed import write_dataset
from etl_pipeline_tests.transforms.test_source_validation import csv_frame, read_rows, sorted_by_key, write_rows

SNAPSHOT_END = "2020-03-31"


@dataclass
class Run:
    status: int
    out: str
    err: str

    def assert_success(self) -> None:
        assert self.status == 0, f"covid-etl run failed:\n{self.out}\n{self.err}"

    def layer(self, name: str) -> list[str]:
        """The summary line of a layer: name, assets, rows, checks ok, warned, failed, seconds."""
        [line] = [line.split() for line in self.out.splitlines() if line.startswith(f"{name} ")]
        return line


class Home:
    """One ETL_HOME and the environment of the runs made in it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def run(self, data_dir: Path) -> Run:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["run", "--data-dir", str(data_dir)])
        return Run(status, out.getvalue(), err.getvalue())

    def source_rows(self) -> dict[str, int]:
        with contextlib.closing(sqlite3.connect(self.root / "source.db")) as db:
            return {name: db.execute(f"SELECT COUNT(*) FROM {name}").fetchone()[0] for name in SOURCE_TABLES}

    def bronze(self, table: str) -> pd.DataFrame:
        return arrow_frame(DeltaTable(str(self.root / "lake" / "bronze" / "medical" / table)).to_pyarrow_table())


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("etl_home")
    with pytest.MonkeyPatch.context() as env:  # this process runs `covid-etl run` with the embedded defaults
        for name in DEPLOYMENT_VARIABLES:
            env.delenv(name, raising=False)
        for name, value in embedded_env(root).items():  # ETL_HOME, and never a download from the internet
            env.setenv(name, value)
        yield Home(root)


@pytest.fixture(scope="module")
def first_run(home: Home, data_dir: Path) -> Run:
    return home.run(data_dir)


@pytest.fixture(scope="module")
def snapshot(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another, internally consistent snapshot: every third country, the daily files cut at SNAPSHOT_END,
    country_wise holding each kept country's counts on that day (as a snapshot published then would), and
    every other worldometer row (countries without worldometer data must still land on their continent)."""
    rows = {name: read_rows((data_dir / table.file_name).read_bytes()) for name, table in SOURCE_TABLES.items()}
    header, *countries = rows["covid19_country_wise"]
    kept = {row[0] for row in countries[::3]}

    def cut(name: str) -> list[list[str]]:
        header, *body = rows[name]
        date, country = header.index("Date"), header.index("Country/Region")
        return [header, *(r for r in body if r[date] <= SNAPSHOT_END and r[country] in kept)]

    series = cut("covid19_time_series")
    on_last_day = {r[1]: r[2:6] for r in series[1:] if r[0] == SNAPSHOT_END}  # Confirmed..Active
    country_wise = [header, *([r[0], *on_last_day[r[0]], *r[5:]] for r in countries if r[0] in kept)]
    files = {
        "covid19_time_series": write_rows(series),
        "covid19_cases_position": write_rows(cut("covid19_cases_position")),
        "covid19_country_wise": write_rows(country_wise),
        "covid19_worldometer": write_rows(rows["covid19_worldometer"][::2]),  # header and every other row
    }
    return write_dataset(tmp_path_factory.mktemp("snapshot"), files)


def assert_bronze_holds_every_row(home: Home, data_dir: Path) -> None:
    for name, table in SOURCE_TABLES.items():
        expected = sorted_by_key(name, csv_frame(name, data_dir / table.file_name))
        pd.testing.assert_frame_equal(sorted_by_key(name, home.bronze(name)), expected)


def test_the_first_run_seeds_the_source_and_extracts_every_row_to_bronze(first_run: Run, home: Home) -> None:
    first_run.assert_success()
    assert "seeded the source database: " + ", ".join(f"{t} {n:,}" for t, n in EXPECTED_ROWS.items()) in first_run.out
    assert home.source_rows() == EXPECTED_ROWS
    assert {name: len(home.bronze(name)) for name in SOURCE_TABLES} == EXPECTED_ROWS
    assert first_run.layer("bronze")[1:3] == ["4", f"{sum(EXPECTED_ROWS.values()):,}"]


def test_bronze_holds_the_values_of_the_files(first_run: Run, home: Home, data_dir: Path) -> None:
    first_run.assert_success()
    assert_bronze_holds_every_row(home, data_dir)


def test_a_second_run_over_the_same_files_does_not_reseed_nor_materialize(first_run: Run, home: Home,
                                                                          data_dir: Path) -> None:
    first_run.assert_success()
    second = home.run(data_dir)
    second.assert_success()
    assert "source database already seeded from these files; not reloaded" in second.out
    assert "seeded the source database:" not in second.out
    assert "up to date: no source table changed since the assets last read them" in second.out
    assert home.source_rows() == EXPECTED_ROWS
    assert not [line for line in second.out.splitlines() if line.startswith("bronze ")]  # no layer materialized


def test_a_run_over_another_snapshot_reseeds_and_bronze_holds_exactly_its_rows(
    first_run: Run, home: Home, snapshot: Path
) -> None:
    first_run.assert_success()
    expected_rows = {name: len(pd.read_csv(snapshot / t.file_name)) for name, t in SOURCE_TABLES.items()}
    assert all(expected_rows[name] < EXPECTED_ROWS[name] for name in SOURCE_TABLES)

    run = home.run(snapshot)

    run.assert_success()
    assert "seeded the source database: " + ", ".join(f"{t} {n:,}" for t, n in expected_rows.items()) in run.out
    assert run.layer("bronze")[1:3] == ["4", f"{sum(expected_rows.values()):,}"]  # every table changed
    assert home.source_rows() == expected_rows
    assert_bronze_holds_every_row(home, snapshot)
    assert {name: (snapshot / t.file_name).exists() for name, t in SOURCE_TABLES.items()} == dict.fromkeys(
        SOURCE_TABLES, True
    )  # the run used the snapshot as given: it did not replace it by the published files
