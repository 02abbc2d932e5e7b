"""The Spark IO manager on a local lake (and through Spark Connect), and its S3 commit step on a real S3 server.

The Spark Connect round trip runs in a child process (``python -m`` this module): PySpark turns a process
that opens a Connect session into a Connect-only process, which would break every classic-session test
that runs after it in this pytest process.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from etl_pipeline.resources.lake_paths import lake_path, s3_filesystem
from etl_pipeline.resources.spark import REPO_SPARK_DEFAULTS, SparkSessionResource, parse_spark_defaults
from etl_pipeline.resources.spark_io_manager import (
    S3LakeFiles,
    SparkIOManager,
    markdown_table,
    spark_path,
)
from etl_pipeline_tests.conftest import REPO_ROOT, MotoS3, unavailable
from etl_pipeline_tests.spark_servers import TEST_SPARK_CONF, ConnectServer, write_spark_defaults

CASES_SCHEMA = StructType(
    [
        StructField("date", DateType(), False),
        StructField("country_region", StringType(), False),
        StructField("confirmed", LongType(), True),
    ]
)
CASES = [
    (dt.date(2020, 1, 22), "Italy", 0),
    (dt.date(2020, 1, 23), "Italy", 5),
    (dt.date(2020, 1, 22), "US", 1),
    (dt.date(2020, 1, 23), "US", None),
    (dt.date(2020, 2, 29), "US", 7),
    (dt.date(2020, 2, 29), "Côte d'Ivoire", 2),
    (dt.date(2020, 7, 27), "Taiwan* | TW", 3),
]
SILVER_KEY = ["silver", "medical", "rt_cases"]
GOLD_KEY = ["gold", "medical", "rt_country_totals"]


def expected_totals() -> list[list[Any]]:
    """Per country, in plain Python: [country, days, summed confirmed (nulls skipped), last date]."""
    days: dict[str, int] = defaultdict(int)
    confirmed: dict[str, int] = defaultdict(int)
    last: dict[str, dt.date] = {}
    for date, country, value in CASES:
        days[country] += 1
        confirmed[country] += value or 0
        last[country] = max(last.get(country, date), date)
    return [[c, days[c], confirmed[c], last[c].isoformat()] for c in sorted(days)]


def round_trip(spark: SparkSessionResource, lake_url: str, **s3_access: str) -> dict[str, Any]:
    """Materialize silver -> gold through the IO manager and report what landed in the lake (JSON-able).
    ``s3_access``: the IO manager's endpoint and keys for an ``s3://`` lake."""

    @dg.asset(key=SILVER_KEY)
    def rt_cases(spark: SparkSessionResource) -> DataFrame:
        return spark.get_session().createDataFrame(CASES, CASES_SCHEMA).repartition(3)

    @dg.asset(key=GOLD_KEY, ins={"cases": dg.AssetIn(key=SILVER_KEY)})
    def rt_country_totals(cases: DataFrame) -> DataFrame:
        return cases.groupBy("country_region").agg(
            F.count("*").alias("days"), F.sum("confirmed").alias("confirmed"), F.max("date").alias("last_date")
        )

    started = time.monotonic()
    session = spark.get_session()
    session_seconds = time.monotonic() - started
    result = dg.materialize(
        [rt_cases, rt_country_totals],
        resources={"spark": spark, "io_manager": SparkIOManager(lake_url=lake_url, spark=spark, **s3_access)},
    )
    metadata = {
        asset.op.name.split("__")[-1]: result.asset_materializations_for_node(asset.op.name)[0].metadata
        for asset in (rt_cases, rt_country_totals)
    }
    gold = session.read.parquet(spark_path(lake_path(lake_url, GOLD_KEY)))
    silver = session.read.parquet(spark_path(lake_path(lake_url, SILVER_KEY)))
    return {
        "success": result.success,
        "session_seconds": session_seconds,
        "one_session": spark.get_session() is session,
        "row_counts": {node: md["dagster/row_count"].value for node, md in metadata.items()},
        "paths": {node: md["path"].value for node, md in metadata.items()},
        "gold_schema_metadata": [
            [c.name, c.type] for c in metadata["rt_country_totals"]["dagster/column_schema"].schema.columns
        ],
        "silver_preview": metadata["rt_cases"]["preview"].value,
        "silver_types": [[f.name, f.dataType.simpleString()] for f in silver.schema.fields],
        "gold_rows": [
            [r["country_region"], r["days"], r["confirmed"], r["last_date"].isoformat()]
            for r in gold.orderBy("country_region").collect()
        ],
        "lake_entries": sorted(str(p.relative_to(lake_url)) for p in Path(lake_url).glob("*/medical/*")),
    }


