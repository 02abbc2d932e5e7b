"""Validation of the raw CSV files: typed frames equal to an independent pandas read, harmless variants
accepted byte for byte, and every refusal naming file, data row, column and value.

The helpers at the top (small files, edits, the independent reader, the bad-input matrix) are shared with
the seed, IO manager and end-to-end tests.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.transforms import source_validation
from etl_pipeline.transforms.source_validation import (
    MAX_LISTED_PROBLEMS,
    Problem,
    SourceValidationError,
    parse_source_csv,
    read_source_csv,
    read_source_files,
)
from etl_pipeline_tests.core.test_source_schema import EXPECTED_COLUMNS

#: Data rows per file in the small copies used by most tests.
SMALL_ROWS = 30

Edit = Callable[[bytes], "bytes | None"]  # None: the file is absent


# -- files and edits ---------------------------------------------------------------------------------
def head(path: Path, rows: int) -> bytes:
    """The header and the first ``rows`` data lines of a file, as bytes."""
    with path.open("rb") as f:
        return b"".join(next(f) for _ in range(rows + 1))


def read_rows(content: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(content.decode("utf-8"), newline="")))


def write_rows(rows: list[list[str]], **options) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n", **options).writerows(rows)
    return out.getvalue().encode("utf-8")


def set_cell(column: str, rows: int | tuple[int, ...], value: str) -> Edit:
    """Put ``value`` in ``column`` of the data rows ``rows`` (1 = first row after the header)."""

    def edit(content: bytes) -> bytes:
        table = read_rows(content)
        for row in (rows,) if isinstance(rows, int) else rows:
            table[row][table[0].index(column)] = value
        return write_rows(table)

    return edit


def set_row(row: int, line: str) -> Edit:
    def edit(content: bytes) -> bytes:
        table = read_rows(content)
        table[row] = line.split(",")
        return write_rows(table)

    return edit


def drop_column(column: str) -> Edit:
    def edit(content: bytes) -> bytes:
        rows = read_rows(content)
        index = rows[0].index(column)
        return write_rows([r[:index] + r[index + 1:] for r in rows])

    return edit


def add_column(column: str, value: str) -> Edit:
    def edit(content: bytes) -> bytes:
        rows = read_rows(content)
        return write_rows([rows[0] + [column]] + [r + [value] for r in rows[1:]])

    return edit


def rename_column(old: str, new: str) -> Edit:
    def edit(content: bytes) -> bytes:
        rows = read_rows(content)
        rows[0][rows[0].index(old)] = new
        return write_rows(rows)

    return edit


def in_windows_1252(content: bytes) -> bytes:
    """The file as a spreadsheet program saves it as "CSV" on Windows: Windows-1252, not UTF-8."""
    return content.decode("utf-8").encode("cp1252")


def with_bom(content: bytes) -> bytes:
    return b"\xef\xbb\xbf" + content


def with_lf(content: bytes) -> bytes:
    return content.replace(b"\r\n", b"\n")


def with_crlf(content: bytes) -> bytes:
    return with_lf(content).replace(b"\n", b"\r\n")


def with_spaces(content: bytes) -> bytes:
    """Spaces around every header name and value, outside the quotes of quoted fields."""
    def field(value: str) -> str:
        return f' "{value}" ' if "," in value else f" {value} "

    return "".join(",".join(field(v) for v in row) + "\n" for row in read_rows(content)).encode("utf-8")


def quote_all(content: bytes) -> bytes:
    return write_rows(read_rows(content), quoting=csv.QUOTE_ALL)


def with_trailing_blank_lines(content: bytes) -> bytes:
    return content + b"\n\n"


# -- the independent reader ----------------------------------------------------------------------------
def csv_frame(table: str, path: Path) -> pd.DataFrame:
    """What the source table must hold, read with plain pandas: columns renamed by the hand-written map,
    text trimmed, no province = "", inf ratios = NULL; integers as Int64, dates as ``datetime.date``."""
    schema = SOURCE_TABLES[table]
    frame = pd.read_csv(path).rename(columns=EXPECTED_COLUMNS[table])
    for column in schema.columns:
        values = frame[column.name]
        if column.type == "str":
            values = values.str.strip().astype(object).where(values.notna(), None)
            if column.name in schema.empty_is_blank:
                values = values.fillna("")
        elif column.type == "int":
            values = values.astype("Int64")
        elif column.type == "float":
            values = values.astype("float64").replace([np.inf, -np.inf], np.nan)
        else:
            values = pd.to_datetime(values, format="%Y-%m-%d").dt.date
        frame[column.name] = values
    return frame


def sorted_by_key(table: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(SOURCE_TABLES[table].primary_key)).reset_index(drop=True)


# -- the bad-input matrix --------------------------------------------------------------------------------
@dataclass(frozen=True)
class BadInput:
    """One way a file can be wrong, and exactly the problems it must be refused with."""

    id: str
    table: str
    edit: Edit
    #: (row, column, value, words of the reason) per expected problem, in reported order.
    problems: tuple[tuple[int | None, str | None, str | None, str], ...]

    @property
    def file_name(self) -> str:
        return SOURCE_TABLES[self.table].file_name

    def check(self, error: SourceValidationError) -> None:
        assert [(p.file, p.row, p.column, p.value) for p in error.problems] == [
            (self.file_name, row, column, value) for row, column, value, _ in self.problems
        ]
        for problem, (*_, reason) in zip(error.problems, self.problems):
            assert reason in problem.reason
            assert str(problem) in str(error)


#: A row of covid19_country_wise that lost its last field (WHO Region).
SHORT_ROW = "Atlantis,100,1,50,49,1,0,0,1.0,50.0,2.0,90,10,11.11"
_TS, _CP, _CW, _WM = "covid19_time_series", "covid19_cases_position", "covid19_country_wise", "covid19_worldometer"
BAD_INPUTS = [
    BadInput("missing file", _CP, lambda _: None, ((None, None, None, "file not found"),)),
    BadInput("empty file", _WM, lambda _: b"", ((None, None, None, "file is empty"),)),
    BadInput("header only", _TS, lambda c: c.split(b"\n")[0] + b"\n", ((None, None, None, "no data rows"),)),
    BadInput("missing column", _TS, drop_column("Deaths"), ((None, "Deaths", None, "missing"),)),
    BadInput(
        "renamed column",
        _CW,
        rename_column("New cases", "New Cases"),
        ((None, "New cases", None, "missing"), (None, "New Cases", None, "unexpected column")),
    ),
    BadInput("extra column", _WM, add_column("Source", "x"), ((None, "Source", None, "unexpected column"),)),
    BadInput(
        "duplicate key",
        _TS,
        set_cell("Country/Region", (3, 10), "Atlantis"),
        ((10, "Date+Country/Region", "date=2020-01-22, country_region=Atlantis",
          "duplicate primary key, first seen on row 3"),),
    ),
    BadInput("impossible date", _CP, set_cell("Date", 5, "2020-02-30"),
             ((5, "Date", "2020-02-30", "not a valid date"),)),
    BadInput("non-numeric count", _TS, set_cell("Confirmed", 12, "12a"),
             ((12, "Confirmed", "12a", "not an integer"),)),
    BadInput("too few fields", _CW, set_row(4, SHORT_ROW),
             ((4, "WHO Region", SHORT_ROW, "has 14 field(s), expected 15"),)),
    BadInput("text too long", _WM, set_cell("Continent", 6, "x" * 256),
             ((6, "Continent", "x" * 256, "longer than 255"),)),
    BadInput("missing key value", _CW, set_cell("Country/Region", 2, ""),
             ((2, "Country/Region", "", "a value is required"),)),
    BadInput("integer too large", _WM, set_cell("TotalTests", 1, "99999999999999999999"),
             ((1, "TotalTests", "99999999999999999999", "does not fit in a 64-bit integer"),)),
    BadInput("not UTF-8", _WM, lambda c: in_windows_1252(set_cell("Country/Region", 3, "Réunion")(c)),
             ((3, "Country/Region", "R\ufffdunion", "is not UTF-8 text"),)),
]


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def small_files(data_dir: Path) -> dict[str, bytes]:
    """The header and first SMALL_ROWS data rows of each shared file, by table name."""
    return {name: head(data_dir / t.file_name, SMALL_ROWS) for name, t in SOURCE_TABLES.items()}


def parse(table: str, content: bytes) -> pd.DataFrame:
    return parse_source_csv(SOURCE_TABLES[table], content, file_name=SOURCE_TABLES[table].file_name)


def refusal(table: str, content: bytes) -> SourceValidationError:
    with pytest.raises(SourceValidationError) as caught:
        parse(table, content)
    return caught.value


# -- valid files -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("table", sorted(SOURCE_TABLES))
def test_every_shared_file_parses_to_what_plain_pandas_reads(table: str, data_dir: Path) -> None:
    path = data_dir / SOURCE_TABLES[table].file_name
    pd.testing.assert_frame_equal(read_source_csv(SOURCE_TABLES[table], path), csv_frame(table, path))


@pytest.mark.parametrize("table", ["covid19_cases_position", "covid19_time_series"])
def test_a_file_of_many_chunks_spilled_to_parquet_parses_to_what_plain_pandas_reads(
    table: str, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small chunks and an early spill, so a chunk's rows keep their own values and numbers past the first."""
    monkeypatch.setattr(source_validation, "CHUNK_ROWS", 997)
    monkeypatch.setattr(source_validation, "MEMORY_ROWS", 2_500)
    schema = SOURCE_TABLES[table]
    validated = source_validation.validate_source_files([schema], data_dir, spill_dir=tmp_path)[table]
    assert (tmp_path / f"{table}.parquet").is_file()
    assert [len(chunk) for chunk in validated.chunks()][:2] == [997, 997]
    pd.testing.assert_frame_equal(validated.frame(), csv_frame(table, data_dir / schema.file_name))


