"""The MinIO IO manager against a real S3 endpoint (moto's standalone server) and against a local directory:
Delta round trips at the lake path, one commit per write (the previous version intact after a failure, one
winner among concurrent writers), versions readable and recorded, and errors that say where.

What is stored is read independently of the code under test: the object keys with boto3 or the file system,
the table with the deltalake library itself.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import boto3
import dagster as dg
import pyarrow as pa
import pytest
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from etl_pipeline.core.source_schema import WORLDOMETER, arrow_schema
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.minio_io_manager import LakeError, MinIOIOManager
from etl_pipeline.transforms.source_validation import read_source_csv
from etl_pipeline_tests.conftest import MotoS3, free_port

BUCKET = "warehouse"
KEY = ["bronze", "medical", "covid19_worldometer"]
RELATIVE_PATH = "bronze/medical/covid19_worldometer"
FIRST_COMMIT = f"{RELATIVE_PATH}/_delta_log/00000000000000000000.json"


class Lake:
    """An IO manager and an independent view of what it stored (object keys or file paths, relative)."""

    def __init__(self, manager: MinIOIOManager, list_stored, storage_options: dict[str, str]) -> None:
        self.manager = manager
        self.stored = list_stored
        self.storage_options = storage_options

    @property
    def path(self) -> str:
        return self.manager.location(KEY)

    def delta(self, version: int | None = None) -> DeltaTable:
        """The table as the deltalake library itself reads it."""
        return DeltaTable(self.path, version=version, storage_options=self.storage_options)

    def commits(self) -> list[str]:
        return [k for k in self.stored() if "/_delta_log/" in k and k.endswith(".json")]


def s3_lake(s3: MotoS3, lake_url: str) -> Lake:
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    bucket = lake_url.removeprefix("s3://").split("/", 1)[0]

    def stored() -> list[str]:
        if bucket not in [b["Name"] for b in client.list_buckets()["Buckets"]]:
            return []
        keys = (o["Key"] for o in client.list_objects_v2(Bucket=bucket).get("Contents", []))
        return sorted(k for k in keys if not k.endswith("/"))

    manager = MinIOIOManager(lake=s3.lake(lake_url))
    options = {"AWS_ENDPOINT_URL": s3.endpoint_url, "AWS_ALLOW_HTTP": "true", "AWS_REGION": "us-east-1",
               "AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key,
               "aws_conditional_put": "etag"}
    return Lake(manager, stored, options)


def local_lake(root: Path) -> Lake:
    def stored() -> list[str]:
        return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())

    return Lake(MinIOIOManager(lake=LakeResource(url=str(root))), stored, {})


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


def same_rows(stored: pa.Table, expected: pa.Table) -> bool:
    """Equal content: a Delta table has no row order (its files may be read in any order)."""
    keys = [(name, "ascending") for name in expected.schema.names]
    return stored.sort_by(keys).equals(expected.sort_by(keys))


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
    version, rows, schema, preview = lake.manager.write(lake.path, obj)
    assert (version, rows, schema) == (0, 209, table.schema)
    assert preview.num_rows == 5 and preview.schema == table.schema
    assert all(k.startswith(f"{RELATIVE_PATH}/") for k in lake.stored())  # nothing outside the table
    assert lake.commits() == [FIRST_COMMIT]
    assert same_rows(lake.delta().to_pyarrow_table(), table)
    assert same_rows(lake.manager.read(lake.path).read_all(), table)


def test_every_write_is_a_new_version_and_earlier_versions_stay_readable(lake: Lake, table: pa.Table) -> None:
    first, second = table.slice(0, 10), table.slice(10)
    assert lake.manager.write(lake.path, first, run_id="run-1")[0] == 0
    assert lake.manager.write(lake.path, second, run_id="run-2")[0] == 1
    assert same_rows(lake.manager.read(lake.path).read_all(), second)
    assert same_rows(lake.manager.read(lake.path, version=0).read_all(), first)
    history = lake.delta().history()
    assert [(h["version"], h["operation"], h.get("userMetadata")) for h in history] == [
        (1, "WRITE", "run-2"), (0, "WRITE", "run-1")]


def test_s3_keys_sit_under_the_prefix_of_the_lake_url(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, f"s3://{BUCKET}/team/lake/")
    assert lake.path == f"s3://{BUCKET}/team/lake/{RELATIVE_PATH}"
    lake.manager.write(lake.path, table)
    assert lake.stored() and all(k.startswith(f"team/lake/{RELATIVE_PATH}/") for k in lake.stored())


def test_the_bucket_is_created_private_when_missing(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, "s3://new-bucket")
    assert lake.stored() == []
    lake.manager.write(lake.path, table)
    assert lake.commits() == [FIRST_COMMIT]
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    grants = client.get_bucket_acl(Bucket="new-bucket")["Grants"]
    assert [g["Permission"] for g in grants] == ["FULL_CONTROL"]
    assert all(g["Grantee"]["Type"] == "CanonicalUser" for g in grants)  # nothing granted to AllUsers


def test_a_write_failing_midway_commits_nothing_and_keeps_the_previous_version(lake: Lake, table: pa.Table) -> None:
    previous = table.slice(0, 10)
    lake.manager.write(lake.path, previous)
    with pytest.raises(RuntimeError, match="lost midway"):
        lake.manager.write(lake.path, failing_reader(table))
    assert lake.commits() == [FIRST_COMMIT]
    assert lake.delta().version() == 0
    assert same_rows(lake.delta().to_pyarrow_table(), previous)


def test_a_first_write_failing_midway_leaves_no_table(lake: Lake, table: pa.Table) -> None:
    with pytest.raises(RuntimeError):
        lake.manager.write(lake.path, failing_reader(table))
    assert lake.commits() == []
    with pytest.raises(TableNotFoundError):
        lake.delta()


def test_a_batch_of_another_schema_midway_keeps_the_previous_version(lake: Lake, table: pa.Table) -> None:
    lake.manager.write(lake.path, table)
    wrong = pa.RecordBatchReader.from_batches(
        table.schema, iter([table.to_batches()[0], pa.record_batch([pa.array([1])], names=["x"])])
    )
    with pytest.raises((ValueError, LakeError, pa.ArrowException)):
        lake.manager.write(lake.path, wrong)
    assert lake.commits() == [FIRST_COMMIT]
    assert same_rows(lake.delta().to_pyarrow_table(), table)


def test_concurrent_writers_of_one_s3_table_one_commit_wins_the_others_fail_clearly(s3: MotoS3, table: pa.Table) -> None:
    """Six writers replace the same version at once: S3 conditional puts let exactly one create the next log
    entry; the others fail with Delta's commit conflict, and the table is one writer's content, whole."""
    lake = s3_lake(s3, f"s3://{BUCKET}")
    lake.manager.write(lake.path, table.slice(0, 1))
    contents = [table.slice(10 * i, 10) for i in range(6)]
    barrier, errors = threading.Barrier(len(contents)), []

    def write(content: pa.Table) -> None:
        barrier.wait()
        try:
            lake.manager.write(lake.path, content)
        except LakeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=write, args=(c,)) for c in contents]
    [t.start() for t in threads]
    [t.join() for t in threads]
    versions = [h["version"] for h in lake.delta().history()]
    assert versions == list(range(max(versions), -1, -1))  # consecutive: no commit overwrote another
    assert len(versions) - 1 + len(errors) == len(contents)  # every writer either committed or failed
    assert errors and all("Commit failed" in e or "concurrent" in e.lower() for e in errors), errors
    final = lake.delta().to_pyarrow_table()
    assert any(same_rows(final, c) for c in contents)


def test_a_missing_table_is_an_error_naming_endpoint_bucket_and_table(s3: MotoS3, table: pa.Table) -> None:
    lake = s3_lake(s3, f"s3://{BUCKET}")
    lake.manager.write(lake.manager.location(["bronze", "medical", "other"]), table)
    with pytest.raises(LakeError) as caught:
        lake.manager.read(lake.path)
    assert f"endpoint {s3.endpoint_url}, bucket '{BUCKET}', table '{RELATIVE_PATH}'" in str(caught.value)


def test_an_unreachable_endpoint_is_an_error_naming_endpoint_bucket_and_table(table: pa.Table) -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    manager = MinIOIOManager(lake=LakeResource(url=f"s3://{BUCKET}", s3_endpoint_url=endpoint,
                                               aws_access_key_id="k", aws_secret_access_key="secret-value"))
    with pytest.raises(LakeError) as caught:
        manager.write(manager.location(KEY), table)
    message = str(caught.value)
    assert f"endpoint {endpoint}, bucket '{BUCKET}', table '{RELATIVE_PATH}'" in message
    assert "secret-value" not in message


def test_a_missing_local_table_is_an_error_naming_the_path(tmp_path: Path) -> None:
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
        stored = batches.read_all()
        assert same_rows(stored, table)
        return stored.num_rows

    result = dg.materialize([bronze, downstream], resources={"minio_io_manager": lake.manager})
    assert result.output_for_node("downstream") == 209
    [event] = [e for e in result.get_asset_materialization_events() if e.asset_key == bronze.key]
    metadata = event.materialization.metadata
    assert metadata["dagster/row_count"].value == 209
    assert metadata["delta/version"].value == 0
    assert metadata["path"].value.endswith(RELATIVE_PATH)
    assert [c.name for c in metadata["dagster/column_schema"].value.columns] == table.schema.names
    assert lake.delta().history()[0]["userMetadata"] == result.run_id


def test_a_reader_reads_the_version_its_upstream_materialization_recorded(lake: Lake, table: pa.Table) -> None:
    """The table is rewritten after its materialization (outside Dagster): a later step that loads it still
    reads the version the materialization recorded, not the newest files."""
    recorded, rewritten = table.slice(0, 20), table.slice(20, 5)

    @dg.asset(key=KEY, io_manager_key="minio_io_manager")
    def bronze() -> pa.Table:
        return recorded

    @dg.asset(ins={"batches": dg.AssetIn(key=KEY, input_manager_key="minio_io_manager")})
    def downstream(batches: pa.RecordBatchReader) -> int:
        return batches.read_all().num_rows

    with dg.DagsterInstance.ephemeral() as instance:
        resources = {"minio_io_manager": lake.manager}
        dg.materialize([bronze], resources=resources, instance=instance)
        lake.manager.write(lake.path, rewritten)  # version 1, not a Dagster materialization
        result = dg.materialize([bronze, downstream], selection=[downstream], resources=resources, instance=instance)
    assert result.output_for_node("downstream") == 20
