"""The lake as its users rely on it: a writer killed with SIGKILL in the middle of a write (Spark on a local lake,
delta-rs on S3) leaves the table readable at its previous version, whole; ``covid-etl lake history`` and
``restore`` on a complete run's lake, and the steps downstream of a restored table read the restored version.

What is stored is read with the deltalake library itself, independently of the code under test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import boto3
from deltalake import DeltaTable

from etl_pipeline_tests.conftest import REPO_ROOT, MotoS3, covid_etl, embedded_env
from etl_pipeline_tests.spark_servers import TEST_SPARK_CONF, write_spark_defaults


class Writer:
    """A child process (its own process group, so that SIGKILL takes its JVM too) that prints ``WRITING`` when
    it starts the write that will be killed."""

    def __init__(self, script: str, *args: str) -> None:
        env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable}
        self.process = subprocess.Popen([sys.executable, "-c", script, *args], cwd=REPO_ROOT, env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                        start_new_session=True)

    def kill_while_writing(self, until, timeout: float = 300) -> None:
        """Wait for ``WRITING``, then until ``until()`` holds (the write is under way), then SIGKILL the group."""
        for line in self.process.stdout:
            if line.strip() == "WRITING":
                break
        else:
            raise AssertionError(f"the writer ended before writing: {self.process.stderr.read()[-3000:]}")
        deadline = time.monotonic() + timeout
        while not until():
            assert self.process.poll() is None, f"the write ended before it was killed: {self.process.stderr.read()}"
            assert time.monotonic() < deadline, "the write never got under way"
            time.sleep(0.2)
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=60)
        assert self.process.returncode == -signal.SIGKILL


#: Version 0 (ids 0..99) through the Spark IO manager, then a slow rewrite of 16 tasks (a Python UDF sleeps per
#: row) through the same IO manager, killed while its tasks write their data files.
SPARK_WRITE = """
import sys, time
import dagster as dg
from pyspark.sql import functions as F, types as T
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.spark_io_manager import SparkIOManager

conf_file, lake_dir = sys.argv[1], sys.argv[2]
spark = SparkSessionResource(master="local[2]", conf_file=conf_file)
manager = SparkIOManager(lake=LakeResource(url=lake_dir), spark=spark)
key = ["silver", "medical", "killed"]
session = spark.get_session()
def write(df):
    with dg.build_output_context(asset_key=dg.AssetKey(key), run_id="r" * 36) as context:
        manager.handle_output(context, df)
write(session.range(0, 100, numPartitions=2))
slow = F.udf(lambda i: time.sleep(0.05) or i, T.LongType())
print("WRITING", flush=True)
write(session.range(1000, 1000 + 16 * 400, numPartitions=16).select(slow("id").alias("id")))
print("NOT KILLED", flush=True)
"""


def test_a_spark_write_killed_midway_leaves_the_previous_version_whole(tmp_path: Path) -> None:
    conf = write_spark_defaults(tmp_path / "spark-defaults.conf", TEST_SPARK_CONF)
    lake = tmp_path / "lake"
    table = lake / "silver" / "medical" / "killed"
    writer = Writer(SPARK_WRITE, str(conf), str(lake))

    def version_0_files() -> set[str]:
        log = json.loads("[" + ",".join((table / "_delta_log" / f"{0:020}.json").read_text().split()) + "]")
        return {action["add"]["path"] for action in log if "add" in action}

    def new_data_files() -> list[Path]:  # files of the killed write: written, never committed
        return [p for p in table.glob("*.parquet") if p.name not in version_0_files()]

    writer.kill_while_writing(lambda: len(new_data_files()) >= 1)

    assert new_data_files(), "the write was killed before any task wrote a file"
    assert sorted(p.name for p in (table / "_delta_log").glob("*.json")) == [f"{0:020}.json"]
    stored = DeltaTable(str(table))
    assert stored.version() == 0
    assert sorted(stored.to_pyarrow_table()["id"].to_pylist()) == list(range(100))


#: Version 0 (1,000 rows) through the MinIO IO manager on S3, then a rewrite streamed slowly (a batch of 200,000
#: rows every 0.2 s, 60 batches), killed while delta-rs uploads its data files.
BRONZE_WRITE = """
import json, sys, time
import pyarrow as pa
import pyarrow.compute as pc
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.minio_io_manager import MinIOIOManager

manager = MinIOIOManager(lake=LakeResource(**json.loads(sys.argv[1])))
uri = manager.location(["bronze", "medical", "killed"])
schema = pa.schema([("id", pa.int64()), ("name", pa.string())])
def batch(start, rows):
    ids = pa.array(range(start, start + rows), pa.int64())
    return pa.record_batch([ids, pc.cast(ids, pa.string())], schema=schema)
manager.write(uri, pa.Table.from_batches([batch(0, 1000)]))
def slow():
    for n in range(60):
        time.sleep(0.2)
        yield batch(1_000_000 + n * 200_000, 200_000)
