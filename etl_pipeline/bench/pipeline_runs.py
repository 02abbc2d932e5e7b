"""The benchmarks that run the pipeline in child processes: end to end against the pandas floor, the Spark
layers with one shared session against a session per asset, and the pipeline on enlarged datasets.

Every pipeline child gets a fresh ``ETL_HOME`` under the bench's work directory (embedded mode: SQLite source
and warehouse, a lake directory, local Spark) and the bench's own ``XDG_CACHE_HOME``, where the first run
writes the JVM class archive that later runs start from (see ``resources/spark.py``). That first run is a
warm-up: its time is reported, not counted (in ``--quick`` mode there is none: the first repetition writes the
archive, and the median is taken over it and two warm runs).
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from etl_pipeline.bench.pipeline_child import LAYERS
from etl_pipeline.bench.processes import ChildRun, child_env, python_module, run_child
from etl_pipeline.bench.report import Result, Target
from etl_pipeline.bench.scale import scale_dataset, shrink_dataset
from etl_pipeline.bench.timing import Pair, interleaved
from etl_pipeline.core.source_schema import SOURCE_TABLES

MB = 2**20
#: The Dagster process's memory budget at 100x (the issue's acceptance criterion).
RSS_BUDGET_MB = 3 * 1024
CHILD_TIMEOUT_S = 3 * 3600
Progress = Callable[[str], None]
#: The pipeline children's engine: Apache Spark (``local[*]``) or Sail (the embedded default), named either way.
ENGINE_ENV: dict[str, dict[str, str]] = {"spark": {"SPARK_MASTER": "local[*]"}, "sail": {"SPARK_MASTER": "sail"}}


@dataclass
class PipelineRun:
    """One ``covid-etl run`` child: its process measurements and the step windows it recorded."""

    child: ChildRun
    record: dict
    home: Path

    @property
    def seconds(self) -> float:
        return self.child.seconds

    def gold_rows(self) -> int:
        return self.record["rows"].get("gold", 0)

    def phases(self) -> dict[str, dict[str, float]]:
        """Seconds and peak resident MB (Dagster process, and with the JVM) per phase of the run, in order:
        start-up and seeding, each layer (its assets and checks), then exit."""
        steps = self.record["steps"]
        windows: dict[str, list[tuple[float, float]]] = {
            "startup_and_seed": [(self.child.started_at, steps[0]["start"])]}
        for layer in LAYERS:
            if spans := [(s["start"], s["end"]) for s in steps if s["layer"] == layer]:
                windows[layer] = spans
        windows["exit"] = [(steps[-1]["end"], self.child.started_at + self.child.seconds)]
        phases = {}
        for name, spans in windows.items():
            peaks = [self.child.peaks_between(start, end) for start, end in spans]
            phases[name] = {"seconds": round(sum(end - start for start, end in spans), 2),
                            "peak_python_mb": round(max(p for p, _ in peaks) / MB),
                            "peak_tree_mb": round(max(t for _, t in peaks) / MB)}
        return phases


class Pipelines:
    """Runs pipeline children under one work directory, sharing one class-archive cache."""

    def __init__(self, work: Path, progress: Progress) -> None:
        self.work = work
        self.cache = work / "cache"
        self.progress = progress

    def home(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="etl-home-", dir=self.work))

    def env(self, home: Path, engine: str = "spark") -> dict[str, str]:
        """A child's environment; ``engine`` ``sail`` sets ``SPARK_MASTER=sail``, ``spark`` ``local[*]``."""
        return child_env(home, XDG_CACHE_HOME=str(self.cache), **ENGINE_ENV[engine])

    def run(self, data_dir: Path, home: Path | None = None, engine: str = "spark",
            history: bool = False) -> PipelineRun:
        """One ``covid-etl run`` child over ``data_dir`` in ``home`` (default: a fresh one); ``history``: the run
        keeps its Dagster history in the home, as ``covid-etl run`` does (see ``pipeline_child``)."""
        home = home or self.home()
        record = home / "bench-record.json"
        child = run_child(python_module("etl_pipeline.bench.pipeline_child", str(data_dir), str(record),
                                        *(["--history"] if history else [])),
                          self.env(home, engine), timeout=CHILD_TIMEOUT_S).check()
        run = PipelineRun(child, json.loads(record.read_text()), home)
        self.progress(f"covid-etl run over {data_dir.name} on {engine}: {run.seconds:.1f} s, "
                      f"{child.cpu_seconds:.1f} CPU s, "
                      f"peak RSS {child.peak_python_rss / MB:.0f} MB "
                      f"(with the engine {child.peak_tree_rss / MB:.0f} MB)")
        return run


