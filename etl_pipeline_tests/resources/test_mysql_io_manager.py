"""The MySQL IO manager against the real MariaDB on 127.0.0.1 and against SQLite: whole tables replaced all or
nothing, read back exactly as plain pandas reads the CSV files.

``?local_infile=0`` on a MySQL URL turns local infile off for that engine's connections only (a URL query
parameter overrides the driver default in ``core/engines.py``), which is how the fallback is tested without
touching the server's global settings that other tests share.
"""

from __future__ import annotations

import logging
from pathlib import Path

import dagster as dg
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_pipeline.core.engines import get_engine
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.resources.source_load import SourceLoadError
from etl_pipeline.transforms.source_validation import parse_source_csv, read_source_files
from etl_pipeline_tests.transforms.test_source_validation import (  # noqa: F401 - small_files is a fixture
    csv_frame,
    small_files,
    sorted_by_key,
)

#: Rows per file, as shared/data/README.md publishes them.
EXPECTED_ROWS = {
    "covid19_cases_position": 49_068,
    "covid19_country_wise": 187,
    "covid19_time_series": 35_156,
    "covid19_worldometer": 209,
}
FALLBACK_WARNING = "refuses LOAD DATA LOCAL INFILE"


@pytest.fixture(params=["mysql", "sqlite"])
def source_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty source database: a fresh MariaDB database, or a SQLite file."""
    if request.param == "mysql":
        return request.getfixturevalue("mysql_url")
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture(scope="session")
def shared_frames(data_dir: Path) -> dict[str, pd.DataFrame]:
    """The four shared files, validated (what ``covid-etl seed`` loads)."""
    return read_source_files(SOURCE_TABLES.values(), data_dir)


@pytest.fixture(scope="session")
def small_frames(small_files: dict[str, bytes]) -> dict[str, pd.DataFrame]:  # noqa: F811
    return {name: parse_source_csv(SOURCE_TABLES[name], content, file_name=name)
            for name, content in small_files.items()}


def arrow_frame(table: pa.Table) -> pd.DataFrame:
    """An Arrow table as pandas with the dtypes of ``csv_frame`` (nullable Int64, dates as ``datetime.date``)."""
    return table.to_pandas(types_mapper={pa.int64(): pd.Int64Dtype()}.get)


def read_back(manager: MySQLIOManager, name: str) -> pd.DataFrame:
    return arrow_frame(manager.read_table(name).read_all())


def scalar(url: str, sql: str) -> object:
    with get_engine(url).connect() as conn:
        return conn.execute(sa.text(sql)).scalar_one()


def fallback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    return [m for m in messages if FALLBACK_WARNING in m]


def test_the_expected_row_counts_are_those_of_the_files(data_dir: Path) -> None:
    assert {name: len(pd.read_csv(data_dir / t.file_name)) for name, t in SOURCE_TABLES.items()} == EXPECTED_ROWS


def test_seeded_tables_hold_every_row_and_read_back_exactly(
    source_url: str, shared_frames: dict[str, pd.DataFrame], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = MySQLIOManager(url=source_url)
    caplog.set_level(logging.WARNING)
    manager.replace_tables(shared_frames)
    assert fallback_warnings(caplog) == []  # MySQL took the LOAD DATA LOCAL INFILE path

    assert {name: manager.row_count(name) for name in SOURCE_TABLES} == EXPECTED_ROWS
    for name, table in SOURCE_TABLES.items():
        expected = csv_frame(name, data_dir / table.file_name)
        actual = read_back(manager, name)
        pd.testing.assert_frame_equal(actual, sorted_by_key(name, expected))  # read in key order, values exact

    raw = {name: pd.read_csv(data_dir / t.file_name) for name, t in SOURCE_TABLES.items()}
    # spot checks straight in SQL, independent of the read path
    confirmed = scalar(source_url, "SELECT SUM(confirmed) FROM covid19_time_series")  # a Decimal on MySQL
    assert int(confirmed) == int(raw["covid19_time_series"].Confirmed.sum())
    assert scalar(source_url, "SELECT COUNT(*) FROM covid19_cases_position WHERE province_state IS NULL") == 0
    assert scalar(source_url, "SELECT COUNT(*) FROM covid19_cases_position WHERE province_state = ''") == (
        raw["covid19_cases_position"]["Province/State"].isna().sum()
    )
    country_wise = raw["covid19_country_wise"]["Deaths / 100 Recovered"]
    assert scalar(source_url, "SELECT COUNT(*) FROM covid19_country_wise WHERE deaths_per_100_recovered IS NULL") == (
        (country_wise == float("inf")).sum()
    ) > 0
    worldometer = raw["covid19_worldometer"]
    for header, column in [("NewCases", "new_cases"), ("TotalTests", "total_tests"), ("Continent", "continent")]:
        assert scalar(source_url, f"SELECT COUNT(*) FROM covid19_worldometer WHERE {column} IS NULL") == (
            worldometer[header].isna().sum()
        ) > 0


def test_read_table_streams_batches_of_the_requested_size(source_url: str, small_frames) -> None:
    manager = MySQLIOManager(url=source_url)
    manager.replace_tables(small_frames)
    batches = list(manager.read_table("covid19_time_series", chunk_rows=7))
    assert [b.num_rows for b in batches] == [7, 7, 7, 7, 2]
    assert pa.Table.from_batches(batches).equals(manager.read_table("covid19_time_series").read_all())


def test_a_frame_violating_the_primary_key_leaves_every_table_as_it_was(source_url: str, small_frames) -> None:
    manager = MySQLIOManager(url=source_url)
    manager.replace_tables(small_frames)
    before = {name: read_back(manager, name) for name in SOURCE_TABLES}

    time_series = small_frames["covid19_time_series"]
    duplicated = pd.concat([time_series, time_series.iloc[[4]]], ignore_index=True)
    worldometer = small_frames["covid19_worldometer"].iloc[:3]  # valid on its own: must not be applied alone
    with pytest.raises(SourceLoadError, match="previous content kept|staged|warnings"):
        manager.replace_tables({"covid19_worldometer": worldometer, "covid19_time_series": duplicated})

    for name in SOURCE_TABLES:
        pd.testing.assert_frame_equal(read_back(manager, name), before[name])


def test_a_null_in_a_required_column_leaves_the_previous_rows(source_url: str, small_frames) -> None:
    manager = MySQLIOManager(url=source_url)
    manager.replace_tables(small_frames)
    before = read_back(manager, "covid19_country_wise")
    broken = small_frames["covid19_country_wise"].copy()
    broken.loc[3, "who_region"] = None
    with pytest.raises(SourceLoadError):
        manager.replace_tables({"covid19_country_wise": broken})
    pd.testing.assert_frame_equal(read_back(manager, "covid19_country_wise"), before)


def test_an_empty_frame_empties_the_table(source_url: str, small_frames) -> None:
    manager = MySQLIOManager(url=source_url)
    manager.replace_tables(small_frames)
    manager.replace_tables({"covid19_worldometer": small_frames["covid19_worldometer"].iloc[:0]})
    assert manager.row_count("covid19_worldometer") == 0
    assert manager.read_table("covid19_worldometer").read_all().num_rows == 0
    assert manager.row_count("covid19_country_wise") == len(small_frames["covid19_country_wise"])


def test_refused_local_infile_falls_back_to_batched_inserts_with_a_warning(
    mysql_url: str, shared_frames: dict[str, pd.DataFrame], data_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    manager = MySQLIOManager(url=f"{mysql_url}?local_infile=0")
    caplog.set_level(logging.WARNING)
    manager.replace_tables(shared_frames)
    assert len(fallback_warnings(caplog)) == len(SOURCE_TABLES)  # one per table
    assert {name: manager.row_count(name) for name in SOURCE_TABLES} == EXPECTED_ROWS
    for name in ("covid19_country_wise", "covid19_worldometer"):  # NULLs and inf ratios through executemany
        expected = sorted_by_key(name, csv_frame(name, data_dir / SOURCE_TABLES[name].file_name))
        pd.testing.assert_frame_equal(read_back(manager, name), expected)


def test_only_the_four_source_tables_are_ever_named(source_url: str) -> None:
    manager = MySQLIOManager(url=source_url)
    assert manager.row_count("covid19_time_series") is None  # not seeded yet
    for call in (manager.read_table, manager.row_count, lambda n: manager.replace_tables({n: pd.DataFrame()})):
        with pytest.raises(ValueError, match="is not a source table"):
            call("covid19_time_series; DROP TABLE covid19_worldometer")


def test_as_the_io_manager_of_source_assets(source_url: str, small_frames) -> None:
    """handle_output replaces the table; a downstream asset receives a RecordBatchReader over it."""
    name = "covid19_worldometer"

    @dg.asset(key=["source", "medical", name], io_manager_key="mysql_io_manager")
    def source() -> pd.DataFrame:
        return small_frames[name]

    @dg.asset(ins={"rows": dg.AssetIn(key=["source", "medical", name])})
    def downstream(rows: pa.RecordBatchReader) -> int:
        assert isinstance(rows, pa.RecordBatchReader)
        return rows.read_all().num_rows

    result = dg.materialize([source, downstream], resources={"mysql_io_manager": MySQLIOManager(url=source_url)})
    assert result.output_for_node("downstream") == len(small_frames[name]) == 30
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == source.key]
    assert event.materialization.metadata["dagster/row_count"].value == 30
