"""``covid-etl seed``: every file validated completely before the database is touched; a refusal names file,
data row, column and value, exits non-zero and keeps the previous content; harmless variants load.

The bad-input matrix runs the real command (``etl_pipeline.cli.main``) against SQLite on small copies of the
shared files; the row-1001 case runs it against the real MariaDB on the full files.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from etl_pipeline.cli import main
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.seed import data_fingerprint, needs_seed, seed_source
from etl_pipeline.transforms.source_validation import SourceValidationError
from etl_pipeline_tests.conftest import free_port
from etl_pipeline_tests.resources.test_mysql_io_manager import EXPECTED_ROWS, read_back, scalar
from etl_pipeline_tests.transforms.test_source_validation import (  # noqa: F401 - small_files is a fixture
    BAD_INPUTS,
    SMALL_ROWS,
    BadInput,
    csv_frame,
    set_cell,
    small_files,
    sorted_by_key,
    with_bom,
    with_crlf,
    with_spaces,
)


def write_dataset(directory: Path, files: dict[str, bytes | None]) -> Path:
    """The four files of a dataset (None: that file is left out), by table name."""
    directory.mkdir(parents=True, exist_ok=True)
    for table, content in files.items():
        if content is not None:
            (directory / SOURCE_TABLES[table].file_name).write_bytes(content)
    return directory


def seed(data_dir: Path, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """Run ``covid-etl seed --data-dir DIR``; returns (exit status, stdout, stderr)."""
    status = main(["seed", "--data-dir", str(data_dir)])
    out, err = capsys.readouterr()
    return status, out, err


def tables(url: str) -> dict[str, pd.DataFrame]:
    """The content of the source tables, read back through the MySQL IO manager."""
    manager = MySQLIOManager(url=url)
    return {name: read_back(manager, name) for name in SOURCE_TABLES}


def assert_tables_hold(url: str, data_dir: Path) -> None:
    """The source tables hold exactly what plain pandas reads from the files of ``data_dir``."""
    loaded = tables(url)
    for name, table in SOURCE_TABLES.items():
        pd.testing.assert_frame_equal(loaded[name], sorted_by_key(name, csv_frame(name, data_dir / table.file_name)))


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    monkeypatch.setenv("SOURCE_DB_URL", url)
    return url


@pytest.fixture
def small_dir(tmp_path: Path, small_files: dict[str, bytes]) -> Path:  # noqa: F811
    return write_dataset(tmp_path / "small", small_files)


def test_seed_loads_every_file_and_reports_the_rows(
    sqlite_url: str, small_dir: Path, capsys: pytest.CaptureFixture
) -> None:
    status, out, err = seed(small_dir, capsys)
    assert (status, err) == (0, "")
    assert f"from {small_dir}" in out
    for table in SOURCE_TABLES:
        assert f"{table:<26}{SMALL_ROWS:>10,} rows" in out
    assert_tables_hold(sqlite_url, small_dir)


@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_is_refused_by_name_and_the_previous_content_stays(
    case: BadInput, sqlite_url: str, small_dir: Path, small_files: dict[str, bytes],  # noqa: F811
    tmp_path: Path, capsys: pytest.CaptureFixture,
) -> None:
    assert seed(small_dir, capsys)[0] == 0
    before = tables(sqlite_url)
    bad_dir = write_dataset(tmp_path / "bad", {**small_files, case.table: case.edit(small_files[case.table])})

    status, out, err = seed(bad_dir, capsys)

    assert status != 0 and out == ""
    assert err.startswith("covid-etl seed: error:")
    for row, column, value, _ in case.problems:
        assert case.file_name in err
        if row is not None:
            assert f"row {row}," in err
        if column is not None:
            assert f"column {column!r}" in err
        if value is not None:
            assert f"(value {value!r})" in err
    after = tables(sqlite_url)
    for name in SOURCE_TABLES:
        pd.testing.assert_frame_equal(after[name], before[name])
    assert not needs_seed(sqlite_url, small_dir)  # still recorded as seeded from the good files


def test_harmless_variants_load_the_same_rows(
    sqlite_url: str, small_files: dict[str, bytes], tmp_path: Path, capsys: pytest.CaptureFixture  # noqa: F811
) -> None:
    """CRLF, a UTF-8 BOM, spaces around names and values, and a quoted value holding a comma, all at once."""
    korea = set_cell("Country/Region", 3, "Korea, South")
    plain = {**small_files, "covid19_time_series": korea(small_files["covid19_time_series"])}
    plain_dir = write_dataset(tmp_path / "plain", plain)
    variants = {table: with_bom(with_crlf(with_spaces(content))) for table, content in plain.items()}

    status, _, err = seed(write_dataset(tmp_path / "variant", variants), capsys)

    assert (status, err) == (0, "")
    assert_tables_hold(sqlite_url, plain_dir)
    assert "Korea, South" in set(tables(sqlite_url)["covid19_time_series"].country_region)


def test_a_non_numeric_count_on_row_1001_is_refused_and_mariadb_keeps_its_rows(
    mysql_url: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("SOURCE_DB_URL", mysql_url)
    assert seed(data_dir, capsys)[0] == 0
    confirmed = scalar(mysql_url, "SELECT SUM(confirmed) FROM covid19_time_series")
    files = {name: (data_dir / t.file_name).read_bytes() for name, t in SOURCE_TABLES.items()}
    files["covid19_time_series"] = set_cell("Confirmed", 1001, "1O2")(files["covid19_time_series"])
    bad_dir = write_dataset(tmp_path / "bad", files)

    status, _, err = seed(bad_dir, capsys)

    assert status == 1
    assert "covid19_time_series.csv, row 1001, column 'Confirmed': is not an integer (value '1O2')" in err
    assert err.count("\n  - ") == 1  # the only problem
    manager = MySQLIOManager(url=mysql_url)
    assert {name: manager.row_count(name) for name in SOURCE_TABLES} == EXPECTED_ROWS
    assert scalar(mysql_url, "SELECT SUM(confirmed) FROM covid19_time_series") == confirmed
    assert not needs_seed(mysql_url, data_dir)


def test_an_unreachable_database_is_named_without_its_password(
    small_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    port = free_port()  # nothing listens there
    monkeypatch.setenv("SOURCE_DB_URL", f"mysql+pymysql://etl:hunter2-secret@127.0.0.1:{port}/covid19")
    status, out, err = seed(small_dir, capsys)
    assert status == 1
    assert f"mysql+pymysql://etl:***@127.0.0.1:{port}/covid19" in err
    assert "previous content kept" in err
    assert "hunter2" not in err + out


def test_needs_seed_until_the_tables_hold_exactly_these_files(
    sqlite_url: str, small_dir: Path, small_files: dict[str, bytes], tmp_path: Path  # noqa: F811
) -> None:
    assert needs_seed(sqlite_url, small_dir)  # no tables yet
    assert seed_source(sqlite_url, small_dir) == {name: SMALL_ROWS for name in SOURCE_TABLES}
    assert not needs_seed(sqlite_url, small_dir)

    one_more_line = small_files["covid19_worldometer"] + b"\n"
    changed = write_dataset(tmp_path / "changed", {**small_files, "covid19_worldometer": one_more_line})
    assert data_fingerprint(changed) != data_fingerprint(small_dir)
    assert needs_seed(sqlite_url, changed)

    empty = tables(sqlite_url)["covid19_country_wise"].iloc[:0]
    MySQLIOManager(url=sqlite_url).replace_tables({"covid19_country_wise": empty})
    assert needs_seed(sqlite_url, small_dir)  # an emptied table


def test_seed_source_validates_before_touching_the_database(
    tmp_path: Path, small_files: dict[str, bytes]  # noqa: F811
) -> None:
    url = f"sqlite:///{tmp_path / 'untouched' / 'source.db'}"
    bad_dir = write_dataset(tmp_path / "bad", {**small_files, "covid19_country_wise": None})
    with pytest.raises(SourceValidationError):
        seed_source(url, bad_dir)
    assert not (tmp_path / "untouched").exists()


def test_a_value_no_64_bit_integer_holds_and_a_bad_date_in_another_file_are_reported_together(
    sqlite_url: str, small_dir: Path, small_files: dict[str, bytes], tmp_path: Path,  # noqa: F811
    capsys: pytest.CaptureFixture,
) -> None:
    assert seed(small_dir, capsys)[0] == 0
    before = tables(sqlite_url)
    bad_dir = write_dataset(tmp_path / "bad", {
        **small_files,
        "covid19_worldometer": set_cell("TotalTests", 1, "99999999999999999999")(small_files["covid19_worldometer"]),
        "covid19_time_series": set_cell("Date", 17, "2020-02-30")(small_files["covid19_time_series"]),
    })

    status, out, err = seed(bad_dir, capsys)

    assert (status, out) == (1, "")
    assert err == (
        "covid-etl seed: error: 2 problem(s) in the source data; nothing was loaded:\n"
        "  - covid19_time_series.csv, row 17, column 'Date': is not a valid date (YYYY-MM-DD) (value '2020-02-30')\n"
        "  - covid19_worldometer.csv, row 1, column 'TotalTests': does not fit in a 64-bit integer "
        "(-9223372036854775808 .. 9223372036854775807) (value '99999999999999999999')\n")
    after = tables(sqlite_url)
    for name in SOURCE_TABLES:
        pd.testing.assert_frame_equal(after[name], before[name])
