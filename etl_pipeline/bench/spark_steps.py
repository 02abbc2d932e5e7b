"""The Spark layers (silver and gold assets, without their checks) run once, with either executor.

``python -m etl_pipeline.bench.spark_steps in_process|multiprocess [TABLE ...]`` materializes the silver and
gold assets (or only the silver tables named) of ``$ETL_HOME``, whose bronze layer must exist:

- ``in_process``: every step in this process, sharing one Spark session (the project's way);
- ``multiprocess``: Dagster's default executor, each step in a process of its own with its own Spark session,
  JVM start included: how the original project ran its Spark assets.
"""

from __future__ import annotations

import sys
import tempfile

import dagster as dg

JOB = "bench_spark_layers"
EXECUTORS = {"in_process": dg.in_process_executor, "multiprocess": dg.multiprocess_executor}


def spark_layers_job(executor: str, tables: tuple[str, ...] = ()) -> dg.JobDefinition:
    from etl_pipeline.asset_keys import asset_key
    from etl_pipeline.definitions import build_definitions
    from etl_pipeline.settings import Settings

    if tables:
        selection = dg.AssetSelection.assets(*(asset_key("silver", t) for t in tables))
    else:
        selection = dg.AssetSelection.groups("silver", "gold")
    job = dg.define_asset_job(JOB, selection=selection.without_checks(), executor_def=EXECUTORS[executor])
    definitions = dg.Definitions.merge(build_definitions(Settings.from_env()), dg.Definitions(jobs=[job]))
    return definitions.resolve_job_def(JOB)


def main(argv: list[str]) -> int:
    executor, tables = argv[0], tuple(argv[1:])
    job = dg.build_reconstructable_job("etl_pipeline.bench.spark_steps", "spark_layers_job",
                                       reconstructable_args=(executor, tables))
    from etl_pipeline.run import QUIET

    with tempfile.TemporaryDirectory(prefix="bench-dagster-") as home, dg.DagsterInstance.local_temp(home) as instance:
        result = dg.execute_job(job, instance, run_config=QUIET)  # the multiprocess executor needs a real instance
        steps = len([e for e in result.all_events if e.is_step_success])
    print(f"{steps} steps succeeded" if result.success else "FAILED")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