def test_a_bad_value_past_the_first_chunk_is_named_by_its_own_row(
    small_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_validation, "CHUNK_ROWS", 7)
    edited = set_cell("Deaths", 23, "x")(set_cell("Lat", 16, "north")(small_files["covid19_cases_position"]))
    with pytest.raises(SourceValidationError) as caught:
        parse("covid19_cases_position", edited)
    assert [(p.row, p.column, p.value) for p in caught.value.problems] == [(16, "Lat", "north"), (23, "Deaths", "x")]


def test_types_of_the_parsed_frame(small_files: dict[str, bytes]) -> None:
    frame = parse("covid19_cases_position", small_files["covid19_cases_position"])
    assert frame.dtypes.astype(str).to_dict() == {
        "province_state": "object", "country_region": "object", "lat": "float64", "long": "float64",
        "date": "object", "confirmed": "Int64", "deaths": "Int64", "recovered": "Int64", "active": "Int64",
        "who_region": "object",
    }
    first = read_rows(small_files["covid19_cases_position"])[1]
    assert frame.iloc[0].tolist() == [
        first[0], first[1], float(first[2]), float(first[3]), pd.Timestamp(first[4]).date(),
        *map(int, first[5:9]), first[9],
    ]


def test_empty_values_are_null_except_in_key_columns(small_files: dict[str, bytes]) -> None:
    positions = parse("covid19_cases_position", small_files["covid19_cases_position"])
    assert positions.province_state.isna().sum() == 0
    assert (positions.province_state == "").sum() == sum(
        1 for row in read_rows(small_files["covid19_cases_position"])[1:] if row[0] == ""
    ) > 0
    edited = set_cell("Continent", 1, "")(set_cell("TotalTests", 1, "")(small_files["covid19_worldometer"]))
    first = parse("covid19_worldometer", edited).iloc[0]
    assert first.continent is None and first.total_tests is pd.NA