print("WRITING", flush=True)
manager.write(uri, pa.RecordBatchReader.from_batches(schema, slow()))
print("NOT KILLED", flush=True)
"""


def test_a_bronze_write_on_s3_killed_midway_leaves_the_previous_version_whole(s3: MotoS3) -> None:
    lake = s3.lake("s3://warehouse")
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    prefix = "bronze/medical/killed/"

    def keys() -> list[str]:
        return sorted(o["Key"] for o in client.list_objects_v2(Bucket="warehouse", Prefix=prefix).get("Contents", []))

    def uploads() -> int:  # multipart uploads under way (delta-rs streams each data file as one)
        return len(client.list_multipart_uploads(Bucket="warehouse", Prefix=prefix).get("Uploads", []))

    writer = Writer(BRONZE_WRITE, json.dumps({"url": lake.url, "s3_endpoint_url": lake.s3_endpoint_url,
                                              "aws_access_key_id": s3.access_key,
                                              "aws_secret_access_key": s3.secret_key}))
    before: list[str] = []

    def under_way() -> bool:
        if not before:
            before.extend(keys())
        return uploads() >= 1 or len(keys()) > len(before)

    writer.kill_while_writing(under_way)

    assert [k for k in keys() if "/_delta_log/" in k] == [f"{prefix}_delta_log/{0:020}.json"]
    stored = DeltaTable(lake.table_uri(["bronze", "medical", "killed"]), storage_options=lake.storage_options())
    assert stored.version() == 0
    content = stored.to_pyarrow_table().sort_by("id")
    assert content["id"].to_pylist() == list(range(1000))
    assert content["name"].to_pylist() == [str(i) for i in range(1000)]


# -- history and restore on a complete run's lake --------------------------------------------------------------
#: The operation of a table's first commit: ``WRITE`` on Apache Spark, ``CREATE TABLE`` on Sail.
FIRST_COMMIT = ("WRITE", "CREATE TABLE")
HISTORY_LINE = re.compile(r"^\s*(?P<version>\d+)\s+(?P<time>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)\s+"
                          r"(?P<operation>CREATE TABLE|\S+)"
                          r"\s+(?P<rows>[\d,]+|-)\s+(?P<run_id>\S+)$")


def history(home: Path, table: str) -> list[dict[str, str]]:
    done = covid_etl("lake", "history", table, env=embedded_env(home))
    assert done.returncode == 0, done.stderr
    header = done.stdout.splitlines()[1]
    matches = [m for line in done.stdout.splitlines() if (m := HISTORY_LINE.match(line))]
    # a column: each row's count ends under the header's "rows", whatever the operations' lengths
    assert {m.end("rows") for m in matches} == {header.index("rows") + len("rows")}, done.stdout
    return [m.groupdict() for m in matches]


def test_history_then_restore_then_the_next_step_reads_the_restored_version(embedded_run, data_dir: Path,
                                                                           tmp_path: Path) -> None:
    import dagster as dg

    from etl_pipeline.definitions import ALL_ASSETS_JOB

    source, _ = embedded_run
    home = Path(shutil.copytree(source, tmp_path / "home", ignore=shutil.ignore_patterns("run.lock")))
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [run] = instance.get_runs(filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))
    table = home / "lake" / "gold" / "medical" / "covid19_daily_stats"
    original = DeltaTable(str(table)).to_pyarrow_table()

    [first] = history(home, "gold.covid19_daily_stats")
    assert first["operation"] in FIRST_COMMIT
    assert (first["version"], int(first["rows"].replace(",", "")), first["run_id"]) == (
        "0", original.num_rows, run.run_id)

    # a bad load: version 1 holds one row only
    from deltalake import write_deltalake
    write_deltalake(str(table), original.slice(0, 1), mode="overwrite")
    done = covid_etl("lake", "restore", "gold.covid19_daily_stats", "--version", "0", env=embedded_env(home))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "gold.covid19_daily_stats: version 0 restored as version 2"

    versions = history(home, "gold.covid19_daily_stats")
    assert [(v["version"], v["operation"]) for v in versions] == [
        ("2", "RESTORE"), ("1", "WRITE"), ("0", first["operation"])]
    restored = DeltaTable(str(table)).to_pyarrow_table()
    key = [("date", "ascending"), ("country_region", "ascending")]
    assert restored.sort_by(key).equals(original.sort_by(key))

    # the run history records the restore: a step downstream reads version 2, not the bad version 1
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["gold", "medical", "covid19_daily_stats"]))
        metadata = event.asset_materialization.metadata
        assert (metadata["delta/version"].value, metadata["restored_from_version"].value) == (2, 0)

    # the next run keeps the restored table and rebuilds what reads it (continent totals, the date dimension and
    # the daily fact derive from the daily stats; the warehouse) from it
    again = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    assert again.returncode == 0, f"{again.stdout}\n{again.stderr}"
    [stale] = [line for line in again.stdout.splitlines() if line.startswith("stale: ")]
    assert sorted(stale.removeprefix("stale: ").removesuffix("; these and everything downstream materialized")
                  .split("; ")) == [f"{reader} (gold/medical/covid19_daily_stats changed)" for reader in (
                      "gold/medical/covid19_continent_stats", "gold/medical/dim_date", "gold/medical/fact_daily_cases",
                      "warehouse/medical/covid19_daily_stats")]
    assert [line.split()[:2] for line in again.stdout.splitlines() if line.startswith(("silver ", "gold ", "warehouse "))
            ] == [["gold", "3"], ["warehouse", "6"]]
    assert DeltaTable(str(table)).version() == 2


def test_lake_commands_refuse_what_they_cannot_do_by_name(embedded_run, tmp_path: Path) -> None:
    source, _ = embedded_run
    env = embedded_env(source)
    wrong = covid_etl("lake", "history", "platinum.covid19_daily_stats", env=env)
    assert wrong.returncode == 1 and "expected <layer>.<table> with layer one of bronze, silver, gold" in wrong.stderr
    missing = covid_etl("lake", "history", "gold.no_such_table", env=env)
    assert missing.returncode == 1 and "no Delta table at" in missing.stderr
    beyond = covid_etl("lake", "restore", "gold.dim_date", "--version", "7", env=env)
    assert beyond.returncode == 1 and "gold.dim_date has versions 0..0; cannot restore version 7" in beyond.stderr