def median_run(runs: list[PipelineRun]) -> PipelineRun:
    return sorted(runs, key=lambda r: r.seconds)[(len(runs) - 1) // 2]


def end_to_end(pipelines: Pipelines, data_dir: Path, repeat: int,
               warm_up: bool = True) -> tuple[Result, AgainstTheFloor]:
    """The result and the counted runs (with the floor's). With ``warm_up``, a first run that writes the JVM class
    archive is made and reported, not counted (without it, the first repetition writes the archive)."""
    result = Result("end_to_end", ours="covid-etl run on Apache Spark (local[*]), embedded mode, fresh ETL_HOME, "
                                       "child process",
                    baseline="the same work by a plain pandas script (etl_pipeline/bench/floor.py), child process",
                    ratio_kind="cost")
    first = pipelines.run(data_dir) if warm_up else None
    against = against_the_floor(pipelines, data_dir, repeat)
    typical = against.typical
    result.measured(against.pair, rows=typical.gold_rows(), target=Target("<=", 25))
    phases = typical.phases()
    result.details = {"first_run_s": round(first.seconds, 2) if first else None, "phases_of_median_run": phases,
                      "spark_session_start_s": typical.record["spark_start_s"], **against.details()}
    result.notes += [*against.notes(), dominating(phases, typical.record["spark_start_s"], against.pair)]
    if first:
        result.notes.insert(1, f"first run of the installation (writes the JVM class archive, not counted): "
                               f"{first.seconds:.1f} s")
    return result, against


@dataclass
class AgainstTheFloor:
    """Pipeline runs and pandas-floor runs over the same data, interleaved."""

    pair: Pair
    runs: list[PipelineRun]
    floors: list[ChildRun]

    @property
    def typical(self) -> PipelineRun:
        return median_run(self.runs)

    def details(self) -> dict[str, object]:
        floor_rows = sum(json.loads(self.floors[-1].stdout)["rows"].values())
        return {"cpu_s": {"ours": round(statistics.median(r.child.cpu_seconds for r in self.runs), 2),
                          "floor": round(statistics.median(f.cpu_seconds for f in self.floors), 2)},
                "gold_rows": {"ours": self.typical.gold_rows(), "floor": floor_rows},
                "peak_rss_floor_mb": round(max(f.peak_python_rss for f in self.floors) / MB)}

    def notes(self) -> list[str]:
        details = self.details()
        ours, floor = details["gold_rows"]["ours"], details["gold_rows"]["floor"]
        return [f"gold rows: ours {ours:,}, floor {floor:,}"
                + ("" if ours == floor else " (DIFFERENT: the floor is not doing the same work)"),
                f"CPU seconds (all processes): ours {details['cpu_s']['ours']}, floor {details['cpu_s']['floor']}; "
                f"peak RSS of the floor {details['peak_rss_floor_mb']:,} MB"]


def against_the_floor(pipelines: Pipelines, data_dir: Path, repeat: int, label: str = "") -> AgainstTheFloor:
    """``repeat`` pipeline runs and floor runs over ``data_dir``, alternating (ours first)."""
    runs: list[PipelineRun] = []
    floors: list[ChildRun] = []

    def ours() -> float:
        runs.append(pipelines.run(data_dir))
        return runs[-1].seconds

    def floor() -> float:
        floors.append(floor_run(pipelines, data_dir, label))
        return floors[-1].seconds

    return AgainstTheFloor(interleaved(ours, floor, repeat), runs, floors)


def dominating(phases: dict[str, dict[str, float]], spark_start_s: float | None, pair: Pair) -> str:
    """Where the time beyond the floor goes, largest first."""
    ranked = sorted(phases.items(), key=lambda item: -item[1]["seconds"])
    parts = [f"{name} {p['seconds']:.1f} s" for name, p in ranked]
    session = f" (the Spark session started in {spark_start_s:.1f} s of the first silver step)" if spark_start_s else ""
    return (f"what dominates the {pair.ours_s - pair.baseline_s:.1f} s above the floor (median run): "
            + ", ".join(parts) + session)


def spark_steps(pipelines: Pipelines, home: Path, repeat: int, tables: tuple[str, ...]) -> Result:
    what = f"the silver tables {', '.join(tables)}" if tables else "the 11 silver and gold assets (no checks)"
    result = Result("spark_steps", ours=f"{what}, in-process executor: one shared Spark session",
                    baseline=f"{what}, multiprocess executor: a process and a Spark session per asset (the original)",
                    ratio_kind="speedup")

    def materialize(executor: str) -> float:
        child = run_child(python_module("etl_pipeline.bench.spark_steps", executor, *tables), pipelines.env(home),
                          timeout=CHILD_TIMEOUT_S).check()
        pipelines.progress(f"Spark layers, {executor} executor: {child.seconds:.1f} s")
        return child.seconds

    pair = interleaved(lambda: materialize("in_process"), lambda: materialize("multiprocess"), repeat)
    result.notes.append("both sides start their JVMs with this project's options and class archive, so the "
                        "baseline is cheaper than the original's")
    return result.measured(pair, rows=None)


def floor_run(pipelines: Pipelines, data_dir: Path, label: str = "") -> ChildRun:
    """One run of the pandas floor (``etl_pipeline/bench/floor.py``) over ``data_dir`` in a child process."""
    out = pipelines.home()
    child = run_child(python_module("etl_pipeline.bench.floor", str(data_dir), str(out)), pipelines.env(out),
                      timeout=CHILD_TIMEOUT_S).check()
    pipelines.progress(f"pandas floor{label}: {child.seconds:.2f} s")
    return child


def scale(pipelines: Pipelines, source: Path, factor: int, one_x: list[PipelineRun],
          repeat: int, sail: bool = False) -> list[Result]:
    """``repeat`` runs over the enlarged dataset, against the end_to_end runs over the real one (not
    interleaved: the 1x runs were made before), and against the pandas floor over the same enlarged data
    (interleaved); with ``sail``, then Sail's runs over the same data (:func:`engines`). Peak memory is the
    highest of the runs."""
    result = Result(f"scale_{factor}x", ours=f"covid-etl run over the dataset enlarged {factor}x "
                    "(etl_pipeline/bench/scale.py)", baseline="covid-etl run over the real dataset "
                    "(the end_to_end runs)", ratio_kind="cost", interleaved=False)
    against_floor = Result(f"scale_{factor}x_floor", ours=f"covid-etl run over the dataset enlarged {factor}x",
                           baseline="the pandas floor (etl_pipeline/bench/floor.py) over the same data",
                           ratio_kind="cost")
    data = pipelines.work / f"data_{factor}x"
    shape = scale_dataset(source, data, factor)
    pipelines.progress(f"generated the {factor}x dataset ({shape.locations} x locations, {shape.epochs} x days)")
    against = against_the_floor(pipelines, data, repeat, f" at {factor}x")
    runs, typical = against.runs, against.typical
    against_floor.measured(against.pair, rows=typical.gold_rows(), target=Target("<=", 1.0))
    against_floor.details = against.details()
    against_floor.notes += against.notes()
    result.measured(Pair(against.pair.ours, [r.seconds for r in one_x]), rows=typical.gold_rows())
    phases, base = typical.phases(), median_run(one_x).phases()
    peak_python = round(max(r.child.peak_python_rss for r in runs) / MB)
    peak_tree = round(max(r.child.peak_tree_rss for r in runs) / MB)
    result.details = {
        "locations_factor": shape.locations, "days_factor": shape.epochs, "phases_of_median_run": phases,
        "growth_by_phase": {n: round(p["seconds"] / base[n]["seconds"], 2) for n, p in phases.items()
                            if base.get(n, {}).get("seconds")},
        "peak_rss_python_mb": peak_python, "peak_rss_with_jvm_mb": peak_tree,
        "rss_budget_mb": RSS_BUDGET_MB, "rss_budget_met": peak_python < RSS_BUDGET_MB,
        "cpu_s": against_floor.details["cpu_s"]["ours"],
    }
    result.notes.append(f"growth {result.ratio:.1f}x for {factor}x the data; peak RSS of the Dagster process "
                        f"{peak_python:,} MB ({'within' if peak_python < RSS_BUDGET_MB else 'OVER'} the "
                        f"{RSS_BUDGET_MB:,} MB budget), {peak_tree:,} MB with the Spark JVM")
    result.notes.append("phases of the median run:")
    result.notes += [f"{name:<17}{p['seconds']:>8.1f} s  peak {p['peak_python_mb']:>6,} MB  with JVM "
                     f"{p['peak_tree_mb']:>6,} MB" for name, p in phases.items()]
    if not sail:
        return [result, against_floor]
    return [result, against_floor, engines(pipelines, data, f"scale_{factor}x", runs, against.floors, repeat)]


def engines(pipelines: Pipelines, data_dir: Path, scale: str, spark_runs: list[PipelineRun], floors: list[ChildRun],
            repeat: int) -> Result:
    """Sail against Apache Spark over the same data: ``repeat`` Sail runs, against the Apache Spark runs made for
    ``scale`` (``end_to_end`` or ``scale_<N>x``) just before (not interleaved with them). The notes give Sail's
    ratio to the pandas floor runs of that benchmark too."""
    result = Result(f"sail_{scale}", ours=f"covid-etl run on Sail (SPARK_MASTER=sail), the data of {scale}",
                    baseline=f"the same on Apache Spark, local[*] (the {scale} runs)", ratio_kind="speedup",
                    interleaved=False)
    runs = [pipelines.run(data_dir, engine="sail") for _ in range(repeat)]
    typical, spark_rows = median_run(runs), median_run(spark_runs).gold_rows()
    if typical.gold_rows() != spark_rows:
        raise RuntimeError(f"{scale}: Sail wrote {typical.gold_rows():,} gold rows, Apache Spark {spark_rows:,}")
    result.measured(Pair([r.seconds for r in runs], [r.seconds for r in spark_runs]), rows=typical.gold_rows(),
                    target=Target(">=", 3.0) if scale == "end_to_end" else Target(">=", 1.0))
    floor_s = statistics.median(f.seconds for f in floors)
    peak, phases = round(max(r.child.peak_python_rss for r in runs) / MB), typical.phases()
    peak_tree = round(max(r.child.peak_tree_rss for r in runs) / MB)
    result.details = {"phases_of_median_run": phases, "floor_s": round(floor_s, 2),
                      "ratio_to_floor": round(result.ours_s / floor_s, 2), "peak_rss_mb": peak,
                      "peak_rss_with_server_mb": peak_tree,
                      "cpu_s": round(statistics.median(r.child.cpu_seconds for r in runs), 2)}
    result.notes.append(f"Sail against the pandas floor: {result.ours_s:.1f} s / {floor_s:.1f} s = "
                        f"{result.ours_s / floor_s:.2f}x; peak RSS of the Dagster process {peak:,} MB, "
                        f"{peak_tree:,} MB with the Sail server")
    result.notes += [f"{name:<17}{p['seconds']:>8.1f} s  peak {p['peak_python_mb']:>6,} MB  with Sail "
                     f"{p['peak_tree_mb']:>6,} MB" for name, p in phases.items()]
    return result


def incremental_day(pipelines: Pipelines, data_dir: Path, repeat: int, label: str = "") -> Result:
    """Taking in one new day, on Sail (the embedded default): a run over ``data_dir`` in a home that already holds
    a run over the same data without its last day, against a from-scratch run over ``data_dir``; interleaved,
    each incremental run in a fresh copy of that home. ``label``: the benchmark's suffix (``_100x``).

    The day before is :func:`~etl_pipeline.bench.scale.shrink_dataset` keeping every country and all days but the
    last (country-wise then holds each country's counts on that day, as a snapshot published that day would)."""
    result = Result(f"incremental_day{label}", ours="covid-etl run on Sail after one new day, in a home holding the "
                    "run over the days before (its Dagster history kept)",
                    baseline="covid-etl run on Sail over the same data, from scratch", ratio_kind="cost")
    days = len(pd.read_csv(data_dir / SOURCE_TABLES["covid19_time_series"].file_name, usecols=["Date"])
               ["Date"].unique())
    before = pipelines.work / f"{data_dir.name}_day_before"
    shrink_dataset(data_dir, before, every=1, days=days - 1)
    prepared = pipelines.run(before, engine="sail", history=True).home
    pipelines.progress(f"incremental_day{label}: the home over the first {days - 1} of {days} days is ready")
    runs: list[PipelineRun] = []

    def one_new_day() -> float:
        home = Path(shutil.copytree(prepared, pipelines.home() / "home", ignore=shutil.ignore_patterns("run.lock")))
        runs.append(pipelines.run(data_dir, home, engine="sail", history=True))
        return runs[-1].seconds

    def from_scratch() -> float:
        return pipelines.run(data_dir, engine="sail", history=True).seconds

    pair = interleaved(one_new_day, from_scratch, repeat)
    result.measured(pair, rows=median_run(runs).gold_rows(), target=Target("<=", 0.10) if label else None)
    result.notes.append(f"{days - 1} days, then day {days}: the incremental run re-seeds the source (the files "
                        "changed) and materializes what its staleness rule finds out of date")
    return result
