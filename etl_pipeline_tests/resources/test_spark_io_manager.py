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
import pytest
from deltalake import DeltaTable, write_deltalake
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DateType, LongType, StringType, StructField, StructType

from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.spark_conf import REPO_SPARK_DEFAULTS, parse_spark_defaults
from etl_pipeline.resources.delta_lake import open_table
from etl_pipeline.resources.spark_io_manager import SparkIOManager, markdown_table, read_version
from etl_pipeline.spark_jars import classpath_conf, delta_packages
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


def table_uri(lake_url: str, key: list[str]) -> str:
    return LakeResource(url=lake_url).table_uri(key)


def round_trip(spark: SparkSessionResource, lake: LakeResource) -> dict[str, Any]:
    """Materialize silver -> gold through the IO manager and report what landed in the lake (JSON-able)."""

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
        resources={"spark": spark, "io_manager": SparkIOManager(lake=lake, spark=spark)},
    )
    metadata = {
        asset.op.name.split("__")[-1]: result.asset_materializations_for_node(asset.op.name)[0].metadata
        for asset in (rt_cases, rt_country_totals)
    }
    gold = session.read.format("delta").load(lake.spark_uri(GOLD_KEY))
    silver = session.read.format("delta").load(lake.spark_uri(SILVER_KEY))
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
        "lake_entries": sorted(str(p.relative_to(lake.url)) for p in Path(lake.url).glob("*/medical/*")),
        "versions": {node: md["delta/version"].value for node, md in metadata.items()},
    }


def assert_round_trip(report: dict[str, Any], lake_url: str) -> None:
    assert report["success"]
    assert report["one_session"]
    assert report["row_counts"] == {"rt_cases": len(CASES), "rt_country_totals": len(expected_totals())}
    assert report["paths"] == {
        "rt_cases": table_uri(lake_url, SILVER_KEY), "rt_country_totals": table_uri(lake_url, GOLD_KEY)
    }
    assert report["gold_schema_metadata"] == [
        ["country_region", "string"], ["days", "bigint"], ["confirmed", "bigint"], ["last_date", "date"]
    ]
    assert report["silver_types"] == [["date", "date"], ["country_region", "string"], ["confirmed", "bigint"]]
    assert report["gold_rows"] == expected_totals()
    preview = report["silver_preview"].splitlines()
    assert preview[0] == "| date | country_region | confirmed |"
    assert len(preview) == 2 + 5
    assert report["versions"] == {"rt_cases": 0, "rt_country_totals": 0}
    if not lake_url.startswith("s3://"):
        assert report["lake_entries"] == ["gold/medical/rt_country_totals", "silver/medical/rt_cases"]
        assert (Path(lake_url) / "silver/medical/rt_cases/_delta_log/00000000000000000000.json").is_file()


@pytest.fixture(scope="module")
def spark_resource(tmp_path_factory: pytest.TempPathFactory, spark_engine: str,
                   engine_master: str) -> SparkSessionResource:
    """Apache Spark (local[2]) or Sail, per ``--spark-engine``."""
    conf = write_spark_defaults(tmp_path_factory.mktemp("spark") / "spark-defaults.conf", TEST_SPARK_CONF)
    return SparkSessionResource(master=engine_master, conf_file=str(conf), packages=delta_packages())


@pytest.mark.engines
def test_round_trip_on_a_local_lake(spark_resource: SparkSessionResource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    assert_round_trip(round_trip(spark_resource, LakeResource(url=lake_url)), lake_url)


@pytest.mark.engines
def test_reads_the_delta_table_delta_rs_writes_for_bronze(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["bronze", "medical", "covid19_time_series"]
    dates = [dt.date(2020, 1, 22), dt.date(2020, 2, 29), None, dt.date(2020, 7, 27)]
    deaths = [0, None, 12, 2**40]
    names = ["Afghanistan", "Réunion", "US", None]
    table = pa.table(
        {"date": pa.array(dates, pa.date32()), "deaths": pa.array(deaths, pa.int64()), "country": names}
    )
    lake = LakeResource(url=lake_url)
    write_deltalake(lake.table_uri(key), table)

    io_manager = SparkIOManager(lake=lake, spark=spark_resource)
    df = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))

    assert [(f.name, f.dataType, f.nullable) for f in df.schema.fields] == [
        ("date", DateType(), True), ("deaths", LongType(), True), ("country", StringType(), True)
    ]
    assert sorted((tuple(r) for r in df.collect()), key=repr) == sorted(zip(dates, deaths, names), key=repr)


