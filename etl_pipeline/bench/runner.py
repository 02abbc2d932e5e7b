"""``covid-etl bench``: every benchmark in one run, a table on stdout, optionally the JSON record.

Everything the bench writes (datasets, ETL_HOMEs, lakes, the JVM class archive, Dagster instances) lives in
one temporary directory, removed at the end; the database benchmarks create and drop their own databases.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from etl_pipeline.bench import loads, pipeline_runs
from etl_pipeline.bench.report import Result, format_table, machine, write_json
from etl_pipeline.bench.scale import scale_dataset, shrink_dataset

BENCHMARKS = ("warehouse_load", "source_load", "source_extract", "end_to_end", "spark_steps", "scale_10x",
              "scale_100x", "sail_end_to_end", "sail_scale_10x", "sail_scale_100x", "incremental_day",
              "incremental_day_100x")
SCALES = {"scale_10x": 10, "scale_100x": 100}
#: Taking in one new day (issue 15), on the real data and on the 100x one; not run with --quick (the test suite runs
#: the same code once on the quick dataset).
INCREMENTAL = {"incremental_day": 1, "incremental_day_100x": 100}
#: In --quick mode the Spark-steps benchmark materializes only these two small silver tables.
QUICK_SPARK_TABLES = ("covid19_country_wise", "covid19_worldometer")


@dataclass(frozen=True)
class BenchOptions:
    data_dir: Path
    source_db_url: str  # the database benchmarks run on this server when it is MySQL ...
    warehouse_db_url: str  # ... and on this one when it is PostgreSQL
    quick: bool = False
    repeat: int = 3
    only: tuple[str, ...] = ()  # empty: every benchmark
    json_path: Path | None = None


def progress(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


def run_bench(options: BenchOptions) -> list[Result]:
    unknown = sorted(set(options.only) - set(BENCHMARKS))
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; choose from {', '.join(BENCHMARKS)}")
    machine_info = machine()
    work = Path(tempfile.mkdtemp(prefix="covid-etl-bench-"))
    try:
        results = _run(options, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(format_table(results))
    if options.json_path:
        write_json(options.json_path, results, {**machine_info, "quick": options.quick, "repeat": options.repeat})
    return results


def _run(options: BenchOptions, work: Path) -> list[Result]:
    data = options.data_dir
    if options.quick:
        data = work / "tiny"
        shrink_dataset(options.data_dir, data)
        progress("quick mode: a tiny dataset (every 10th country, 30 days); no scale runs")
    wanted = set(options.only or BENCHMARKS)
    results: list[Result] = []
    if "warehouse_load" in wanted:
        progress("warehouse_load")
        results.append(loads.warehouse_load(options.warehouse_db_url, data, options.repeat))
    if wanted & {"source_load", "source_extract"}:
        progress("source_load and source_extract")
        results += [r for r in loads.source_load_and_extract(options.source_db_url, data, options.repeat)
                    if r.name in wanted]
    pipelines = pipeline_runs.Pipelines(work, progress)
    one_x_runs: list[pipeline_runs.PipelineRun] = []
    if wanted & {"end_to_end", "spark_steps", "sail_end_to_end", *SCALES, *(f"sail_{n}" for n in SCALES)}:
        progress("end_to_end")
        end_to_end, one_x = pipeline_runs.end_to_end(pipelines, data, options.repeat, warm_up=not options.quick)
        one_x_runs = one_x.runs
        if "end_to_end" in wanted:
            results.append(end_to_end)
        if "sail_end_to_end" in wanted:
            progress("sail_end_to_end: the same data on Sail")
            results.append(pipeline_runs.engines(pipelines, data, "end_to_end", one_x.runs, one_x.floors,
                                                 options.repeat))
    if "spark_steps" in wanted:
        progress("spark_steps")
        tables = QUICK_SPARK_TABLES if options.quick else ()
        results.append(pipeline_runs.spark_steps(pipelines, one_x_runs[0].home, options.repeat, tables))
    for name, factor in SCALES.items():
        sail = f"sail_{name}" in wanted
        if name not in wanted and not sail:
            continue
        if options.quick:
            results += [Result(name, ours=f"covid-etl run over {factor}x the data", baseline="the 1x run",
                               ratio_kind="cost").skip("not run with --quick"),
                        Result(f"{name}_floor", ours=f"covid-etl run over {factor}x the data",
                               baseline="the pandas floor over the same data", ratio_kind="cost"
                               ).skip("not run with --quick")]
            if sail:
                results.append(Result(f"sail_{name}", ours=f"covid-etl run on Sail over {factor}x the data",
                                      baseline="the same on Apache Spark", ratio_kind="speedup"
                                      ).skip("not run with --quick"))
            continue
        progress(f"{name}: generating and running ours and the pandas floor, interleaved (this takes a while)")
        results += pipeline_runs.scale(pipelines, options.data_dir, factor, one_x_runs, options.repeat, sail)
    for name, factor in INCREMENTAL.items():
        if name not in wanted:
            continue
        if options.quick:
            results.append(Result(name, ours=f"covid-etl run after one new day, {factor}x the data",
                                  baseline="the same from scratch", ratio_kind="cost").skip("not run with --quick"))
            continue
        progress(f"{name}: a home over all days but the last, then the last day in, against from scratch")
        dataset = data if factor == 1 else pipelines.work / f"data_{factor}x"  # made by scale_<factor>x if it ran
        if not dataset.exists():
            scale_dataset(options.data_dir, dataset, factor)
        label = name.removeprefix("incremental_day")
        results.append(pipeline_runs.incremental_day(pipelines, dataset, options.repeat, label))
    return results
