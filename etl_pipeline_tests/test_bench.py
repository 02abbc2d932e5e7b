"""``covid-etl bench --quick``: the JSON record's shape, every ratio computed from two measured times, row counts
that match the data, and nothing left behind (temporary files, scratch databases). No time is asserted."""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from etl_pipeline.bench.pipeline_runs import Pipelines, incremental_day, scale
from etl_pipeline.bench.report import NAME_WIDTH
from etl_pipeline.bench.runner import BENCHMARKS
from etl_pipeline.bench.scale import Scale, scale_dataset, shrink_dataset
from etl_pipeline.bench.timing import interleaved
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline_tests.conftest import ABSENT_FROM_WORLDOMETER, REPO_ROOT, WORLDOMETER_NAMES, embedded_env

RESULT_KEYS = {"name", "ours", "baseline", "ratio_kind", "ours_s", "baseline_s", "ratio", "rows", "target", "met",
               "repetitions", "interleaved", "ours_runs", "baseline_runs", "skipped", "notes", "details"}


@pytest.fixture(scope="module")
def quick_bench(tmp_path_factory: pytest.TempPathFactory, data_dir: Path, mysql_server_url: str,
                postgres_server_url: str) -> dict:
    """One ``covid-etl bench --quick --repeat 1`` against the test servers, with its own temporary directory: the
    record's shape needs one repetition of each measurement (``test_repetitions_alternate_and_report_medians``
    covers the repetitions themselves); three took 11 minutes of the suite on a slow machine."""
    root = tmp_path_factory.mktemp("bench")
    temp = root / "tmp"
    temp.mkdir()
    record = root / "bench.json"
    env = embedded_env(root / "etl_home", SOURCE_DB_URL=mysql_server_url, WAREHOUSE_DB_URL=postgres_server_url,
                       TMPDIR=str(temp))
    process = subprocess.Popen([sys.executable, "-m", "etl_pipeline.cli", "bench", "--quick", "--repeat", "1",
                                "--data-dir", str(data_dir), "--json", str(record)], env=env, cwd=REPO_ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = process.communicate(timeout=1800)
    assert process.returncode == 0, f"covid-etl bench failed:\n{out}\n{err[-5000:]}"
    return {"json": json.loads(record.read_text()), "stdout": out, "temp": temp, "pid": process.pid}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """The quick mode's dataset, made again here."""
    directory = tmp_path_factory.mktemp("tiny")
    shrink_dataset(data_dir, directory)
    return directory


@pytest.fixture(scope="module")
def tiny(tiny_dir: Path) -> dict[str, pd.DataFrame]:
    """The quick mode's dataset read with plain pandas."""
    return {name: pd.read_csv(tiny_dir / t.file_name) for name, t in SOURCE_TABLES.items()}


def results(bench: dict) -> dict[str, dict]:
    return {r["name"]: r for r in bench["json"]["results"]}


def continents(countries: set[str], worldometer: pd.DataFrame) -> set[str]:
    """The continents of JHU countries, through the tests' own name map and worldometer's continents."""
    by_name = worldometer.assign(name=worldometer["Country/Region"].str.strip()).set_index("name")["Continent"]
    found = {ABSENT_FROM_WORLDOMETER.get(c) or by_name[WORLDOMETER_NAMES.get(c, c)] for c in countries}
    return {"Oceania" if c == "Australia/Oceania" else c for c in found}


def gold_rows(tables: dict[str, pd.DataFrame]) -> int:
    """Gold rows of a dataset: daily stats and the daily fact (one row per series row), one row per continent,
    country and day, one row per position row."""
    series, positions = tables["covid19_time_series"], tables["covid19_cases_position"]
    countries = set(series["Country/Region"])
    return 2 * len(series) + len(continents(countries, tables["covid19_worldometer"])) + len(countries) \
        + series["Date"].nunique() + len(positions)


def test_every_benchmark_is_reported_with_the_same_fields(quick_bench: dict) -> None:
    assert [r["name"] for r in quick_bench["json"]["results"]] == [
        "warehouse_load", "source_load", "source_extract", "end_to_end", "sail_end_to_end", "spark_steps",
        "scale_10x", "scale_10x_floor", "sail_scale_10x", "scale_100x", "scale_100x_floor", "sail_scale_100x",
        "incremental_day", "incremental_day_100x"]
    assert set(BENCHMARKS) <= {r["name"] for r in quick_bench["json"]["results"]}
    assert all(set(r) == RESULT_KEYS for r in quick_bench["json"]["results"])
    assert {"cores", "memory_gb", "cpu", "python", "java", "pyspark", "load_average_at_start",
            "load_average_at_end"} <= set(quick_bench["json"]["machine"])
    assert quick_bench["json"]["machine"]["quick"] is True


def test_only_the_scale_and_incremental_runs_are_skipped_in_quick_mode_and_say_so(quick_bench: dict) -> None:
    skipped = {name: r["skipped"] for name, r in results(quick_bench).items() if r["skipped"]}
    assert skipped == {name: "not run with --quick"
                       for name in ("scale_10x", "scale_10x_floor", "sail_scale_10x", "scale_100x",
                                    "scale_100x_floor", "sail_scale_100x", "incremental_day", "incremental_day_100x")}
    for name in skipped:
        assert f"{name:<{NAME_WIDTH}}skipped: not run with --quick" in quick_bench["stdout"]


def test_every_ratio_is_computed_from_two_measured_medians(quick_bench: dict) -> None:
    for name, r in results(quick_bench).items():
        if r["skipped"]:
            assert r["ratio"] is None and r["ours_runs"] == r["baseline_runs"] == []
            continue
        assert r["repetitions"] == len(r["ours_runs"]) == len(r["baseline_runs"]) == 1, name
        assert all(t > 0 for t in r["ours_runs"] + r["baseline_runs"]), name
        assert r["ours_s"] == pytest.approx(statistics.median(r["ours_runs"]), abs=1e-3), name
        assert r["baseline_s"] == pytest.approx(statistics.median(r["baseline_runs"]), abs=1e-3), name
        expected = (r["baseline_s"] / r["ours_s"]) if r["ratio_kind"] == "speedup" else (r["ours_s"] / r["baseline_s"])
        assert r["ratio"] == pytest.approx(expected, rel=1e-3), name
        if r["target"] is not None:
            op, value = r["target"].split()
            assert r["met"] == (r["ratio"] >= float(value) if op == ">=" else r["ratio"] <= float(value)), name
        assert f"{name:<{NAME_WIDTH}}{r['ours_s']:>10.3f}{r['baseline_s']:>12.3f}{r['ratio']:>8.2f}x" in quick_bench["stdout"]


def test_repetitions_alternate_and_report_medians() -> None:
    """ours, baseline, ours, baseline, ... each preceded by ``before_each``; a measured callable may report its own
    seconds; the pair's figures are the medians."""
    calls: list[str] = []
    ours_s, baseline_s = iter([3.0, 1.0, 2.0]), iter([10.0, 30.0, 20.0])
    pair = interleaved(lambda: calls.append("ours") or next(ours_s),
                       lambda: calls.append("baseline") or next(baseline_s), 3,
                       before_each=lambda: calls.append("reset"))
    assert calls == ["reset", "ours", "reset", "baseline"] * 3
    assert (pair.ours, pair.baseline) == ([3.0, 1.0, 2.0], [10.0, 30.0, 20.0])
    assert (pair.ours_s, pair.baseline_s) == (2.0, 20.0)
    assert interleaved(lambda: None, lambda: None, 1).ours[0] >= 0  # None: the callable's wall time
    with pytest.raises(ValueError, match="repeat must be at least 1"):
        interleaved(lambda: 1.0, lambda: 1.0, 0)


def test_the_targets_are_those_of_the_issue(quick_bench: dict) -> None:
    targets = {name: (r["ratio_kind"], r["target"]) for name, r in results(quick_bench).items()}
    assert targets["warehouse_load"] == ("speedup", ">= 10")
    assert targets["source_load"] == ("speedup", ">= 5")
    assert targets["end_to_end"] == ("cost", "<= 25")
    assert targets["sail_end_to_end"] == ("speedup", ">= 3")  # issue 20: Sail the default only if 3x faster


def test_rows_are_those_of_the_quick_dataset(quick_bench: dict, tiny: dict[str, pd.DataFrame]) -> None:
    r = results(quick_bench)
    series = tiny["covid19_time_series"]
    assert r["warehouse_load"]["rows"] == len(series)
    assert r["source_load"]["rows"] == r["source_extract"]["rows"] == sum(len(t) for t in tiny.values())
    assert f"ours {len(series):,}, baseline {len(series):,}" in r["warehouse_load"]["notes"][0]
    expected_gold = gold_rows(tiny)  # the pipeline's and the pandas floor's counts agree
    assert r["end_to_end"]["details"]["gold_rows"] == {"ours": expected_gold, "floor": expected_gold}
    assert r["end_to_end"]["rows"] == r["sail_end_to_end"]["rows"] == expected_gold


def test_nothing_is_left_behind(quick_bench: dict, mysql_server_url: str, postgres_server_url: str) -> None:
    assert list(quick_bench["temp"].iterdir()) == []
    prefix = f"covid_etl_bench_{quick_bench['pid']}_"
    mysql = sa.create_engine(mysql_server_url)
    postgres = sa.create_engine(f"{postgres_server_url}/postgres")
    try:
        with mysql.connect() as conn:
            assert conn.execute(sa.text("SHOW DATABASES LIKE :p"), {"p": prefix + "%"}).fetchall() == []
        with postgres.connect() as conn:
            assert conn.execute(sa.text("SELECT datname FROM pg_database WHERE datname LIKE :p"),
                                {"p": prefix + "%"}).fetchall() == []
    finally:
        mysql.dispose()
        postgres.dispose()


# -- the scale generator (not run by --quick) ------------------------------------------------------------------
def test_the_scale_generator_keeps_the_invariants(tmp_path: Path, data_dir: Path) -> None:
    """10x = 2 x locations, 5 x days: positions still sum to the series per (date, country), country_wise is the
    series on its last date, and each location's counts are split exactly between its parts."""
    shape = scale_dataset(data_dir, tmp_path, 10)
    assert shape == Scale(10, locations=2, epochs=5)
    source = {name: pd.read_csv(data_dir / t.file_name, keep_default_na=False) for name, t in SOURCE_TABLES.items()}
    scaled = {name: pd.read_csv(tmp_path / t.file_name, keep_default_na=False) for name, t in SOURCE_TABLES.items()}
    counts = ["Confirmed", "Deaths", "Recovered", "Active"]
    series, positions = scaled["covid19_time_series"], scaled["covid19_cases_position"]
    assert len(series) == 5 * len(source["covid19_time_series"])
    assert len(positions) == 10 * len(source["covid19_cases_position"])
    assert series["Date"].nunique() == 5 * source["covid19_time_series"]["Date"].nunique()
    assert not positions.duplicated(["Date", "Country/Region", "Province/State"]).any()
    sums = positions.groupby(["Date", "Country/Region"])[counts].sum().sort_index()
    pd.testing.assert_frame_equal(sums, series.set_index(["Date", "Country/Region"])[counts].sort_index())
    last = series[series["Date"] == series["Date"].max()].set_index("Country/Region")[counts].sort_index()
    wise = scaled["covid19_country_wise"].set_index("Country/Region")[counts].sort_index()
    pd.testing.assert_frame_equal(wise, last)
    original = source["covid19_country_wise"].set_index("Country/Region")[counts].sort_index()
    pd.testing.assert_frame_equal(wise, 5 * original)  # five full series: five times the last counts
    assert set(series["Country/Region"]) == set(source["covid19_time_series"]["Country/Region"])
    assert scaled["covid19_worldometer"].equals(source["covid19_worldometer"])


def test_a_scale_run_reports_growth_and_memory_per_phase(tmp_path: Path, tiny_dir: Path) -> None:
    """The scale benchmark's own code on the quick dataset enlarged 4x (2 x locations, 2 x days), one run each."""
    pipelines = Pipelines(tmp_path, progress=lambda message: None)
    one_x = pipelines.run(tiny_dir)
    result, against_floor = scale(pipelines, tiny_dir, 4, [one_x], repeat=1)

    enlarged = {name: pd.read_csv(tmp_path / "data_4x" / t.file_name) for name, t in SOURCE_TABLES.items()}
    assert result.rows == gold_rows(enlarged) > gold_rows(
        {name: pd.read_csv(tiny_dir / t.file_name) for name, t in SOURCE_TABLES.items()})
    assert result.ours_runs == [result.ours_s] and result.baseline_runs == [pytest.approx(one_x.seconds, abs=1e-5)]
    assert result.ratio == pytest.approx(result.ours_s / one_x.seconds, rel=1e-3)
    assert not result.interleaved and result.repetitions == 1
    details = result.details
    assert (details["locations_factor"], details["days_factor"]) == (2, 2)
    assert list(details["phases_of_median_run"]) == ["startup_and_seed", "bronze", "silver", "gold", "warehouse",
                                                     "exit"]
    assert set(details["growth_by_phase"]) == set(details["phases_of_median_run"])
    assert 0 < details["peak_rss_python_mb"] <= details["peak_rss_with_jvm_mb"]
    assert details["rss_budget_met"] == (details["peak_rss_python_mb"] < 3 * 1024)
    # the same runs against the pandas floor over the same enlarged data, interleaved, target <= 1.0
    assert (against_floor.name, against_floor.interleaved, against_floor.target) == ("scale_4x_floor", True, "<= 1")
    assert against_floor.ours_runs == result.ours_runs and len(against_floor.baseline_runs) == 1
    assert against_floor.ratio == pytest.approx(result.ours_s / against_floor.baseline_s, rel=1e-3)
    assert against_floor.details["gold_rows"] == {"ours": result.rows, "floor": result.rows}


def test_taking_in_one_new_day_is_timed_against_a_run_from_scratch(tmp_path: Path, tiny_dir: Path,
                                                                   tiny: dict[str, pd.DataFrame]) -> None:
    """The incremental_day benchmark's own code on the quick dataset, once: a home over its first 29 days, then
    day 30 taken in, against a run over the 30 days from scratch."""
    pipelines = Pipelines(tmp_path, progress=lambda message: None)
    result = incremental_day(pipelines, tiny_dir, repeat=1)

    before = {name: pd.read_csv(tmp_path / f"{tiny_dir.name}_day_before" / t.file_name)
              for name, t in SOURCE_TABLES.items()}
    assert before["covid19_time_series"]["Date"].nunique() == 29
    assert set(before["covid19_time_series"]["Date"]) < set(tiny["covid19_time_series"]["Date"])
    assert result.rows == gold_rows(tiny)  # the incremental run ends with the gold tables of all 30 days
    assert (result.name, result.ratio_kind, result.interleaved, result.repetitions) == (
        "incremental_day", "cost", True, 1)
    assert result.ratio == pytest.approx(result.ours_s / result.baseline_s, rel=1e-3)
    assert result.notes[0].startswith("29 days, then day 30: ")
