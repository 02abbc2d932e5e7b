"""Content fingerprints of source tables: the data versions that tell Dagster which source tables changed.

A fingerprint is a multiset hash: each row is hashed (pandas' ``hash_pandas_object``, 64-bit SipHash of every
value), and the row hashes are summed modulo 2**64 together with the row count, per date for a dated table. A
sum does not depend on the order in which rows arrive, so the table is read in whatever order the database
streams it, in bounded memory, and the same rows always give the same fingerprint; changing, adding or removing
any row changes it (but for a 2**-64 chance). It detects change; it is not a cryptographic digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class ContentFingerprint:
    """``rows``: rows read; ``by_date``: ``{ISO date: "<rows>-<hash sum, 16 hex digits>"}`` (empty for a table
    without a date column); ``data_version``: sha256 (hex) of all of it, the table's Dagster data version."""

    rows: int
    data_version: str
    by_date: dict[str, str] = field(default_factory=dict)


def content_fingerprint(batches: Iterable[pa.RecordBatch], date_column: str | None = None) -> ContentFingerprint:
    """The fingerprint of a table streamed as Arrow record batches (see the module docstring).

    ``date_column``: a ``date32`` column to fingerprint per date as well, or None. Raises ``KeyError`` if the
    batches lack ``date_column``.
    """
    sums: dict[str, int] = {}
    counts: dict[str, int] = {}
    for batch in batches:
        hashes = pd.util.hash_pandas_object(_canonical(batch), index=False).to_numpy(dtype=np.uint64)
        keys = batch.column(date_column).cast(pa.string()).to_numpy(zero_copy_only=False) if date_column \
            else np.full(batch.num_rows, "")
        codes, uniques = pd.factorize(keys)
        totals = np.zeros(len(uniques), dtype=np.uint64)
        np.add.at(totals, codes, hashes)  # uint64 addition wraps modulo 2**64
        for key, total, count in zip(uniques, totals, np.bincount(codes, minlength=len(uniques)), strict=True):
            sums[key] = (sums.get(key, 0) + int(total)) & _MASK
            counts[key] = counts.get(key, 0) + int(count)
    entries = {key: f"{counts[key]}-{sums[key]:016x}" for key in sorted(sums)}
    digest = hashlib.sha256("\n".join(f"{key} {value}" for key, value in entries.items()).encode()).hexdigest()
    return ContentFingerprint(rows=sum(counts.values()), data_version=digest,
                              by_date=entries if date_column else {})


def _canonical(batch: pa.RecordBatch) -> pd.DataFrame:
    """The batch with one NumPy dtype per column whether or not this batch has nulls (pandas would turn an integer
    column with a null into floats, and the same row would hash differently in another batch): each column as its
    values with nulls filled, plus its null flags. Dates as days since 1970-01-01."""
    columns = {}
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        if pa.types.is_date32(column.type):
            column = column.cast(pa.int32())
        filler = "" if pa.types.is_string(column.type) else 0
        columns[name] = pc.fill_null(column, pa.scalar(filler, column.type)).to_numpy(zero_copy_only=False)
        columns[f"{name} is null"] = column.is_null().to_numpy(zero_copy_only=False)
    return pd.DataFrame(columns)
