"""Validate a raw source CSV completely and turn it into a typed DataFrame, or say exactly what is wrong.

Every problem is reported with the file, the data row number (1 = first row after the header), the column
and the offending value, and nothing is written anywhere until all four files pass. Harmless variants are
accepted: CRLF line endings, a UTF-8 BOM, spaces around header names and values, quoted fields with commas.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from etl_pipeline.transforms.source_schema import MAX_TEXT_LENGTH, Column, TableSchema

#: How many individual problems an error message lists before summarising the rest.
MAX_LISTED_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    file: str
    row: int | None  # data row number, 1 = first row after the header; None for file-level problems
    column: str | None
    value: str | None
    reason: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        value = f" (value {self.value!r})" if self.value is not None else ""
        return f"{', '.join(where)}: {self.reason}{value}"


class SourceValidationError(ValueError):
    """One or more source files are invalid; nothing was loaded."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        listed = [f"  - {p}" for p in problems[:MAX_LISTED_PROBLEMS]]
        more = len(problems) - MAX_LISTED_PROBLEMS
        if more > 0:
            listed.append(f"  ... and {more} more problem(s)")
        super().__init__(f"{len(problems)} problem(s) in the source data; nothing was loaded:\n" + "\n".join(listed))


def read_source_csv(schema: TableSchema, path: Path) -> pd.DataFrame:
    """Read and validate one file; raise :class:`SourceValidationError` listing every problem found."""
    if not path.is_file():
        raise SourceValidationError([Problem(path.name, None, None, None, f"file not found at {path}")])
    return parse_source_csv(schema, path.read_bytes(), file_name=path.name)


def parse_source_csv(schema: TableSchema, content: bytes, *, file_name: str) -> pd.DataFrame:
    problems: list[Problem] = []

    def fail(row: int | None, column: str | None, value: str | None, reason: str) -> None:
        problems.append(Problem(file_name, row, column, value, reason))

    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise SourceValidationError([Problem(file_name, None, None, None, f"not UTF-8 text: {exc}")]) from None
    # skipinitialspace: a space before an opening quote (` "Korea, South"`) must not split the quoted field
    rows: list[list[str]] = []
    try:
        rows.extend(csv.reader(io.StringIO(text, newline=""), skipinitialspace=True))
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit(); rows[0] is the header
        problem = Problem(file_name, len(rows) or None, None, None, f"unreadable CSV: {exc}")
        raise SourceValidationError([problem]) from None
    while rows and not any(cell.strip() for cell in rows[-1]):
        rows.pop()  # trailing blank lines
    if not rows:
        raise SourceValidationError([Problem(file_name, None, None, None, "file is empty (no header row)")])

    header = [h.strip() for h in rows[0]]
    _check_header(schema, header, fail)
    if problems:
        raise SourceValidationError(problems)
    data = rows[1:]
    if not data:
        raise SourceValidationError([Problem(file_name, None, None, None, "file has a header but no data rows")])

    width = len(header)
    for number, row in enumerate(data, start=1):
        if len(row) != width:
            missing = header[len(row)] if len(row) < width else None  # the first column without a value
            fail(number, missing, ",".join(row), f"has {len(row)} field(s), expected {width}")
    if problems:
        raise SourceValidationError(problems)

    raw = pd.DataFrame(data, columns=header, dtype=object)
    typed = {}
    for column in schema.columns:
        values = raw[column.header].str.strip()
        typed[column.name] = _convert(schema, column, values, fail)
    frame = pd.DataFrame(typed)[schema.column_names]
    if not problems:
        _check_keys(schema, frame, fail)
    if problems:
        raise SourceValidationError(sorted(problems, key=lambda p: (p.row or 0, p.column or "")))
    return frame


def _check_header(schema: TableSchema, header: list[str], fail) -> None:
    expected = [c.header for c in schema.columns]
    for name in expected:
        if name not in header:
            fail(None, name, None, "expected column is missing from the header")
    for name in header:
        if name not in expected:
            fail(None, name, None, f"unexpected column in the header (expected exactly: {', '.join(expected)})")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            fail(None, name, None, "column appears twice in the header")
        seen.add(name)


def _convert(schema: TableSchema, column: Column, values: pd.Series, fail) -> pd.Series:
    empty = values == ""
    if empty.any() and not column.nullable and column.name not in schema.empty_is_blank:
        for index in values.index[empty][:MAX_LISTED_PROBLEMS]:
            fail(index + 1, column.header, "", "a value is required")
    if column.type == "str":
        too_long = values.str.len() > MAX_TEXT_LENGTH
        _report(values, too_long, column, f"is longer than {MAX_TEXT_LENGTH} characters", fail)
        return values.where(~empty, None) if column.nullable else values
    if column.type == "int":
        bad = ~values.str.fullmatch(r"[+-]?\d+") & ~empty
        _report(values, bad, column, "is not an integer", fail)
        return pd.Series([int(v) if v else None for v in values.where(~bad, "")], index=values.index, dtype="Int64")
    if column.type == "float":
        converted = pd.to_numeric(values.where(~empty, None), errors="coerce").astype("float64")
        bad = converted.isna() & ~empty
        _report(values, bad, column, "is not a number", fail)
        # An infinite ratio (e.g. deaths per 100 recovered with nobody recovered) is undefined: NULL.
        return converted.replace([np.inf, -np.inf], np.nan)
    if column.type == "date":
        converted = pd.to_datetime(values, format="%Y-%m-%d", errors="coerce")
        bad = converted.isna() & ~empty
        _report(values, bad, column, "is not a valid date (YYYY-MM-DD)", fail)
        return converted.dt.date
    raise AssertionError(column.type)


def _report(values: pd.Series, bad: pd.Series, column: Column, reason: str, fail) -> None:
    for index in values.index[bad][:MAX_LISTED_PROBLEMS]:
        fail(index + 1, column.header, values[index], reason)
    if bad.sum() > MAX_LISTED_PROBLEMS:
        fail(None, column.header, None, f"{int(bad.sum()) - MAX_LISTED_PROBLEMS} more value(s) that {reason}")


def _check_keys(schema: TableSchema, frame: pd.DataFrame, fail) -> None:
    key = list(schema.primary_key)
    duplicated = frame.duplicated(key, keep=False)
    if not duplicated.any():
        return
    first_rows: dict[tuple, int] = {}
    for index, values in frame.loc[duplicated, key].iterrows():
        k = tuple(values)
        if k in first_rows:
            shown = ", ".join(f"{c}={v}" for c, v in zip(key, k))
            fail(index + 1, "+".join(schema.column(c).header for c in key), shown,
                 f"duplicate primary key, first seen on row {first_rows[k]}")
        else:
            first_rows[k] = index + 1


def read_source_files(schemas: Iterable[TableSchema], data_dir: Path) -> dict[str, pd.DataFrame]:
    """Validate every file before returning any of them; one error lists the problems of all files."""
    frames: dict[str, pd.DataFrame] = {}
    problems: list[Problem] = []
    for schema in schemas:
        try:
            frames[schema.name] = read_source_csv(schema, data_dir / schema.file_name)
        except SourceValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SourceValidationError(problems)
    return frames
