"""Spark IO manager: Spark DataFrames <-> Delta tables in the lake, through Delta Lake for Spark.

Storage contract
----------------
- Asset ``[layer, "medical", table]`` is the Delta table ``<LAKE_URL>/<layer>/medical/<table>`` of the
  :class:`~etl_pipeline.resources.lake.LakeResource`, the same table the MinIO IO manager (delta-rs) reads and
  writes. Spark addresses an ``s3://bucket/...`` lake as ``s3a://bucket/...``.
- Writing replaces the table's content and schema in ONE Delta commit (``overwrite`` with ``overwriteSchema``):
  a reader sees the previous version or the new one, never a mix, on S3 too; a failed or killed write commits
  nothing and leaves only unreferenced files, which VACUUM deletes. The commit carries the Dagster run id
  (``userMetadata``). The metadata below (the log, the preview rows) is read by delta-rs: no extra Spark job.
- Reading loads the version the upstream materialization recorded
  (:func:`~etl_pipeline.resources.delta_lake.recorded_version`), else the latest. Parquet DATE columns come back
  as ``DateType``; the session time zone is UTC.
- Output metadata: ``delta/version``, ``dagster/row_count`` from the commit's ``numOutputRows``,
  ``dagster/column_schema`` from the Spark schema, ``path``, and ``preview``: the first five rows of the version
  written, as a Markdown table.
"""

import json
from collections.abc import Sequence
from typing import Any

import dagster as dg
from deltalake import DeltaTable
from pyspark.sql import DataFrame
from pyspark.sql.types import StructType

from etl_pipeline.resources.delta_lake import VERSION_KEY, commit_rows, open_table, own_commit, recorded_version, vacuum
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource

PREVIEW_ROWS = 5


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


class SparkIOManager(dg.ConfigurableIOManager):
    """Spark DataFrames as Delta tables at ``<lake>/<layer>/medical/<table>`` (contract in the module docstring).

    (No ``from __future__ import annotations`` in this module: Dagster needs ``ResourceDependency`` evaluated.)
    """

    lake: LakeResource
    spark: dg.ResourceDependency[SparkSessionResource]

    def handle_output(self, context: dg.OutputContext, obj: DataFrame) -> None:
        if not isinstance(obj, DataFrame):
            raise TypeError(f"{context.asset_key.to_user_string()}: SparkIOManager stores Spark DataFrames, "
                            f"got {type(obj).__name__}")
        target, spark_uri = self.lake.table_uri(context.asset_key.path), self.lake.spark_uri(context.asset_key.path)
        (obj.write.format("delta").mode("overwrite").option("overwriteSchema", "true")
         .option("userMetadata", context.run_id).save(spark_uri))
        table = open_table(target, self.lake.storage_options())
        commit = own_commit(table, context.run_id)
        written = table if commit["version"] == table.version() else open_table(target, self.lake.storage_options(),
                                                                                 commit["version"])
        preview = written.to_pyarrow_dataset().head(PREVIEW_ROWS).to_pylist()  # delta-rs: no Spark job
        vacuum(table, self.lake.retention_hours)
        context.add_output_metadata(
            {
                VERSION_KEY: commit["version"],
                "dagster/row_count": dg.MetadataValue.int(commit_rows(commit) or 0),
                "dagster/column_schema": dg.MetadataValue.table_schema(table_schema(obj.schema)),
                "path": dg.MetadataValue.path(target),
                "preview": dg.MetadataValue.md(markdown_table(obj.columns, [[r[c] for c in obj.columns] for r in preview])),
            }
        )

    def load_input(self, context: dg.InputContext) -> DataFrame:
        """The version the upstream materialization recorded (else the latest), as :func:`read_version` reads it."""
        table = open_table(self.lake.table_uri(context.asset_key.path), self.lake.storage_options(),
                           recorded_version(context))
        return read_version(self.spark.get_session(), table, self.lake)


def ddl(schema: StructType) -> str:
    """``schema`` as DDL (```name` type, ...``), without field metadata: a schema both engines take the same way
    (Sail attaches ``SPARK::metadata::json`` metadata to some columns it computes). Flat schemas only (nested field
    names are not quoted)."""
    return ", ".join(f"`{f.name.replace('`', '``')}` {f.dataType.simpleString()}" for f in schema.fields)


def read_version(spark: Any, table: DeltaTable, lake: LakeResource) -> DataFrame:
    """The Spark DataFrame of ``table`` at the version it was opened at (delta-rs).

    delta-rs has already resolved which Parquet files make that version (its log replay is in-process, in
    milliseconds). A table that asks nothing of its readers beyond Parquet (reader protocol 1: no deletion
    vectors, no column mapping) and has no partition columns is exactly those files, so Spark reads them with the
    table's schema; Delta Lake for Spark would replay the log again in Spark jobs (about a second per new version
    and a file-filtering job per read on this project's small tables). Any other table is read by Delta Lake for
    Spark, time-travelling to the same version.
    """
    schema = ddl(StructType.fromJson(json.loads(table.schema().to_json())))
    plain = table.protocol().min_reader_version == 1 and not table.metadata().partition_columns
    if not plain:
        return (spark.read.format("delta").option("versionAsOf", table.version())
                .load(lake.spark_uri_of(table.table_uri)))
    files = [lake.spark_uri_of(uri) for uri in table.file_uris()]
    return spark.read.schema(schema).parquet(*files) if files else spark.createDataFrame([], schema)
