"""Apache Spark and Sail: one pipeline, two engines, the same lake, warehouse and check outcomes.

Each engine runs ``covid-etl run`` in a child process (the embedded default, Sail, for Sail: conftest's
``embedded_run``; ``SPARK_MASTER=local[*]`` for Apache Spark), over the shared data and over a copy of it with
awkward values: NULLs, negative and decreasing counts, a province named with quotes, a comma and non-Latin
letters, and counts over 2**31. Then each engine reads the lake the other wrote. (These tests start both engines
themselves, so they run once, under the default ``--spark-engine``.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.spark_io_manager import read_version
from etl_pipeline_tests.conftest import REPO_ROOT, covid_etl, embedded_env, free_port, wait_for_port
from etl_pipeline_tests.test_seed import write_dataset
from etl_pipeline_tests.test_warehouse_end_to_end import content_digest
from etl_pipeline_tests.transforms.test_source_validation import read_rows, write_rows

AWKWARD_PROVINCE = 'Côte "Test", Ω-land'
OVER_INT32 = 3_000_000_000


def run(home: Path, data: Path, **env: str) -> subprocess.CompletedProcess:
    result = covid_etl("run", "--data-dir", str(data), env=embedded_env(home, **env))
    assert result.returncode == 0, f"covid-etl run failed:\n{result.stdout}\n{result.stderr}"
    return result


def outcome(result: subprocess.CompletedProcess) -> list[str]:
    """What a run's summary says, less its timings and paths: per layer, assets, rows and check counts; every
    warned or failed check with its description."""
    lines = result.stdout.splitlines()
    layers = [" ".join(line.split()[:6]) for line in lines if line.split()[:1] in (["bronze"], ["silver"],
                                                                                     ["gold"], ["warehouse"])]
    return layers + [line for line in lines if line.startswith(("  warned:", "  failed"))]


def lake_tables(home: Path) -> dict[str, Path]:
    return {f"{p.parent.parent.name}.{p.name}": p for p in sorted((home / "lake").glob("*/medical/*"))}


def sorted_frame(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(list(frame.columns)).reset_index(drop=True)


def columns(path: Path) -> list[tuple[str, str]]:
    """(name, type) of a Delta table's columns (nullability aside: Sail proves more columns NOT NULL)."""
    return [(f.name, str(f.type)) for f in DeltaTable(str(path)).schema().fields]


def assert_same_results(spark_home: Path, spark_run, sail_home: Path, sail_run) -> None:
    assert outcome(sail_run) == outcome(spark_run)
    assert (content_digest(f"sqlite:///{sail_home / 'warehouse.db'}")
            == content_digest(f"sqlite:///{spark_home / 'warehouse.db'}"))
    spark_lake, sail_lake = lake_tables(spark_home), lake_tables(sail_home)
    assert sail_lake.keys() == spark_lake.keys() and len(spark_lake) == 15
    for name, path in spark_lake.items():
        assert columns(sail_lake[name]) == columns(path), name
        pd.testing.assert_frame_equal(sorted_frame(DeltaTable(str(sail_lake[name])).to_pandas()),
                                      sorted_frame(DeltaTable(str(path)).to_pandas()), check_exact=True, obj=name)


@pytest.fixture(scope="module")
def spark_home(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, subprocess.CompletedProcess]:
    home = tmp_path_factory.mktemp("spark_run")
    return home, run(home, data_dir, SPARK_MASTER="local[*]")


@pytest.fixture(scope="module")
def sail_home(embedded_run) -> tuple[Path, subprocess.CompletedProcess]:
    """The session's embedded run: Sail, the default (``--spark-engine=spark`` does not run these tests)."""
    return embedded_run


def test_sail_builds_the_lake_and_warehouse_apache_spark_builds(spark_home, sail_home) -> None:
    (spark_dir, spark_run), (sail_dir, sail_run) = spark_home, sail_home
    assert "SUCCESS" in sail_run.stdout
    assert_same_results(spark_dir, spark_run, sail_dir, sail_run)


def awkward_dataset(data_dir: Path, out: Path) -> Path:
    """The shared data with awkward values, kept consistent across the files so that every blocking check passes:

    - Albania's positions in a province named :data:`AWKWARD_PROVINCE`, its Confirmed and Active counts raised by
      :data:`OVER_INT32` (time series, positions and country_wise alike);
    - Andorra's Recovered one lower from 2020-05-01 on (a cumulative count that decreases), and its
      "Deaths / 100 Cases" empty (NULL);
    - Angola's Deaths 3 lower on 2020-06-10 alone (a negative ``new_deaths``);
    - no population and no continent for Germany and Brazil, a negative NewCases for India (worldometer).
    """
    rows = {name: read_rows((data_dir / table.file_name).read_bytes()) for name, table in SOURCE_TABLES.items()}
    series, positions, country_wise, worldometer = (
        rows[f"covid19_{n}"] for n in ("time_series", "cases_position", "country_wise", "worldometer"))
    last_date = max(r[0] for r in series[1:])

    def cells(table: list[list[str]], column: str, **match: str):
        header = table[0]
        for row in table[1:]:
            if all(row[header.index(c.replace("_", "/"))] == v for c, v in match.items()):
                yield row, header.index(column)

    def add(country: str, column: str, amount: int, since: str = "", until: str = "9999") -> None:
        for table in (series, positions):
            for row, i in cells(table, column, Country_Region=country):
                if since <= row[table[0].index("Date")] <= until:
                    row[i] = str(int(row[i]) + amount)
        if since <= last_date <= until:
            for row, i in cells(country_wise, column, Country_Region=country):
                row[i] = str(int(row[i]) + amount)

    add("Albania", "Confirmed", OVER_INT32)
    add("Albania", "Active", OVER_INT32)
    add("Andorra", "Recovered", -1, since="2020-05-01")
    add("Angola", "Deaths", -3, since="2020-06-10", until="2020-06-10")
    for row, i in cells(positions, "Province/State", Country_Region="Albania"):
        row[i] = AWKWARD_PROVINCE
    for row, i in cells(country_wise, "Deaths / 100 Cases", Country_Region="Andorra"):
        row[i] = ""
    for country in ("Germany", "Brazil"):
        for column in ("Population", "Continent"):
            for row, i in cells(worldometer, column, Country_Region=country):
                row[i] = ""
    for row, i in cells(worldometer, "NewCases", Country_Region="India"):
        row[i] = "-5"
    return write_dataset(out, {name: write_rows(table) for name, table in rows.items()})