@pytest.mark.engines
def test_plain_tables_are_read_as_their_parquet_files_and_others_through_delta(spark_resource, spark_engine: str,
                                                                              tmp_path: Path) -> None:
    """A table that needs nothing beyond Parquet is read as the files delta-rs lists for the version; a partitioned
    table, or one with deletion vectors (rows deleted without rewriting a file), through Delta Lake for Spark, at
    the same version."""
    spark = spark_resource.get_session()
    lake = LakeResource(url=str(tmp_path / "lake"))
    rows = [(day, country, day * 10) for day in range(1, 4) for country in ("A", "B")]
    df = spark.createDataFrame(rows, "day INT, country STRING, confirmed LONG")
    plain, partitioned, deleted = (lake.table_uri(["silver", "medical", name]) for name in ("plain", "parts", "dv"))
    df.write.format("delta").save(plain)
    df.write.format("delta").partitionBy("country").save(partitioned)
    (df.write.format("delta").option("delta.enableDeletionVectors", "true").save(deleted))
    spark.sql(f"DELETE FROM delta.`{deleted}` WHERE country = 'B'")  # version 1: a deletion vector, no rewrite

    def read(uri: str, version: int | None = None) -> tuple[list[str], list[tuple]]:
        frame = read_version(spark, open_table(uri, version=version), lake)
        return frame.columns, sorted(tuple(r) for r in frame.collect())

    assert read(plain) == (["day", "country", "confirmed"], sorted(rows))
    assert "Delta" not in spark_plan(read_version(spark, open_table(plain), lake))  # plain Parquet files
    if spark_engine == "sail":  # Sail's gap: its writer puts the partition columns last in the table's schema
        assert read(partitioned) == (["day", "confirmed", "country"], sorted((d, n, c) for d, c, n in rows))
    else:
        assert read(partitioned) == (["day", "country", "confirmed"], sorted(rows))
    assert read(deleted) == (["day", "country", "confirmed"], sorted(r for r in rows if r[1] == "A"))
    assert read(deleted, version=0) == (["day", "country", "confirmed"], sorted(rows))
    assert open_table(deleted).protocol().min_reader_version == 3  # the case the Parquet path must not take


def spark_plan(frame: DataFrame) -> str:
    """The query plan as text (a Connect DataFrame asks its server; a classic one its JVM)."""
    if hasattr(frame, "_explain_string"):
        return frame._explain_string(extended=True)
    return frame._jdf.queryExecution().toString()


def _write(io_manager: SparkIOManager, key: list[str], df: DataFrame) -> dg.OutputContext:
    context = dg.build_output_context(asset_key=dg.AssetKey(key))
    io_manager.handle_output(context, df)
    return context


def delta_log(lake: Path, relative: str) -> list[str]:
    return sorted(p.name for p in (lake / relative / "_delta_log").glob("*.json"))


@pytest.mark.engines
def test_a_failed_write_commits_nothing_and_keeps_the_previous_version(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["silver", "medical", "t"]
    session = spark_resource.get_session()
    io_manager = SparkIOManager(lake=LakeResource(url=lake_url), spark=spark_resource)
    _write(io_manager, key, session.range(0, 100, numPartitions=4))

    # Task 3 of 4 fails after the other tasks have written their data files.
    failing = session.range(0, 1000, numPartitions=4).select(
        F.when(F.col("id") == 900, F.raise_error(F.lit("boom at id 900"))).otherwise(F.col("id")).alias("id")
    )
    with pytest.raises(Exception, match="boom at id 900"):
        _write(io_manager, key, failing)

    previous = io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))
    assert sorted(r["id"] for r in previous.collect()) == list(range(100))
    assert delta_log(tmp_path / "lake", "silver/medical/t") == ["00000000000000000000.json"]
    assert DeltaTable(table_uri(lake_url, key)).version() == 0


@pytest.mark.engines
def test_row_count_and_version_metadata_are_exact_and_each_write_is_a_version(spark_resource, tmp_path: Path) -> None:
    lake_url = str(tmp_path / "lake")
    key = ["gold", "medical", "counted"]
    session = spark_resource.get_session()
    io_manager = SparkIOManager(lake=LakeResource(url=lake_url), spark=spark_resource)
    assert _write(io_manager, key, session.range(0, 5000, numPartitions=4)).get_logged_metadata()[
        "delta/version"].value == 0

    df = session.range(0, 12345, numPartitions=5).where("id % 7 <> 3")
    metadata = _write(io_manager, key, df).get_logged_metadata()
    expected = sum(1 for i in range(12345) if i % 7 != 3)
    assert metadata["dagster/row_count"].value == expected
    assert metadata["delta/version"].value == 1
    assert io_manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key))).count() == expected
    assert DeltaTable(table_uri(lake_url, key), version=0).to_pyarrow_table().num_rows == 5000  # still readable
    assert delta_log(tmp_path / "lake", "gold/medical/counted") == [
        "00000000000000000000.json", "00000000000000000001.json"]


