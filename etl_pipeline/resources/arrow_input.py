"""The tabular objects the lake and warehouse IO managers accept, as one streamed form."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

Tabular = pa.RecordBatchReader | pa.Table | pd.DataFrame


def as_reader(obj: Tabular) -> pa.RecordBatchReader:
    """``obj`` as a record batch reader: a reader as it is (still streamed), a table or DataFrame batch-wise."""
    if isinstance(obj, pa.RecordBatchReader):
        return obj
    if isinstance(obj, pd.DataFrame):
        obj = pa.Table.from_pandas(obj, preserve_index=False)
    if isinstance(obj, pa.Table):
        return pa.RecordBatchReader.from_batches(obj.schema, obj.to_batches())
    raise TypeError(f"expected a pyarrow RecordBatchReader or Table or a pandas DataFrame, got {type(obj).__name__}")
