"""Validate a raw source CSV completely and turn it into typed DataFrames, or say exactly what is wrong.

Every problem is reported with the file, the data row number (1 = first row after the header), the column
and the offending value, and nothing is written anywhere until all four files pass. Every problem of every file
is reported in one pass: a value no converter foresaw is named like any other bad value instead of ending the
validation with a bare exception. Harmless variants are accepted: CRLF line endings, a UTF-8 BOM, spaces around
header names and values, quoted fields with commas. Text that is not UTF-8 (a file saved as Windows-1252) is
named field by field: its bytes are kept as surrogate escapes while reading, so the rest of the file is still
checked.

A file is read as a stream, ``CHUNK_ROWS`` rows at a time, so memory does not grow with the file: the typed
chunks stay in memory up to ``MEMORY_ROWS`` rows and beyond that go to a Parquet file in a directory the
caller provides (:func:`validate_source_files`). Key uniqueness over the whole file is checked on 64-bit
hashes of the keys; only keys whose hashes collide are compared exactly, in a second pass over the chunks.
"""

from __future__ import annotations

import contextlib
import csv
import gc
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from etl_pipeline.core.source_schema import MAX_TEXT_LENGTH, Column, TableSchema, arrow_schema, frame_of

#: How many individual problems an error message lists before summarising the rest.
MAX_LISTED_PROBLEMS = 20
#: Rows parsed and typed at a time.
CHUNK_ROWS = 100_000
#: Typed rows of one file kept in memory before they go to a spill file (when a spill directory is given).
MEMORY_ROWS = 250_000
#: The range of an ``int`` column: 64-bit signed, as the source database's BIGINT and Parquet's int64.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
#: A byte that is not UTF-8, as decoded with ``errors="surrogateescape"``.
_NOT_UTF8 = re.compile("[\udc80-\udcff]")
NOT_UTF8_REASON = "is not UTF-8 text (bytes shown as \ufffd): save the file as UTF-8"

Opener = Callable[[], BinaryIO]


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


@dataclass
class ValidatedTable:
    """A validated source file: its row count and its typed rows, chunk by chunk (in memory or spilled), as Arrow
    tables in :func:`~etl_pipeline.core.source_schema.arrow_schema`'s types."""

    schema: TableSchema
    rows: int = 0
    _memory: list[pa.Table] = field(default_factory=list)
    _spill: Path | None = None

    def batches(self) -> Iterator[pa.Table]:
        """The typed rows in file order, at most ``CHUNK_ROWS`` at a time."""
        if self._spill is None:
            yield from self._memory
            return
        for batch in pq.ParquetFile(self._spill).iter_batches(batch_size=CHUNK_ROWS):
            yield pa.Table.from_batches([batch])

    def chunks(self) -> Iterator[pd.DataFrame]:
        """:meth:`batches` as DataFrames (:func:`~etl_pipeline.core.source_schema.frame_of`)."""
        return map(frame_of, self.batches())

    def frame(self) -> pd.DataFrame:
        """Every row in one DataFrame (for files known to be small)."""
        return frame_of(pa.concat_tables([arrow_schema(self.schema).empty_table(), *self.batches()]))

    def _add(self, batch: pa.Table, spill_dir: Path | None) -> None:
        self.rows += batch.num_rows
        if self._spill is None and (spill_dir is None or self.rows <= MEMORY_ROWS):
            self._memory.append(batch)
            return
        if self._spill is None:
            self._spill = spill_dir / f"{self.schema.name}.parquet"
            self._writer = pq.ParquetWriter(self._spill, arrow_schema(self.schema))
            pending, self._memory = [*self._memory, batch], []
        else:
            pending = [batch]
        for table in pending:
            self._writer.write_table(table)

    def _close(self) -> None:
        if self._spill is not None:
            self._writer.close()