def assert_round_trip(report: dict[str, Any], lake_url: str) -> None:
    assert report["success"]
    assert report["one_session"]
    assert report["row_counts"] == {"rt_cases": len(CASES), "rt_country_totals": len(expected_totals())}
    assert report["paths"] == {
        "rt_cases": lake_path(lake_url, SILVER_KEY), "rt_country_totals": lake_path(lake_url, GOLD_KEY)
    }
    assert report["gold_schema_metadata"] == [
        ["country_region", "string"], ["days", "bigint"], ["confirmed", "bigint"], ["last_date", "date"]
    ]
    assert report["silver_types"] == [["date", "date"], ["country_region", "string"], ["confirmed", "bigint"]]
    assert report["gold_rows"] == expected_totals()
    preview = report["silver_preview"].splitlines()
    assert preview[0] == "| date | country_region | confirmed |"
    assert len(preview) == 2 + 5
    if not lake_url.startswith("s3://"):
        assert report["lake_entries"] == ["gold/medical/rt_country_totals.pq", "silver/medical/rt_cases.pq"]
        assert (Path(lake_url) / "silver/medical/rt_cases.pq/_SUCCESS").is_file()


@pytest.fixture(scope="module")
def spark_resource(tmp_path_factory: pytest.TempPathFactory) -> SparkSessionResource:
    conf = write_spark_defaults(tmp_path_factory.mktemp("spark") / "spark-defaults.conf", TEST_SPARK_CONF)
    return SparkSessionResource(master="local[2]", conf_file=str(conf))


def test_round_trip_on_a_local_lake(spark_resource: SparkSessionResource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    assert_round_trip(round_trip(spark_resource, lake_url), lake_url)


def test_reads_the_single_parquet_file_pyarrow_writes_for_bronze(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["bronze", "medical", "covid19_time_series"]
    dates = [dt.date(2020, 1, 22), dt.date(2020, 2, 29), None, dt.date(2020, 7, 27)]
    deaths = [0, None, 12, 2**40]
    names = ["Afghanistan", "Réunion", "US", None]
    table = pa.table(
        {"date": pa.array(dates, pa.date32()), "deaths": pa.array(deaths, pa.int64()), "country": names}
    )
    path = Path(lake_path(lake_url, key))
    path.parent.mkdir(parents=True)
    pq.write_table(table, path)

    io_manager = SparkIOManager(lake_url=lake_url, spark=spark_resource)
    df = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))

    assert [(f.name, f.dataType, f.nullable) for f in df.schema.fields] == [
        ("date", DateType(), True), ("deaths", LongType(), True), ("country", StringType(), True)
    ]
    assert [tuple(r) for r in df.collect()] == list(zip(dates, deaths, names))


def _write(io_manager: SparkIOManager, key: list[str], df: DataFrame) -> dg.OutputContext:
    context = dg.build_output_context(asset_key=dg.AssetKey(key))
    io_manager.handle_output(context, df)
    return context


def test_a_failed_write_leaves_the_previous_output(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["silver", "medical", "t"]
    session = spark_resource.get_session()
    io_manager = SparkIOManager(lake_url=lake_url, spark=spark_resource)
    _write(io_manager, key, session.range(0, 100, numPartitions=4))

    # Task 3 of 4 fails after the other tasks have written their files into the staging directory.
    failing = session.range(0, 1000, numPartitions=4).select(
        F.when(F.col("id") == 900, F.raise_error(F.lit("boom at id 900"))).otherwise(F.col("id")).alias("id")
    )
    with pytest.raises(Exception, match="boom at id 900"):
        _write(io_manager, key, failing)

    previous = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))
    assert sorted(r["id"] for r in previous.collect()) == list(range(100))
    assert sorted(p.name for p in (tmp_path / "lake/silver/medical").iterdir()) == ["t.pq"]