def test_an_infinite_ratio_is_null(small_files: dict[str, bytes]) -> None:
    edited = set_cell("Deaths / 100 Recovered", 1, "inf")(small_files["covid19_country_wise"])
    ratios = parse("covid19_country_wise", edited).deaths_per_100_recovered
    assert np.isnan(ratios[0]) and ratios[1:].notna().all()


@pytest.mark.parametrize(
    "variant",
    [with_crlf, with_bom, lambda c: with_bom(with_crlf(c)), with_spaces, quote_all, with_trailing_blank_lines],
    ids=["crlf", "bom", "bom+crlf", "spaces around names and values", "every field quoted", "trailing blank lines"],
)
@pytest.mark.parametrize("table", sorted(SOURCE_TABLES))
def test_harmless_variants_parse_to_the_same_frame(table: str, variant, small_files: dict[str, bytes]) -> None:
    """From LF line endings (the shared files have CRLF: both must give the same frame)."""
    content = with_lf(small_files[table])
    expected = parse(table, small_files[table])
    pd.testing.assert_frame_equal(parse(table, content), expected)
    assert variant(content) != content
    pd.testing.assert_frame_equal(parse(table, variant(content)), expected)


@pytest.mark.parametrize("variant", [lambda c: c, with_spaces], ids=["plain", "spaces around the quotes"])
def test_a_quoted_value_keeps_its_comma(variant, small_files: dict[str, bytes]) -> None:
    content = set_cell("Country/Region", 3, "Korea, South")(small_files["covid19_time_series"])
    assert b'"Korea, South"' in content
    frame = parse("covid19_time_series", variant(content))
    assert frame.country_region[2] == "Korea, South"
    assert len(frame) == SMALL_ROWS