class _Problems:
    """The problems of one file; repeated problems of one column are listed up to a limit, the rest counted."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.found: list[Problem] = []
        self._listed: Counter[tuple[str, str]] = Counter()
        self._more: Counter[tuple[str, str]] = Counter()

    def add(self, row: int | None, column: str | None, value: str | None, reason: str) -> None:
        self.found.append(Problem(self.file_name, row, column, value, reason))

    def add_limited(self, values: pd.Series, column: str, reason: str, *, count_more: bool) -> None:
        """The values (indexed by data row - 1) are listed while the column has fewer than MAX_LISTED_PROBLEMS
        of ``reason``; the others are counted, and reported as one "N more" problem when ``count_more``."""
        room = max(MAX_LISTED_PROBLEMS - self._listed[column, reason], 0)
        for index, value in values.iloc[:room].items():
            self.add(index + 1, column, value, reason)
        self._listed[column, reason] += min(room, len(values))
        if count_more and len(values) > room:
            self._more[column, reason] += len(values) - room

    def error(self) -> SourceValidationError:
        summaries = [Problem(self.file_name, None, column, None, f"{n} more value(s) that {reason}")
                     for (column, reason), n in self._more.items()]
        return SourceValidationError(sorted(self.found + summaries, key=lambda p: (p.row or 0, p.column or "")))

    def __bool__(self) -> bool:
        return bool(self.found or self._more)


def read_source_csv(schema: TableSchema, path: Path) -> pd.DataFrame:
    """Read and validate one file; raise :class:`SourceValidationError` listing every problem found."""
    return _validate_file(schema, path, spill_dir=None).frame()


def parse_source_csv(schema: TableSchema, content: bytes, *, file_name: str) -> pd.DataFrame:
    return validate_stream(schema, lambda: io.BytesIO(content), file_name=file_name).frame()


def _validate_file(schema: TableSchema, path: Path, spill_dir: Path | None) -> ValidatedTable:
    if not path.is_file():
        raise SourceValidationError([Problem(path.name, None, None, None, f"file not found at {path}")])
    return validate_stream(schema, lambda: path.open("rb"), file_name=path.name, spill_dir=spill_dir)


def validate_stream(schema: TableSchema, opener: Opener, *, file_name: str,
                    spill_dir: Path | None = None) -> ValidatedTable:
    """Validate the CSV that ``opener`` opens."""
    shape = _Problems(file_name)  # the header and the number of fields per row: checked first
    problems = _Problems(file_name)  # values and keys
    table = ValidatedTable(schema)
    hashes: list[np.ndarray] = []
    keys = list(schema.primary_key)
    try:
        with _cyclic_gc_paused(), opener() as binary, io.TextIOWrapper(binary, encoding="utf-8-sig",
                                                                       errors="surrogateescape", newline="") as text:
            # skipinitialspace: a space before an opening quote (` "Korea, South"`) must not split the quoted field
            for chunk in _raw_chunks(schema, csv.reader(text, skipinitialspace=True), shape, problems):
                typed = _typed(schema, chunk, problems)
                if typed is not None:
                    hashes.append(pd.util.hash_pandas_object(typed.select(keys).to_pandas(), index=False).to_numpy())
                    table._add(typed, spill_dir)
    finally:
        table._close()
    if shape:
        raise SourceValidationError(shape.found)  # in file order
    if problems:
        raise problems.error()
    _check_keys(schema, table, np.concatenate(hashes), problems)
    if problems:
        raise problems.error()
    return table


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector paused: a chunk is ``CHUNK_ROWS`` lists of strings held at once, which
    the collector would walk again and again as they are made (a fifth of the validation time at 100x); they
    hold no reference cycles, so reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _blank(row: list[str]) -> bool:
    return not "".join(row).strip()


def _raw_chunks(schema: TableSchema, reader: Iterator[list[str]], shape: _Problems,
                problems: _Problems) -> Iterator[_RawChunk]:
    """The data rows as text, ``CHUNK_ROWS`` at a time (:class:`_RawChunk`).

    Raises at once for a missing or bad header. A row with the wrong number of fields goes to ``shape``, and
    from then on rows are only counted. A field that is not UTF-8 goes to ``problems``. Blank rows at the end
    of the file are ignored. The loop over rows only collects them: the checks run on a whole chunk at a time.
    """
    header_row, number, rows = None, 0, []  # number: data rows before ``rows``

    def checked(ready: list[list[str]]) -> Iterator[_RawChunk]:
        nonlocal number
        _check_rows(header, ready, number + 1, shape, problems)
        number += len(ready)
        if not shape:  # once a row has the wrong number of fields, only such problems are looked for
            yield _raw_chunk(ready, header, number)

    try:
        header_row = next(reader, None)
        if header_row is None or (_blank(header_row) and all(_blank(row) for row in reader)):
            raise SourceValidationError([Problem(shape.file_name, None, None, None, "file is empty (no header row)")])
        header = [h.strip() for h in header_row]
        _check_header(schema, header, shape)
        if shape:
            raise SourceValidationError(shape.found)
        append = rows.append
        for row in reader:
            append(row)
            if len(rows) >= CHUNK_ROWS:
                ready = _without_trailing_blanks(rows)  # blank rows wait: they are harmless if the file ends there
                rows = rows[len(ready):]
                append = rows.append
                if ready:
                    yield from checked(ready)
    except csv.Error as exc:  # e.g. a field over csv.field_size_limit()
        row = number + len(rows) + 1 if header_row is not None else None
        raise SourceValidationError([Problem(shape.file_name, row, None, None, f"unreadable CSV: {exc}")]) from None
    if ready := _without_trailing_blanks(rows):  # the blank rows at the end of the file are dropped
        yield from checked(ready)
    if number == 0:
        raise SourceValidationError([Problem(shape.file_name, None, None, None, "file has a header but no data rows")])


def _without_trailing_blanks(rows: list[list[str]]) -> list[list[str]]:
    end = len(rows)
    while end and _blank(rows[end - 1]):
        end -= 1
    return rows[:end]


def _check_rows(header: list[str], rows: list[list[str]], first: int, shape: _Problems, problems: _Problems) -> None:
    """Each row of ``rows`` (data rows ``first``, ``first`` + 1, ...) with the wrong number of fields goes to
    ``shape``; each field that is not UTF-8 to ``problems``, and is replaced in its row by how it is shown."""
    width = len(header)
    widths = np.fromiter(map(len, rows), dtype=np.int64, count=len(rows))
    for position in np.flatnonzero(widths != width):
        row = rows[position]
        missing = header[len(row)] if len(row) < width else None  # the first column without a value
        shape.add(first + position, missing, ",".join(row), f"has {len(row)} field(s), expected {width}")
    text = "".join(map("".join, rows))
    if text.isascii() or not _NOT_UTF8.search(text):  # almost every chunk is ASCII
        return
    for position, row in enumerate(rows):
        if _NOT_UTF8.search("".join(row)):
            rows[position] = _report_not_utf8(header, first + position, row, problems)


def _report_not_utf8(header: list[str], number: int, row: list[str], problems: _Problems) -> list[str]:
    """Each field of data row ``number`` holding bytes that are not UTF-8, shown with U+FFFD for those bytes.
    Returns the row as shown (the file is refused anyway; its other values are still checked)."""
    shown_row = []
    for name, value in zip(header, row):
        if _NOT_UTF8.search(value):
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
            problems.add_limited(pd.Series([value], index=[number - 1]), name, NOT_UTF8_REASON, count_more=True)
        shown_row.append(value)
    return shown_row + row[len(header):]


@dataclass(frozen=True)
class _RawChunk:
    """A chunk of data rows as text, column by column (header name -> Arrow strings); ``index``: each row's data
    row number - 1."""

    columns: dict[str, pa.Array]
    index: pd.RangeIndex


def _raw_chunk(rows: list[list[str]], header: list[str], last: int) -> _RawChunk:
    """``rows`` (all of ``len(header)`` fields), ``last`` being the data row number of the last one. Transposed in C
    (``zip``) and made Arrow column by column: no DataFrame of Python objects in between."""
    columns = {name: pa.array(values, pa.string()) for name, values in zip(header, zip(*rows))}
    return _RawChunk(columns, pd.RangeIndex(last - len(rows), last))


def _typed(schema: TableSchema, raw: _RawChunk, problems: _Problems) -> pa.Table | None:
    """The chunk with typed columns; None when the file has a problem so far (it is refused: the other values
    are still checked). A conversion that raises is reported as a problem of the first row whose value makes it
    raise."""
    typed = []
    for column in schema.columns:
        values = pc.utf8_trim_whitespace(raw.columns[column.header])
        try:
            typed.append(_convert(schema, column, values, raw.index, problems))
        except Exception as exc:  # noqa: BLE001 - named with row, column and value below, never a bare message
            row = _first_failing_row(schema, column, values)
            problems.add(raw.index[row] + 1, column.header, values[row].as_py(), f"cannot be read as {column.type}: "
                         f"{type(exc).__name__}: {exc}")
    return None if problems else pa.Table.from_arrays(typed, schema=arrow_schema(schema))


def _first_failing_row(schema: TableSchema, column: Column, values: pa.Array) -> int:
    """Position of the first value whose conversion raises (bisection over ``values``, which as a whole raises)."""
    low, high = 0, len(values)  # the first failing value is in values[low:high]
    while high - low > 1:
        middle = (low + high) // 2
        try:
            _convert(schema, column, values.slice(low, middle - low), pd.RangeIndex(middle - low), _Problems(""))
            low = middle
        except Exception:  # noqa: BLE001 - any exception: the value is in this half
            high = middle
    return low


def _check_header(schema: TableSchema, header: list[str], problems: _Problems) -> None:
    expected = [c.header for c in schema.columns]
    for name in expected:
        if name not in header:
            problems.add(None, name, None, "expected column is missing from the header")
    for name in header:
        if name not in expected:
            problems.add(None, name, None, f"unexpected column in the header (expected exactly: {', '.join(expected)})")
    seen: set[str] = set()
    for name in header:
        if name in seen:
            problems.add(None, name, None, "column appears twice in the header")
        seen.add(name)


def _convert(schema: TableSchema, column: Column, values: pa.Array, index: pd.Index,
             problems: _Problems) -> pa.Array:
    """One column of stripped text (``values``, data rows ``index`` + 1) as its typed Arrow array.

    Arrow compute kernels do the per-value work. Floats and dates are parsed by pandas, as before, once per
    distinct text: a column repeats few of them (dates, coordinates), and pandas' rules stay the contract.
    """
    empty = _mask(pc.equal(values, ""))
    if empty.any() and not column.nullable and column.name not in schema.empty_is_blank:
        problems.add_limited(_at(values, empty, index), column.header, "a value is required", count_more=False)
    if column.type == "str":
        too_long = _mask(pc.greater(pc.utf8_length(values), MAX_TEXT_LENGTH))
        _report(values, too_long, index, column, f"is longer than {MAX_TEXT_LENGTH} characters", problems)
        return pc.if_else(pa.array(empty), None, values) if column.nullable else values
    if column.type == "int":
        bad = ~_mask(pc.match_substring_regex(values, r"^[+-]?[0-9]+$")) & ~empty
        _report(values, bad, index, column, "is not an integer", problems)
        long = np.flatnonzero(~bad & ~empty & _mask(pc.greater(pc.utf8_length(values), 18)))  # shorter ones fit
        too_large = np.zeros(len(values), dtype=bool)
        too_large[long[[not INT64_MIN <= int(v) <= INT64_MAX for v in values.take(long).to_pylist()]]] = True
        _report(values, too_large, index, column, f"does not fit in a 64-bit integer ({INT64_MIN} .. {INT64_MAX})",
                problems)
        present = ~bad & ~empty & ~too_large
        data = np.zeros(len(values), dtype=np.int64)
        digits = pc.replace_substring_regex(values.filter(pa.array(present)), r"^\+", "")
        data[present] = pc.cast(digits, pa.int64()).to_numpy()
        return pa.array(data, pa.int64(), mask=~present)
    distinct = pc.unique(values)
    positions = pc.index_in(values, distinct).to_numpy()
    text = pd.Series(distinct.to_numpy(zero_copy_only=False), dtype=object)
    if column.type == "float":
        converted = pd.to_numeric(text.where(text != "", None), errors="coerce").astype("float64").to_numpy()[positions]
        _report(values, np.isnan(converted) & ~empty, index, column, "is not a number", problems)
        # An infinite ratio (e.g. deaths per 100 recovered with nobody recovered) is undefined: NULL.
        converted[np.isinf(converted)] = np.nan
        return pa.array(converted, pa.float64(), from_pandas=True)
    if column.type == "date":
        days = pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").to_numpy("datetime64[D]")[positions]
        _report(values, np.isnat(days) & ~empty, index, column, "is not a valid date (YYYY-MM-DD)", problems)
        return pa.array(days, pa.date32(), from_pandas=True)
    raise AssertionError(column.type)


def _mask(flags: pa.Array) -> np.ndarray:
    return flags.to_numpy(zero_copy_only=False)


def _at(values: pa.Array, mask: np.ndarray, index: pd.Index) -> pd.Series:
    """The values where ``mask`` holds, indexed by data row - 1."""
    where = np.flatnonzero(mask)
    return pd.Series(values.take(where).to_pylist(), index=index[where], dtype=object)


def _report(values: pa.Array, bad: np.ndarray, index: pd.Index, column: Column, reason: str,
            problems: _Problems) -> None:
    if bad.any():
        problems.add_limited(_at(values, bad, index), column.header, reason, count_more=True)


def _check_keys(schema: TableSchema, table: ValidatedTable, hashes: np.ndarray, problems: _Problems) -> None:
    """Every key held by more than one row, named with the row where it was first seen. Only rows whose key
    hash is not unique are compared exactly."""
    ordered = np.sort(hashes)
    repeated = np.unique(ordered[1:][ordered[1:] == ordered[:-1]])
    if not len(repeated):
        return
    key = list(schema.primary_key)
    headers = "+".join(schema.column(c).header for c in key)
    first_rows: dict[tuple, int] = {}
    offset = 0
    for chunk in table.chunks():
        for position in np.flatnonzero(np.isin(hashes[offset:offset + len(chunk)], repeated)):
            values = tuple(chunk[key].iloc[position])
            row = offset + position + 1
            if values in first_rows:
                shown = ", ".join(f"{c}={v}" for c, v in zip(key, values))
                problems.add(row, headers, shown, f"duplicate primary key, first seen on row {first_rows[values]}")
            else:
                first_rows[values] = row
        offset += len(chunk)


def validate_source_files(schemas: Iterable[TableSchema], data_dir: Path,
                          spill_dir: Path | None = None) -> dict[str, ValidatedTable]:
    """Validate every file before returning any of them; one error lists the problems of all files.
    Large files are spilled to ``spill_dir`` (kept in memory when None)."""
    tables: dict[str, ValidatedTable] = {}
    problems: list[Problem] = []
    for schema in schemas:
        try:
            tables[schema.name] = _validate_file(schema, data_dir / schema.file_name, spill_dir)
        except SourceValidationError as exc:
            problems.extend(exc.problems)
    if problems:
        raise SourceValidationError(problems)
    return tables


def read_source_files(schemas: Iterable[TableSchema], data_dir: Path) -> dict[str, pd.DataFrame]:
    """:func:`validate_source_files`, each file as one DataFrame (for files known to be small)."""
    return {name: table.frame() for name, table in validate_source_files(schemas, data_dir).items()}