def test_output_without_success_marker_is_not_committed(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["gold", "medical", "marked"]
    session = spark_resource.get_session()
    io_manager = SparkIOManager(lake_url=lake_url, spark=spark_resource)
    _write(io_manager, key, session.range(0, 10))

    session.conf.set("mapreduce.fileoutputcommitter.marksuccessfuljobs", "false")  # Hadoop writes no _SUCCESS
    try:
        with pytest.raises(RuntimeError, match="without a _SUCCESS marker; not committing it"):
            _write(io_manager, key, session.range(0, 20))
    finally:
        session.conf.unset("mapreduce.fileoutputcommitter.marksuccessfuljobs")

    kept = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))
    assert sorted(r["id"] for r in kept.collect()) == list(range(10))
    assert sorted(p.name for p in (tmp_path / "lake/gold/medical").iterdir()) == ["marked.pq"]


def test_row_count_metadata_is_exact_and_replaces_output(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["gold", "medical", "counted"]
    session = spark_resource.get_session()
    io_manager = SparkIOManager(lake_url=lake_url, spark=spark_resource)
    _write(io_manager, key, session.range(0, 5000, numPartitions=4))

    df = session.range(0, 12345, numPartitions=5).where("id % 7 <> 3")
    context = _write(io_manager, key, df)
    metadata = context.get_logged_metadata()
    expected = sum(1 for i in range(12345) if i % 7 != 3)
    assert metadata["dagster/row_count"].value == expected
    assert io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key))).count() == expected
    assert sorted(p.name for p in (tmp_path / "lake/gold/medical").iterdir()) == ["counted.pq"]


def test_rejects_what_is_not_a_spark_dataframe(spark_resource, tmp_path: Path) -> None:
    io_manager = SparkIOManager(lake_url=str(tmp_path / "lake"), spark=spark_resource)
    with pytest.raises(TypeError, match="silver/medical/x: SparkIOManager stores Spark DataFrames, got list"):
        _write(io_manager, ["silver", "medical", "x"], [1, 2])


def test_spark_paths() -> None:
    assert spark_path("s3://warehouse/silver/medical/t.pq") == "s3a://warehouse/silver/medical/t.pq"
    assert spark_path("/data/lake/silver/medical/t.pq") == "/data/lake/silver/medical/t.pq"
    assert spark_path("lake/gold/medical/t.pq") == os.path.join(os.getcwd(), "lake/gold/medical/t.pq")


def test_markdown_table_escapes_cells() -> None:
    assert markdown_table(["a", "b"], [(1, None), ("x|y", "two\nlines")]) == (
        "| a | b |\n| --- | --- |\n| 1 |  |\n| x\\|y | two lines |"
    )


def _parquet_bytes(rows: int) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"id": list(range(rows))}), sink)
    return sink.getvalue().to_pybytes()


def test_s3_commit_replaces_the_target_prefix(s3: MotoS3) -> None:
    """The S3 half of the commit step on its own, with the objects Spark would write put by boto3 (the whole
    path through s3a is tested above); the commit itself runs through pyarrow's S3 filesystem."""
    client = boto3.client(
        "s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key, aws_secret_access_key=s3.secret_key,
        region_name="us-east-1",
    )
    client.create_bucket(Bucket="warehouse")
    objects = {
        "silver/medical/t.pq/part-00000-old.snappy.parquet": _parquet_bytes(4),
        "silver/medical/t.pq/_SUCCESS": b"",
        "silver/medical/t.pq.__staging-1/part-00000-new.snappy.parquet": _parquet_bytes(10),
        "silver/medical/t.pq.__staging-1/part-00001-new.snappy.parquet": _parquet_bytes(7),
        "silver/medical/t.pq.__staging-1/_SUCCESS": b"",
        "silver/medical/t.pq.__staging-1/.part-00001-new.snappy.parquet.crc": b"not parquet",
        "silver/medical/other.pq/part-00000.parquet": _parquet_bytes(1),
    }
    for key, body in objects.items():
        client.put_object(Bucket="warehouse", Key=key, Body=body)

    files = S3LakeFiles(s3_filesystem(s3.endpoint_url, s3.access_key, s3.secret_key))
    target, staging = "s3://warehouse/silver/medical/t.pq", "s3://warehouse/silver/medical/t.pq.__staging-1"
    assert files.exists(f"{staging}/_SUCCESS")
    assert files.row_count(staging) == 17
    files.replace(staging, target)

    listed = client.list_objects_v2(Bucket="warehouse", Prefix="silver/")["Contents"]
    # (pyarrow leaves an empty "silver/medical/" directory marker behind, as S3 filesystems do)
    assert sorted(o["Key"] for o in listed if not o["Key"].endswith("/")) == [
        "silver/medical/other.pq/part-00000.parquet",
        "silver/medical/t.pq/.part-00001-new.snappy.parquet.crc",
        "silver/medical/t.pq/_SUCCESS",
        "silver/medical/t.pq/part-00000-new.snappy.parquet",
        "silver/medical/t.pq/part-00001-new.snappy.parquet",
    ]
    assert files.row_count(target) == 17
    assert not files.exists(staging)


