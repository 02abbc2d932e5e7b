"""Spark IO manager: Spark DataFrames <-> the lake, through Spark's own Parquet reader and writer.

Storage contract
----------------
- Asset ``[layer, "medical", table]`` lives at ``<LAKE_URL>/<layer>/medical/<table>.pq`` (:func:`lake_path`).
  Spark addresses an ``s3://bucket/...`` lake as ``s3a://bucket/...``; a local lake by absolute path.
- Reading accepts whatever Spark's Parquet reader accepts there: a Spark output directory (silver, gold) or
  the single Parquet file the MinIO IO manager writes with pyarrow (bronze). Parquet DATE columns come back as
  ``DateType``; the session time zone is UTC. Spark cannot read nanosecond timestamps, so Parquet written for
  Spark stores timestamps in microseconds (pyarrow: ``coerce_timestamps="us"``).
- Writing produces a Spark output directory (``part-*.parquet`` plus ``_SUCCESS``) and never exposes a
  half-written one: Spark writes ``<path>.__staging-<uuid>`` next to the target, the ``_SUCCESS`` marker is
  required, and only then does the output replace the target. If anything fails before that, the staging
  output is deleted and the previous target is untouched; if replacing the target fails, the complete new
  output stays at the staging path.
- Replacing the target:

  * local lake: rename the target aside, rename staging into place, delete the old one. Between the two
    renames (microseconds) the path does not exist; a failed second rename puts the old output back, and a
    crash exactly there leaves it in ``<path>.__previous-<uuid>``.
  * S3 lake (S3 has no rename): delete the target's objects, server-side copy the staging objects
    (``_SUCCESS`` last), delete staging. This is NOT atomic: while it runs, a reader can find the table
    missing or partial, and a failure in it leaves a partial target (the complete output is still under
    the staging prefix). The window is the time to copy a table's few files, and readers run in the
    same Dagster job after the write, so nothing reads it concurrently in this project.

- Output metadata: ``dagster/row_count`` summed from the written files' Parquet footers (the plan runs once,
  for the write), ``dagster/column_schema`` from the Spark schema, ``path``, and ``preview``: the first five
  rows of the written output as a Markdown table.
"""

import os
import posixpath
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import dagster as dg
import pyarrow.fs as pafs
import pyarrow.parquet as pq
from pydantic import Field
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from etl_pipeline.resources.lake_paths import lake_path, s3_filesystem, split_s3_url
from etl_pipeline.resources.spark import SparkSessionResource

SUCCESS_MARKER = "_SUCCESS"
PREVIEW_ROWS = 5


def spark_path(path: str) -> str:
    """The path Spark uses for a lake path: ``s3://`` becomes ``s3a://``; local paths become absolute."""
    if path.startswith("s3://"):
        return "s3a://" + path[len("s3://"):]
    return os.path.abspath(path)


def is_data_file(relative_path: str) -> bool:
    """Spark and Hadoop skip files and directories whose names start with ``_`` or ``.``."""
    return not any(part.startswith(("_", ".")) for part in relative_path.split("/"))


def table_schema(schema: StructType) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=field.name,
                type=field.dataType.simpleString(),
                constraints=dg.TableColumnConstraints(nullable=field.nullable),
            )
            for field in schema.fields
        ]
    )


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(value: Any) -> str:
        return "" if value is None else str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(c) for c in columns) + " |", "|" + " --- |" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


