"""The MinIO IO manager against a real S3 endpoint (moto's standalone server) and against a local directory:
Parquet round trips at the lake path, atomic writes (no temporary object left, the previous object intact
after a failure) and errors that say where.

What is stored is listed independently of the code under test: boto3 for S3, the file system locally.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from etl_pipeline.resources.minio_io_manager import LakeError, MinIOIOManager
from etl_pipeline.transforms.source_schema import WORLDOMETER, arrow_schema
from etl_pipeline.transforms.source_validation import read_source_csv
from etl_pipeline_tests.conftest import MotoS3, free_port

BUCKET = "warehouse"
KEY = ["bronze", "medical", "covid19_worldometer"]
RELATIVE_PATH = "bronze/medical/covid19_worldometer.pq"


class Lake:
    """An IO manager and an independent view of what it stored (object keys or file paths, relative)."""

    def __init__(self, manager: MinIOIOManager, list_stored, read_stored) -> None:
        self.manager = manager
        self.stored = list_stored
        self.read_stored = read_stored

    @property
    def path(self) -> str:
        return self.manager.location(KEY)


def s3_lake(s3: MotoS3, lake_url: str) -> Lake:
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    bucket = lake_url.removeprefix("s3://").split("/", 1)[0]

    def stored() -> list[str]:
        if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
            return []
        keys = (o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
        return sorted(k for k in keys if not k.endswith("/"))  # pyarrow leaves empty "directory" markers

    def read(key: str) -> pa.Table:
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return pq.read_table(pa.BufferReader(body))

    manager = MinIOIOManager(lake_url=lake_url, s3_endpoint_url=s3.endpoint_url,
                             aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key)
    return Lake(manager, stored, read)


def local_lake(root: Path) -> Lake:
    def stored() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Lake(MinIOIOManager(lake_url=str(root)), stored, lambda relative: pq.read_table(root / relative))


@pytest.fixture(params=["s3", "local"])
def lake(request: pytest.FixtureRequest, tmp_path: Path) -> Lake:
    if request.param == "s3":
        return s3_lake(request.getfixturevalue("s3"), f"s3://{BUCKET}")
    return local_lake(tmp_path / "lake")


@pytest.fixture(scope="module")
def table(data_dir: Path) -> pa.Table:
    """covid19_worldometer as bronze holds it (209 rows, NULLs included)."""
    frame = read_source_csv(WORLDOMETER, data_dir / WORLDOMETER.file_name)
    return pa.Table.from_pandas(frame, schema=arrow_schema(WORLDOMETER), preserve_index=False)


def reader_of(table: pa.Table, batch_rows: int = 50) -> pa.RecordBatchReader:
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=batch_rows))


def failing_reader(table: pa.Table, good_batches: int = 2) -> pa.RecordBatchReader:
    """Yields some batches, then fails as a lost source connection would."""
    def batches() -> Iterator[pa.RecordBatch]:
        yield from table.to_batches(max_chunksize=50)[:good_batches]
        raise RuntimeError("source connection lost midway")

    return pa.RecordBatchReader.from_batches(table.schema, batches())


@pytest.mark.parametrize("form", ["reader", "table", "pandas"])
def test_write_then_read_round_trips_at_the_lake_path(lake: Lake, table: pa.Table, form: str) -> None:
    obj = {"reader": reader_of(table), "table": table, "pandas": table.to_pandas()}[form]
    rows, schema, preview = lake.manager.write(lake.path, obj)
    assert (rows, schema) == (209, table.schema)
    assert preview.equals(table.slice(0, 5))
    assert lake.stored() == [RELATIVE_PATH]  # nothing else: no temporary object left
    assert lake.read_stored(RELATIVE_PATH).equals(table)
    assert lake.manager.read(lake.path).read_all().equals(table)


def test_s3_keys_sit_under_the_prefix_of_the_lake_url(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, f"s3://{BUCKET}/team/lake/")
    assert lake.path == f"{BUCKET}/team/lake/{RELATIVE_PATH}"
    lake.manager.write(lake.path, table)
    assert lake.stored() == [f"team/lake/{RELATIVE_PATH}"]


def test_the_bucket_is_created_private_when_missing(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, "s3://new-bucket")
    assert lake.stored() == []
    lake.manager.write(lake.path, table)
    assert lake.stored() == [RELATIVE_PATH]
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    grants = client.get_bucket_acl(Bucket="new-bucket")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert all(g["Grantee"]["Type"] == "CanonicalUser" for g in grants)  # nothing granted to AllUsers


def test_a_write_failing_midway_keeps_the_previous_object_and_leaves_no_temporary(lake: Lake, table: pa.Table) -> None:
    previous = table.slice(0, 10)
    lake.manager.write(lake.path, previous)
    with pytest.raises(RuntimeError, match="lost midway"):
        lake.manager.write(lake.path, failing_reader(table))
    assert lake.stored() == [RELATIVE_PATH]
    assert lake.read_stored(RELATIVE_PATH).equals(previous)


def test_a_first_write_failing_midway_leaves_nothing(lake: Lake, table: pa.Table) -> None:
    with pytest.raises(RuntimeError):
        lake.manager.write(lake.path, failing_reader(table))
    assert lake.stored() == []


def test_a_batch_of_another_schema_midway_keeps_the_previous_object(lake: Lake, table: pa.Table) -> None:
    lake.manager.write(lake.path, table)
    wrong = pa.RecordBatchReader.from_batches(
        table.schema, iter([table.to_batches()[0], pa.record_batch([pa.array([1])], names=["x"])])
    )
    with pytest.raises(ValueError, match="schema does not match"):
        lake.manager.write(lake.path, wrong)
    assert lake.stored() == [RELATIVE_PATH]
    assert lake.read_stored(RELATIVE_PATH).equals(table)


def test_a_spark_output_directory_reads_as_one_table(lake: Lake, table: pa.Table) -> None:
    """Part files are read in order; ``_SUCCESS`` and dot files (checksums) are not data."""
    directory = lake.path
    parts = [table.slice(0, 100), table.slice(100)]
    for number, part in enumerate(parts):
        lake.manager.write(f"{directory}/part-0000{number}-x.snappy.parquet", part)
    lake.manager.write(f"{directory}/.part-00000-x.snappy.parquet.crc", table.slice(0, 1))
    fs = lake.manager.filesystem()
    with fs.open_output_stream(f"{directory}/_SUCCESS"):
        pass
    assert lake.manager.read(directory).read_all().equals(table)


def test_a_missing_object_is_an_error_naming_endpoint_bucket_and_key(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, f"s3://{BUCKET}")
    lake.manager.write(lake.manager.location(["bronze", "medical", "other"]), table)
    with pytest.raises(LakeError) as caught:
        lake.manager.read(lake.path)
    assert f"endpoint {s3.endpoint_url}, bucket '{BUCKET}', key '{RELATIVE_PATH}'" in str(caught.value)


def test_an_unreachable_endpoint_is_an_error_naming_endpoint_bucket_and_key(table: pa.Table) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    manager = MinIOIOManager(lake_url=f"s3://{BUCKET}", s3_endpoint_url=endpoint,
                             aws_access_key_id="k", aws_secret_access_key="secret-value")
    with pytest.raises(LakeError) as caught:
        manager.write(manager.location(KEY), table)
    message = str(caught.value)
    assert f"endpoint {endpoint}, bucket '{BUCKET}', key '{RELATIVE_PATH}'" in message
    assert "secret-value" not in message


def test_a_missing_local_file_is_an_error_naming_the_path(tmp_path: Path) -> None:
    lake = local_lake(tmp_path / "lake")
    with pytest.raises(LakeError, match=f"path '{tmp_path}/lake/{RELATIVE_PATH}'"):
        lake.manager.read(lake.path)


def test_non_tabular_output_is_refused(lake: Lake) -> None:
    with pytest.raises(TypeError, match="got list"):
        lake.manager.write(lake.path, [1, 2])
    assert lake.stored() == []


def test_as_the_io_manager_of_an_asset_and_its_downstream(lake: Lake, table: pa.Table) -> None:
    @dg.asset(key=KEY, io_manager_key="minio_io_manager")
    def bronze() -> pa.RecordBatchReader:
        return reader_of(table)

    @dg.asset(ins={"batches": dg.AssetIn(key=KEY)})
    def downstream(batches: pa.RecordBatchReader) -> int:
        frame = batches.read_pandas()
        pd.testing.assert_frame_equal(frame, table.to_pandas())
        return len(frame)

    result = dg.materialize([bronze, downstream], resources={"minio_io_manager": lake.manager})
    assert result.output_for_node("downstream") == 209
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == bronze.key]
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 209
    assert metadata["path"].value.endswith(RELATIVE_PATH)
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == table.schema.names
    assert lake.stored() == [RELATIVE_PATH]
