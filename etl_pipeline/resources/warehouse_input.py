"""A warehouse load's input conformed to the warehouse model: columns, types and NULLs (pure Arrow, no database).

The declared columns must all be there, once, in any order; values are cast to the declared types, and a cast
that would change a value (1.5 into a bigint, a timestamp with a time of day into a date) is an error naming the
column and the input row, not a truncation.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc

from etl_pipeline.core.warehouse_model import WarehouseTable

#: Rows per batch sent to the database (larger input batches are sliced, zero-copy).
BATCH_ROWS = 50_000

_ARROW_TYPES = {"text": pa.string(), "bigint": pa.int64(), "integer": pa.int32(), "double": pa.float64(),
                "date": pa.date32(), "boolean": pa.bool_()}


def arrow_schema(table: WarehouseTable) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW_TYPES[c.type], nullable=c.nullable) for c in table.columns])


def check_columns(names: Sequence[str], table: WarehouseTable) -> None:
    """Raise ValueError naming every missing, unexpected or repeated column."""
    declared = set(table.column_names)
    problems = []
    if missing := [c for c in table.column_names if c not in names]:
        problems.append(f"missing {missing}")
    if extra := [c for c in names if c not in declared]:
        problems.append(f"unexpected {extra}")
    if repeated := sorted({c for c in names if names.count(c) > 1}):
        problems.append(f"repeated {repeated}")
    if problems:
        raise ValueError(f"the columns do not match the warehouse model of {table.name}: {'; '.join(problems)}")


def conform(
    reader: pa.RecordBatchReader, table: WarehouseTable, max_rows: int = BATCH_ROWS
) -> Iterator[pa.RecordBatch]:
    """The input as batches of at most ``max_rows`` rows with the declared column order, types and NOT NULLs.

    The columns are checked at once; while iterating, a ValueError names the column and the (1-based) input
    row of the first value that breaks the model.
    """
    check_columns(reader.schema.names, table)
    return _conformed(reader, arrow_schema(table), max_rows)


def _conformed(reader: pa.RecordBatchReader, schema: pa.Schema, max_rows: int) -> Iterator[pa.RecordBatch]:
    first_row = 1
    for batch in reader:
        for start in range(0, batch.num_rows, max_rows):
            part = batch.slice(start, max_rows)
            columns = [_conform_column(part.column(f.name), f, first_row) for f in schema]
            yield pa.RecordBatch.from_arrays(columns, schema=schema)
            first_row += part.num_rows


def _conform_column(values: pa.Array, field: pa.Field, first_row: int) -> pa.Array:
    try:
        result = _exact_cast(values, field.type)
    except pa.ArrowInvalid as exc:
        row = first_row + _first_uncastable(values, field.type)
        raise ValueError(f"column {field.name!r}, input row {row:,}: {values[row - first_row]} is not a valid "
                         f"{field.type} ({exc})") from None
    if not field.nullable and result.null_count:
        row = first_row + pc.index(result.is_null(), True).as_py()
        raise ValueError(f"column {field.name!r}, input row {row:,}: NULL in a NOT NULL column")
    return result


def _exact_cast(values: pa.Array, type_: pa.DataType) -> pa.Array:
    """Arrow's safe cast, which also refuses to drop the time of day when casting a timestamp to a date."""
    result = values.cast(type_)
    if pa.types.is_timestamp(values.type) and pa.types.is_date(type_):
        if pc.any(pc.not_equal(result.cast(values.type), values)).as_py():
            raise pa.ArrowInvalid("a timestamp with a time of day is not a date")
    return result


def _first_uncastable(values: pa.Array, type_: pa.DataType) -> int:
    """Index of the first value that does not cast (binary search: only run once a cast has failed)."""
    low, high = 0, len(values)  # the first bad value is in values[low:high]
    while high - low > 1:
        middle = (low + high) // 2
        try:
            _exact_cast(values.slice(low, middle - low), type_)
            low = middle
        except pa.ArrowInvalid:
            high = middle
    return low