class LakeFiles:
    """File operations of the commit step on a local lake (:class:`S3LakeFiles` overrides ``replace``)."""

    def __init__(self, filesystem: pafs.FileSystem) -> None:
        self.fs = filesystem

    def native(self, path: str) -> str:
        """A lake path as this filesystem names it."""
        return os.path.abspath(path)

    def exists(self, path: str) -> bool:
        return self.fs.get_file_info(self.native(path)).type != pafs.FileType.NotFound

    def data_files(self, directory: str) -> list[str]:
        root = self.native(directory)
        infos = self.fs.get_file_info(pafs.FileSelector(root, recursive=True))
        return sorted(
            info.path
            for info in infos
            if info.type == pafs.FileType.File and is_data_file(posixpath.relpath(info.path, root))
        )

    def row_count(self, directory: str) -> int:
        """Rows in a Parquet output directory, from its footers only."""
        total = 0
        for path in self.data_files(directory):
            with self.fs.open_input_file(path) as f:
                total += pq.ParquetFile(f).metadata.num_rows
        return total

    def delete(self, path: str) -> None:
        info = self.fs.get_file_info(self.native(path))
        if info.type == pafs.FileType.Directory:
            self.fs.delete_dir(info.path)
        elif info.type == pafs.FileType.File:
            self.fs.delete_file(info.path)

    def replace(self, staging: str, target: str) -> None:
        staging_path, target_path = Path(self.native(staging)), Path(self.native(target))
        previous = target_path.with_name(f"{target_path.name}.__previous-{uuid.uuid4().hex}")
        had_target = target_path.exists()
        if had_target:
            target_path.rename(previous)
        try:
            staging_path.rename(target_path)
        except BaseException:
            if had_target:
                previous.rename(target_path)
            raise
        if had_target:
            self.delete(str(previous))


class S3LakeFiles(LakeFiles):
    def native(self, path: str) -> str:
        return "/".join(split_s3_url(path))

    def replace(self, staging: str, target: str) -> None:
        """Copy, not rename: see the module docstring for the window this leaves."""
        source_root, target_root = self.native(staging), self.native(target)
        infos = self.fs.get_file_info(pafs.FileSelector(source_root, recursive=True))
        files = sorted(
            (info.path for info in infos if info.type == pafs.FileType.File),
            key=lambda p: posixpath.basename(p) == SUCCESS_MARKER,
        )
        self.delete(target)
        for path in files:
            self.fs.copy_file(path, target_root + "/" + posixpath.relpath(path, source_root))
        self.delete(staging)


class SparkIOManager(dg.ConfigurableIOManager):
    """Spark DataFrames at ``<lake_url>/<layer>/medical/<table>.pq`` (contract in the module docstring).

    (No ``from __future__ import annotations`` in this module: Dagster needs ``ResourceDependency`` evaluated.)
    """

    lake_url: str
    spark: dg.ResourceDependency[SparkSessionResource]
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)

    def _files(self) -> LakeFiles:
        if self.lake_url.startswith("s3://"):
            return S3LakeFiles(s3_filesystem(self.s3_endpoint_url, self.aws_access_key_id, self.aws_secret_access_key))
        return LakeFiles(pafs.LocalFileSystem())

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        if not isinstance(obj, DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: SparkIOManager stores Spark DataFrames, "
                            f"got {type(obj).__name__}")
        target = lake_path(self.lake_url, context.asset_key.path)
        staging = f"{target}.__staging-{uuid.uuid4().hex}"
        files = self._files()
        try:
            obj.write.parquet(spark_path(staging))
            if not files.exists(f"{staging}/{SUCCESS_MARKER}"):
                raise RuntimeError(f"Spark wrote {staging} without a {SUCCESS_MARKER} marker; not committing it")
            row_count = files.row_count(staging)
        except BaseException:
            files.delete(staging)
            raise
        files.replace(staging, target)
        preview = obj.sparkSession.read.parquet(spark_path(target)).limit(PREVIEW_ROWS).collect()
        context.add_output_metadata(
            {
                "dagster/row_count": dg.MetadataValue.int(row_count),
                "dagster/column_schema": dg.MetadataValue.table_schema(table_schema(obj.schema)),
                "path": dg.MetadataValue.path(target),
                "preview": dg.MetadataValue.md(markdown_table(obj.columns, [tuple(r) for r in preview])),
            }
        )

    def load_input(self, context: dg.InputContext) -> DataFrame:
        path = lake_path(self.lake_url, context.asset_key.path)
        return self.spark.get_session().read.parquet(spark_path(path))