#: Runs in a child process: the S3A jars join a JVM only when it starts (``spark.jars.packages``), and this
#: module's other tests already hold a JVM without them.
S3_ROUND_TRIP = """
import json, sys
from etl_pipeline.resources.spark import REPO_SPARK_DEFAULTS, SparkSessionResource, parse_spark_defaults
from etl_pipeline.spark_jars import s3a_packages
from etl_pipeline_tests.resources.test_spark_io_manager import round_trip
conf_file, access = sys.argv[1], json.loads(sys.argv[2])
spark = SparkSessionResource(master="local[2]", conf_file=conf_file, packages=s3a_packages(), **access)
print("REPORT " + json.dumps(round_trip(spark, "s3://warehouse", **access)))
"""


def test_round_trip_on_an_s3_lake_through_s3a_with_local_spark(s3: MotoS3, tmp_path: Path, spark_jars: Path) -> None:
    """Local Spark reads and writes ``s3a://`` on a real S3 server, with the jars Spark resolved itself
    (SPARK_JARS_IVY's cache, filled by ``covid-etl fetch-jars``)."""
    client = boto3.client("s3", endpoint_url=s3.endpoint_url, aws_access_key_id=s3.access_key,
                          aws_secret_access_key=s3.secret_key, region_name="us-east-1")
    client.create_bucket(Bucket="warehouse")
    conf = write_spark_defaults(tmp_path / "spark-defaults.conf",
                                {**parse_spark_defaults(REPO_SPARK_DEFAULTS.read_text()), **TEST_SPARK_CONF})
    access = {"s3_endpoint_url": s3.endpoint_url, "aws_access_key_id": s3.access_key,
              "aws_secret_access_key": s3.secret_key}
    child = subprocess.run([sys.executable, "-c", S3_ROUND_TRIP, str(conf), json.dumps(access)], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=600,
                           env={**os.environ, "SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable})
    assert child.returncode == 0, child.stdout + child.stderr[-4000:]
    [line] = [line for line in child.stdout.splitlines() if line.startswith("REPORT ")]
    assert_round_trip(json.loads(line.removeprefix("REPORT ")), "s3://warehouse")
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket="warehouse")["Contents"])
    assert "silver/medical/rt_cases.pq/_SUCCESS" in keys and "gold/medical/rt_country_totals.pq/_SUCCESS" in keys
    assert [k for k in keys if k.startswith("silver/medical/rt_cases.pq/part-") and k.endswith(".parquet")]
    assert not [k for k in keys if "__staging-" in k]  # the commit step moved everything into place


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory):
    server = ConnectServer(tmp_path_factory.mktemp("spark-connect"))
    try:
        server.start()
    except (OSError, RuntimeError, subprocess.CalledProcessError) as exc:
        unavailable(f"Spark Connect server could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.cluster
def test_round_trip_through_spark_connect(connect_server: ConnectServer, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    env = {**os.environ, "SPARK_LOCAL_IP": "127.0.0.1"}
    child = subprocess.run(
        [sys.executable, "-m", __name__, connect_server.url, lake_url],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert_round_trip(report, lake_url)
    assert report["session_type"] == "pyspark.sql.connect.session.SparkSession"


if __name__ == "__main__":
    # python -m etl_pipeline_tests.resources.test_spark_io_manager <master> <lake dir>: one JSON report line.
    master, lake = sys.argv[1], sys.argv[2]
    resource = SparkSessionResource(master=master)
    report = round_trip(resource, lake)
    session_class = type(resource.get_session())
    report["session_type"] = f"{session_class.__module__}.{session_class.__name__}"
    print(json.dumps(report))
