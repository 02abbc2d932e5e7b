"""MinIO IO manager: Arrow/pandas tables <-> Delta tables in the lake, with delta-rs (no JVM).

Storage contract:
- An asset ``[layer, medical, table]`` is the Delta table ``<LAKE_URL>/<layer>/medical/<table>`` of the
  :class:`~etl_pipeline.resources.lake.LakeResource`: ``s3://bucket[/prefix]`` (MinIO or any S3 API; the bucket
  is created, private, if missing) or a local directory.
- A write replaces the table's content (and schema) in ONE Delta commit: readers see the previous version or
  the new one, never a mix, and an interrupted write leaves only unreferenced data files (VACUUM deletes
  them). On S3 the commit is a conditional put (:meth:`~etl_pipeline.resources.lake.LakeResource.storage_options`):
  of two concurrent writers one commits, the other fails with ``CommitFailedError`` and is not retried.
  The commit carries the Dagster run id; the materialization records the version (``delta/version``).
  After the commit, files that no version younger than ``retention_hours`` needs are vacuumed.
- Accepts a ``pyarrow.RecordBatchReader`` (streamed, bounded memory), a ``pyarrow.Table`` or a pandas
  DataFrame. ``load_input`` streams a ``pyarrow.RecordBatchReader`` (``.read_pandas()`` for a DataFrame) of
  the version the upstream materialization recorded (:func:`~etl_pipeline.resources.delta_lake.recorded_version`).
"""

from __future__ import annotations

import dagster as dg
import pandas as pd
import pyarrow as pa
from deltalake import CommitProperties, write_deltalake
from deltalake.exceptions import DeltaError

from etl_pipeline.resources.arrow_input import as_reader
from etl_pipeline.resources.delta_lake import RUN_ID_KEY, VERSION_KEY, open_table, recorded_version, vacuum
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.retries import retry_only_transient

PREVIEW_ROWS = 5
READ_BATCH_ROWS = 100_000
#: Batches (and files) the scanner decodes ahead of the consumer. Arrow's defaults (16 batches, 4 files) held
#: 690 MB of the 4.9 M-row location table ahead of the warehouse load at 100x; these hold 370 MB, and a reader
#: that loads a database waits on the database, not on the decoding.
READ_BATCH_READAHEAD, READ_FRAGMENT_READAHEAD = 2, 1


class LakeError(RuntimeError):
    """A lake read or write failed; the message names the endpoint, bucket and table."""


class MinIOIOManager(dg.ConfigurableIOManager):
    """Pandas/Arrow <-> Delta tables in the lake (S3 API or local directory), one commit per write."""

    lake: LakeResource

    def location(self, key_path: list[str]) -> str:
        """The table's URI: ``s3://bucket/prefix/...`` on S3, an absolute path locally."""
        return self.lake.table_uri(key_path)

    # -- writing ------------------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: pa.RecordBatchReader | pa.Table | pd.DataFrame) -> None:
        uri = self.location(list(context.asset_key.path))
        with retry_only_transient(f"writing {context.asset_key.to_user_string()} to the lake"):
            version, rows, schema, preview = self.write(uri, obj, run_id=context.run_id)
        context.add_output_metadata({**table_metadata(rows, schema, preview, uri), VERSION_KEY: version})

    def write(self, uri: str, obj: pa.RecordBatchReader | pa.Table | pd.DataFrame,
              run_id: str | None = None) -> tuple[int, int, pa.Schema, pa.Table]:
        """Replace the table at ``uri`` by ``obj`` in one commit; returns (version, rows, schema, first rows).

        An error raised by ``obj`` while it streams (e.g. a lost source connection) is raised as itself, so that
        its retry policy applies; a failing lake raises :class:`LakeError` naming where.
        """
        stream = CheckedStream(as_reader(obj))
        options = self.lake.storage_options()
        try:
            self.lake.ensure_bucket()
            write_deltalake(uri, stream.reader, mode="overwrite", schema_mode="overwrite", storage_options=options,
                            commit_properties=CommitProperties(custom_metadata={RUN_ID_KEY: run_id} if run_id else None))
            # The latest version is this write's: one run writes a table at a time (the run lock, the writers'
            # pool). No history() here: a log listing that a flaky S3 connection can make fail after the commit.
            table = open_table(uri, options)
            version = table.version()
            preview = table.to_pyarrow_dataset().head(PREVIEW_ROWS)
            vacuum(table, self.lake.retention_hours)
        except (OSError, DeltaError, pa.ArrowException) as exc:
            if stream.error is not None:
                raise stream.error from None
            raise LakeError(f"writing a Delta table to the lake failed ({self.lake.where(uri)}): {exc}") from exc
        return version, stream.rows, stream.schema, preview

    # -- reading ------------------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> pa.RecordBatchReader:
        with retry_only_transient(f"reading {context.asset_key.to_user_string()} from the lake"):
            return self.read(self.location(list(context.asset_key.path)), recorded_version(context))

    def read(self, uri: str, version: int | None = None) -> pa.RecordBatchReader:
        """Stream the table at ``version`` (default: the latest) batch by batch."""
        try:
            dataset = open_table(uri, self.lake.storage_options(), version).to_pyarrow_dataset()
            return dataset.scanner(batch_size=READ_BATCH_ROWS, batch_readahead=READ_BATCH_READAHEAD,
                                   fragment_readahead=READ_FRAGMENT_READAHEAD).to_reader()
        except (OSError, DeltaError, pa.ArrowException) as exc:
            raise LakeError(f"reading a Delta table from the lake failed ({self.lake.where(uri)}): {exc}") from exc


class CheckedStream:
    """``reader`` as delta-rs consumes it: every batch checked against the schema (a batch of another schema raises
    ``ValueError`` here, where delta-rs would abort the whole process on it) and counted (``rows``), and the first
    error the stream raised kept (``error``): delta-rs reports it only wrapped in an error of its own."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self.schema = reader.schema
        self.rows = 0
        self.error: BaseException | None = None
        self.reader = pa.RecordBatchReader.from_batches(reader.schema, self._batches(reader))

    def _batches(self, reader: pa.RecordBatchReader):
        number = 0
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                return
            except Exception as exc:
                self.error = exc
                raise
            if batch.schema != self.schema:
                self.error = ValueError(f"record batch {number}: schema does not match the table's: {batch.schema} "
                                        f"vs {self.schema}")
                raise self.error
            self.rows += batch.num_rows
            number += 1
            yield batch


def table_metadata(rows: int, schema: pa.Schema, preview: pa.Table, path: str) -> dict:
    """Output metadata shared by the lake IO managers: row count, column schema, preview, location."""
    return {
        "dagster/row_count": rows,
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(f.name, str(f.type), constraints=dg.TableColumnConstraints(nullable=f.nullable))
                     for f in schema]
        ),
        "preview": dg.MetadataValue.md(preview.to_pandas().to_markdown(index=False)),
        "path": dg.MetadataValue.path(path),
    }