@pytest.mark.engines
def test_a_reader_reads_the_silver_version_its_upstream_run_recorded(spark_resource, tmp_path: Path) -> None:
    """Silver is rewritten (a new Delta version) after the run that materialized it: gold, materialized later
    from that run's record, reads the recorded version, not the newest files."""
    lake_url = str(tmp_path / "lake")
    io_manager = SparkIOManager(lake=LakeResource(url=lake_url), spark=spark_resource)
    session = spark_resource.get_session()

    @dg.asset(key=SILVER_KEY)
    def rt_cases(spark: SparkSessionResource) -> DataFrame:
        return spark.get_session().range(0, 30)

    @dg.asset(key=GOLD_KEY, ins={"cases": dg.AssetIn(key=SILVER_KEY)})
    def rt_country_totals(cases: DataFrame) -> DataFrame:
        return cases.agg(F.count("*").alias("rows"))

    resources = {"spark": spark_resource, "io_manager": io_manager}
    with dg.DagsterInstance.ephemeral() as instance:
        dg.materialize([rt_cases], resources=resources, instance=instance)
        session.range(0, 7).write.format("delta").mode("overwrite").save(table_uri(lake_url, SILVER_KEY))
        dg.materialize([rt_cases, rt_country_totals], selection=[rt_country_totals], resources=resources,
                       instance=instance)
    gold = session.read.format("delta").load(table_uri(lake_url, GOLD_KEY)).collect()
    assert [r["rows"] for r in gold] == [30]
    assert DeltaTable(table_uri(lake_url, SILVER_KEY)).version() == 1  # the rewrite happened


@pytest.mark.engines
def test_rejects_what_is_not_a_spark_dataframe(spark_resource, tmp_path: Path) -> None:
    io_manager = SparkIOManager(lake=LakeResource(url=str(tmp_path / "lake")), spark=spark_resource)
    with pytest.raises(TypeError, match="silver/medical/x: SparkIOManager stores Spark DataFrames, got list"):
        _write(io_manager, ["silver", "medical", "x"], [1, 2])


def test_spark_paths() -> None:
    key = ["silver", "medical", "t"]
    assert LakeResource(url="s3://warehouse").spark_uri(key) == "s3a://warehouse/silver/medical/t"
    assert LakeResource(url="s3://warehouse/").table_uri(key) == "s3://warehouse/silver/medical/t"
    assert LakeResource(url="/data/lake").spark_uri(key) == "/data/lake/silver/medical/t"
    assert LakeResource(url="lake").spark_uri(key) == os.path.join(os.getcwd(), "lake/silver/medical/t")


def test_markdown_table_escapes_cells() -> None:
    assert markdown_table(["a", "b"], [(1, None), ("x|y", "two\nlines")]) == (
        "| a | b |\n| --- | --- |\n| 1 |  |\n| x\\|y | two lines |"
    )


#: Runs in a child process: the S3A jars join a JVM only when it starts (``spark.jars.packages``), and this
#: module's other tests already hold a JVM without them.
S3_ROUND_TRIP = """
import json, sys
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.spark_jars import project_packages
from etl_pipeline_tests.resources.test_spark_io_manager import round_trip
conf_file, access = sys.argv[1], json.loads(sys.argv[2])
lake = LakeResource(url="s3://warehouse", **access)
spark = SparkSessionResource(master="local[2]", conf_file=conf_file, packages=project_packages(), lake=lake)
print("REPORT " + json.dumps(round_trip(spark, lake)))
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
    for table in ("silver/medical/rt_cases", "gold/medical/rt_country_totals"):
        assert f"{table}/_delta_log/00000000000000000000.json" in keys
        assert [k for k in keys if k.startswith(f"{table}/part-") and k.endswith(".parquet")]


@pytest.fixture(scope="module")
def connect_server(tmp_path_factory: pytest.TempPathFactory, spark_jars: Path):
    """A Connect server holding Delta Lake (its jars from the cache on its class path, as the image's server)."""
    server = ConnectServer(tmp_path_factory.mktemp("spark-connect"), conf=classpath_conf(delta_packages(), spark_jars))
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
    resource = SparkSessionResource(master=master)  # the Connect server holds the Delta jars
    report = round_trip(resource, LakeResource(url=lake))
    session_class = type(resource.get_session())
    report["session_type"] = f"{session_class.__module__}.{session_class.__name__}"
    print(json.dumps(report))