def test_awkward_values_give_the_same_results_on_both_engines(tmp_path: Path, data_dir: Path) -> None:
    data = awkward_dataset(data_dir, tmp_path / "data")
    spark_run, sail_run = run(tmp_path / "spark", data, SPARK_MASTER="local[*]"), run(tmp_path / "sail", data)
    assert "SUCCESS" in spark_run.stdout and "39 decreases in deaths (first: Angola on 2020-06-10: 4 -> 1)" in \
        spark_run.stdout
    assert_same_results(tmp_path / "spark", spark_run, tmp_path / "sail", sail_run)
    locations = DeltaTable(str(tmp_path / "sail" / "lake" / "gold" / "medical" / "fact_location_daily")).to_pandas()
    albania = locations[locations["country_region"] == "Albania"]
    assert set(albania["province_state"]) == {AWKWARD_PROVINCE}
    assert albania["confirmed"].max() == 4880 + OVER_INT32  # Albania's last count in the shared data, raised
    countries = DeltaTable(str(tmp_path / "sail" / "lake" / "gold" / "medical" / "dim_country")).to_pandas()
    assert countries.set_index("country_region").loc[["Germany", "Brazil"], "population"].isna().all()


#: A child process, a client of a Sail server (``sail://``), reads each lake table with the IO manager's reader and
#: writes it out as Parquet.
SAIL_READER = """
import sys
from pathlib import Path
import pyarrow.parquet as pq
from etl_pipeline.resources.delta_lake import open_table
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark import SparkSessionResource
from etl_pipeline.resources.spark_io_manager import read_version
master, lake, out = sys.argv[1], LakeResource(url=sys.argv[2]), Path(sys.argv[3])
spark = SparkSessionResource(master=master, lake=lake).get_session()
for name in sys.argv[4:]:
    layer, table = name.split(".")
    frame = read_version(spark, open_table(lake.table_uri([layer, "medical", table])), lake)
    pq.write_table(frame.toArrow(), out / f"{name}.parquet")
"""


def test_each_engine_reads_the_lake_the_other_wrote(spark_home, sail_home, tmp_path: Path) -> None:
    (spark_dir, _), (home, _) = spark_home, sail_home
    names, port = list(lake_tables(spark_dir)), free_port()
    server = subprocess.Popen([sys.executable, "-m", "pysail", "spark", "server", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port(port), "the Sail server did not listen"
        child = subprocess.run([sys.executable, "-c", SAIL_READER, f"sail://127.0.0.1:{port}", str(spark_dir / "lake"),
                                str(tmp_path), *names], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:  # its graceful shutdown is Sail's business, not this test's
            server.kill()
            server.wait()
    assert child.returncode == 0, child.stderr
    lake = LakeResource(url=str(home / "lake"))
    spark = SparkSessionResource(master="local[1]", lake=lake).get_session()
    for name, path in lake_tables(spark_dir).items():
        written_by_spark = sorted_frame(DeltaTable(str(path)).to_pandas())
        read_by_sail = sorted_frame(pq.read_table(tmp_path / f"{name}.parquet").to_pandas())
        pd.testing.assert_frame_equal(read_by_sail, written_by_spark, check_exact=True, obj=f"Sail reading {name}")
        sail_path = home / "lake" / path.relative_to(spark_dir / "lake")
        written_by_sail = sorted_frame(DeltaTable(str(sail_path)).to_pandas())
        for reader, frame in (("read_version", read_version(spark, DeltaTable(str(sail_path)), lake)),
                              ("Delta Lake for Spark", spark.read.format("delta").load(str(sail_path)))):
            pd.testing.assert_frame_equal(sorted_frame(frame.toPandas()), written_by_sail, check_exact=True,
                                          check_dtype=False, obj=f"Apache Spark ({reader}) reading {name}")


def test_the_lake_history_of_a_sail_run_names_its_run(sail_home) -> None:
    home, result = sail_home
    run_id = result.stdout.split("(run ")[1].split(")")[0]
    history = covid_etl("lake", "history", "gold.covid19_daily_stats", env=embedded_env(home))
    assert history.returncode == 0, history.stderr
    [entry] = [line for line in history.stdout.splitlines() if line.strip().startswith("0 ")]
    assert entry.split()[-2:] == ["35,156", run_id]