def test_columns_in_another_order_are_accepted(small_files: dict[str, bytes]) -> None:
    rows = read_rows(small_files["covid19_time_series"])
    reordered = write_rows([row[::-1] for row in rows])
    pd.testing.assert_frame_equal(parse("covid19_time_series", reordered),
                                  parse("covid19_time_series", small_files["covid19_time_series"]))


def test_negative_and_decreasing_counts_load(small_files: dict[str, bytes]) -> None:
    content = small_files["covid19_time_series"]
    for column, row, value in [("Confirmed", 2, "-5"), ("New deaths", 3, "-3"), ("Active", 4, "+7")]:
        content = set_cell(column, row, value)(content)
    frame = parse("covid19_time_series", content)
    assert (frame.confirmed[1], frame.new_deaths[2], frame.active[3]) == (-5, -3, 7)


# -- refusals -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", BAD_INPUTS, ids=[case.id for case in BAD_INPUTS])
def test_bad_input_is_refused_naming_file_row_column_and_value(
    case: BadInput, tmp_path: Path, small_files: dict[str, bytes]
) -> None:
    path = tmp_path / case.file_name
    content = case.edit(small_files[case.table])
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceValidationError) as caught:
        read_source_csv(SOURCE_TABLES[case.table], path)
    case.check(caught.value)


def test_the_problems_of_every_file_are_reported_together(tmp_path: Path, small_files: dict[str, bytes]) -> None:
    for table, content in small_files.items():
        (tmp_path / SOURCE_TABLES[table].file_name).write_bytes(content)
    bad = set_cell("Deaths", 7, "many")(small_files["covid19_time_series"])
    (tmp_path / "covid19_time_series.csv").write_bytes(bad)
    (tmp_path / "covid19_worldometer.csv").unlink()
    with pytest.raises(SourceValidationError) as caught:
        read_source_files(SOURCE_TABLES.values(), tmp_path)
    assert [(p.file, p.row, p.column, p.value) for p in caught.value.problems] == [
        ("covid19_time_series.csv", 7, "Deaths", "many"),
        ("covid19_worldometer.csv", None, None, None),
    ]
    assert "nothing was loaded" in str(caught.value)


def test_many_bad_values_are_listed_up_to_a_limit_and_counted(small_files: dict[str, bytes]) -> None:
    content = set_cell("Recovered", tuple(range(1, SMALL_ROWS + 1)), "n/a")(small_files["covid19_time_series"])
    problems = refusal("covid19_time_series", content).problems
    listed = [p.row for p in problems if p.row is not None]
    assert listed == list(range(1, MAX_LISTED_PROBLEMS + 1))
    summary = [p for p in problems if p.row is None]
    assert [(p.column, p.reason) for p in summary] == [
        ("Recovered", f"{SMALL_ROWS - MAX_LISTED_PROBLEMS} more value(s) that is not an integer"),
    ]
    assert f"and {len(problems) - MAX_LISTED_PROBLEMS} more problem(s)" in str(refusal("covid19_time_series", content))


def test_a_value_is_checked_against_the_type_of_its_column(small_files: dict[str, bytes]) -> None:
    content = small_files["covid19_cases_position"]
    for column, row, value in [("Lat", 2, "north"), ("Date", 3, "22/01/2020"), ("Active", 4, "1.5"), ("Deaths", 6, "")]:
        content = set_cell(column, row, value)(content)
    assert [(p.row, p.column, p.value) for p in refusal("covid19_cases_position", content).problems] == [
        (2, "Lat", "north"), (3, "Date", "22/01/2020"), (4, "Active", "1.5"), (6, "Deaths", ""),
    ]


