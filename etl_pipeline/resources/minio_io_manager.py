"""MinIO IO manager: Arrow/pandas tables <-> single Parquet files in the lake.

Storage contract:
- An asset ``[layer, medical, table]`` is the Parquet file ``<LAKE_URL>/<layer>/medical/<table>.pq``
  (:func:`~etl_pipeline.resources.lake_paths.lake_path`). ``LAKE_URL`` is ``s3://bucket[/prefix]`` (MinIO or
  any S3 API, endpoint and credentials from the settings; the bucket is created, private, if missing) or
  a local directory.
- Writes stream record batches into a temporary object/file beside the final one and move it into place
  only once complete, so a reader sees the previous file or the new one, never a partial one.
- Accepts a ``pyarrow.RecordBatchReader`` (streamed, bounded memory), a ``pyarrow.Table`` or a pandas
  DataFrame. ``load_input`` streams a ``pyarrow.RecordBatchReader`` (``.read_pandas()`` for a DataFrame)
  from a single file or from a Spark output directory (part files; ``_SUCCESS`` and dot files ignored).
"""

from __future__ import annotations

import uuid

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from etl_pipeline.resources.arrow_input import as_reader
from etl_pipeline.resources.lake_paths import lake_path, s3_filesystem, split_s3_url
from etl_pipeline.retries import retry_only_transient

PREVIEW_ROWS = 5
READ_BATCH_ROWS = 100_000


class LakeError(RuntimeError):
    """A lake read or write failed; the message names the endpoint, bucket and key or path."""


class MinIOIOManager(dg.ConfigurableIOManager):
    """Pandas/Arrow Parquet <-> lake (S3 API or local directory), atomic object writes."""

    lake_url: str
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None

    # -- locations --------------------------------------------------------------------------------
    @property
    def is_s3(self) -> bool:
        return self.lake_url.startswith("s3://")

    def filesystem(self) -> pafs.FileSystem:
        if not self.is_s3:
            return pafs.LocalFileSystem()
        return s3_filesystem(self.s3_endpoint_url, self.aws_access_key_id, self.aws_secret_access_key)

    def location(self, key_path: list[str]) -> str:
        """The path as the filesystem sees it: ``bucket/prefix/...`` on S3, an absolute path locally."""
        url = lake_path(self.lake_url, key_path)
        if self.is_s3:
            bucket, key = split_s3_url(url)
            return f"{bucket}/{key}"
        return url

    def _where(self, path: str) -> str:
        if self.is_s3:
            bucket, _, key = path.partition("/")
            return f"endpoint {self.s3_endpoint_url or 'AWS default'}, bucket {bucket!r}, key {key!r}"
        return f"path {path!r}"

    # -- writing ------------------------------------------------------------------------------------
    def handle_output(self, context: dg.OutputContext, obj: pa.RecordBatchReader | pa.Table | pd.DataFrame) -> None:
        path = self.location(list(context.asset_key.path))
        with retry_only_transient(f"writing {context.asset_key.to_user_string()} to the lake"):
            rows, schema, preview = self.write(path, obj)
        context.add_output_metadata(parquet_metadata(rows, schema, preview, lake_path(self.lake_url, context.asset_key.path)))

    def write(self, path: str, obj: pa.RecordBatchReader | pa.Table | pd.DataFrame) -> tuple[int, pa.Schema, pa.Table]:
        """Write ``obj`` atomically at ``path``; returns (rows, schema, first rows)."""
        reader = as_reader(obj)
        fs = self.filesystem()
        temporary = f"{path}.tmp-{uuid.uuid4().hex}"
        moved = False
        try:
            self._ensure_parent(fs, path)
            rows, preview = 0, []
            # On S3, leaving this block closes the stream, which completes the upload even when the
            # batches failed midway: whatever the error, the temporary object is removed below.
            with fs.open_output_stream(temporary) as sink, pq.ParquetWriter(sink, reader.schema) as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    if rows < PREVIEW_ROWS:
                        preview.append(batch.slice(0, PREVIEW_ROWS - rows))
                    rows += batch.num_rows
            fs.move(temporary, path)
            moved = True
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"writing Parquet to the lake failed ({self._where(path)}): {exc}") from exc
        finally:
            if not moved:
                _remove_quietly(fs, temporary)
        return rows, reader.schema, pa.Table.from_batches(preview, schema=reader.schema)

    def _ensure_parent(self, fs: pafs.FileSystem, path: str) -> None:
        if self.is_s3:
            bucket = path.split("/", 1)[0]
            if fs.get_file_info(bucket).type == pafs.FileType.NotFound:
                fs.create_dir(bucket)  # a new bucket is private: no policy is attached
        else:
            fs.create_dir(path.rsplit("/", 1)[0], recursive=True)

    # -- reading ------------------------------------------------------------------------------------
    def load_input(self, context: dg.InputContext) -> pa.RecordBatchReader:
        with retry_only_transient(f"reading {context.asset_key.to_user_string()} from the lake"):
            return self.read(self.location(list(context.asset_key.path)))

    def read(self, path: str) -> pa.RecordBatchReader:
        """Stream the Parquet file, or the directory of part files that Spark writes, batch by batch."""
        try:
            dataset = pads.dataset(path, format="parquet", filesystem=self.filesystem())
            return dataset.scanner(batch_size=READ_BATCH_ROWS).to_reader()
        except (OSError, pa.ArrowException) as exc:
            raise LakeError(f"reading Parquet from the lake failed ({self._where(path)}): {exc}") from exc


def _remove_quietly(fs: pafs.FileSystem, path: str) -> None:
    try:
        fs.delete_file(path)
    except (OSError, pa.ArrowException):
        pass


def parquet_metadata(rows: int, schema: pa.Schema, preview: pa.Table, path: str) -> dict:
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
