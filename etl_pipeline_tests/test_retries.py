"""Which errors the retry policy retries: connection-level failures of MySQL, PostgreSQL and the S3 lake only."""

from __future__ import annotations

import pymysql
import pytest
from deltalake.exceptions import CommitFailedError, DeltaError

from etl_pipeline.retries import is_transient

#: What delta-rs raised when the S3 endpoint stopped in the middle of a write (test_faults.py, abridged).
DELTA_RS_ENDPOINT_DOWN = ("Failed to parse parquet: External: Generic S3 error: Error performing PUT "
                          "http://127.0.0.1:46241/warehouse/bronze/medical/t/part-00000.snappy.parquet in 3.6s, "
                          "after 10 retries, max_retries: 10, retry_timeout: 180s  - HTTP error: error sending request")


@pytest.mark.parametrize(("error", "transient"), [
    (DeltaError(DELTA_RS_ENDPOINT_DOWN), True),
    (OSError("Generic S3 error: Error performing list request: operation timed out"), True),
    (pymysql.err.OperationalError(2013, "Lost connection to MySQL server during query"), True),
    (DeltaError("Schema error: Cannot cast schema, number of fields does not match"), False),
    (CommitFailedError("Transaction failed: version already exists: 1"), False),  # another writer won: not ours
    (ValueError("record batch 1: schema does not match the table's"), False),
])
def test_only_connection_level_failures_are_retried(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_a_cause_chain_is_followed() -> None:
    try:
        try:
            raise DeltaError(DELTA_RS_ENDPOINT_DOWN)
        except DeltaError as inner:
            raise RuntimeError("writing bronze/medical/t to the lake") from inner
    except RuntimeError as outer:
        assert is_transient(outer)