def test_a_column_named_twice_is_refused(small_files: dict[str, bytes]) -> None:
    content = add_column("Deaths", "0")(small_files["covid19_time_series"])
    assert [(p.row, p.column, p.reason) for p in refusal("covid19_time_series", content).problems] == [
        (None, "Deaths", "column appears twice in the header"),
    ]


def test_a_file_saved_as_windows_1252_is_refused_naming_every_row_and_column_that_is_not_utf8(data_dir: Path) -> None:
    content = (data_dir / "covid19_worldometer.csv").read_bytes()
    header, *rows = read_rows(content)
    expected = [(number, name, value) for number, row in enumerate(rows, 1) for name, value in zip(header, row)
                if not value.isascii()]
    assert [(row, value) for row, _, value in expected] == [(159, "Réunion"), (195, "Curaçao")]

    problems = refusal("covid19_worldometer", in_windows_1252(content)).problems

    assert [(p.row, p.column, p.value) for p in problems] == [
        (row, name, value.encode("cp1252").decode("utf-8", "replace")) for row, name, value in expected]
    assert [p.value for p in problems] == ["R\ufffdunion", "Cura\ufffdao"]
    assert all(p.reason == "is not UTF-8 text (bytes shown as \ufffd): save the file as UTF-8" for p in problems)


def test_a_conversion_that_raises_is_named_by_row_column_and_value_and_the_other_files_are_still_checked(
    tmp_path: Path, small_files: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No exception inside validation escapes as a bare message: one that no converter foresees (simulated here)
    is reported with the first row whose value raises it, and every other problem of every file still is."""
    convert = source_validation._convert

    def fragile(schema, column, values, index, problems):
        if column.name == "deaths" and "13" in values.to_pylist():
            raise OverflowError("simulated")
        return convert(schema, column, values, index, problems)

    monkeypatch.setattr(source_validation, "_convert", fragile)
    series = set_cell("Deaths", (4, 9), "13")(small_files["covid19_time_series"])
    worldometer = set_cell("Population", 2, "many")(small_files["covid19_worldometer"])
    for table, content in {**small_files, "covid19_time_series": series, "covid19_worldometer": worldometer}.items():
        (tmp_path / SOURCE_TABLES[table].file_name).write_bytes(content)

    with pytest.raises(SourceValidationError) as caught:
        read_source_files(SOURCE_TABLES.values(), tmp_path)

    assert [(p.file, p.row, p.column, p.value, p.reason) for p in caught.value.problems] == [
        ("covid19_time_series.csv", 4, "Deaths", "13", "cannot be read as int: OverflowError: simulated"),
        ("covid19_worldometer.csv", 2, "Population", "many", "is not an integer"),
    ]


@pytest.mark.parametrize(("value", "fits"), [("9223372036854775807", True), ("-9223372036854775808", True),
                                              ("+0000000000000000000000042", True), ("9223372036854775808", False),
                                              ("-9223372036854775809", False)])
def test_integers_are_refused_exactly_beyond_the_64_bit_range(small_files: dict[str, bytes], value: str,
                                                               fits: bool) -> None:
    content = set_cell("TotalTests", 1, value)(small_files["covid19_worldometer"])
    if fits:
        assert parse("covid19_worldometer", content).total_tests[0] == int(value)
    else:
        assert [(p.row, p.column, p.value) for p in refusal("covid19_worldometer", content).problems] == [
            (1, "TotalTests", value)]


def test_an_unreadable_row_is_named(small_files: dict[str, bytes]) -> None:
    huge = "x" * (csv.field_size_limit() + 1)
    content = set_cell("WHO Region", 2, huge)(small_files["covid19_time_series"])
    problems = refusal("covid19_time_series", content).problems
    assert [(p.file, p.row) for p in problems] == [("covid19_time_series.csv", 2)]
    assert "unreadable CSV" in problems[0].reason


def test_problem_text_names_file_row_column_and_value() -> None:
    assert str(Problem("f.csv", 1001, "Confirmed", "abc", "is not an integer")) == (
        "f.csv, row 1001, column 'Confirmed': is not an integer (value 'abc')"
    )
