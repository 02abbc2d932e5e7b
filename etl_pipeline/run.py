"""``covid-etl run``: make sure the data and the source database are there, then materialize everything once."""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from etl_pipeline.fetch import DATASET_FILES, default_base_url, fetch_data, missing_or_invalid
from etl_pipeline.run_lock import exclusive_run
from etl_pipeline.seed import needs_seed, seed_source
from etl_pipeline.settings import Settings

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

#: Dagster's per-event debug lines would bury the summary; warnings and errors still show.
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
LAYERS = ("source", "bronze", "silver", "gold", "warehouse")


@dataclass
class LayerSummary:
    assets: int = 0
    rows: int = 0
    seconds: float = 0.0
    checks_passed: int = 0
    checks_warned: int = 0
    checks_failed: int = 0


@dataclass
class RunSummary:
    success: bool
    seeded: dict[str, int] | None
    layers: dict[str, LayerSummary] = field(default_factory=dict)
    wall_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        if self.seeded:
            lines.append("seeded the source database: " + ", ".join(f"{t} {n:,}" for t, n in self.seeded.items()))
        else:
            lines.append("source database already seeded from these files; not reloaded")
        header = f"{'layer':<10}{'assets':>7}{'rows':>12}{'checks ok':>10}{'warned':>8}{'failed':>8}{'seconds':>9}"
        lines += [header, "-" * len(header)]
        for name, s in self.layers.items():
            lines.append(f"{name:<10}{s.assets:>7}{s.rows:>12,}{s.checks_passed:>10}{s.checks_warned:>8}"
                         f"{s.checks_failed:>8}{s.seconds:>9.1f}")
        lines.append(f"{'SUCCESS' if self.success else 'FAILED'} in {self.wall_seconds:.1f} s wall time")
        lines += [f"  failure: {f}" for f in self.failures]
        return "\n".join(lines)


def ensure_data(data_dir: Path) -> None:
    """Download the four CSV files into ``data_dir`` when none or only some of the published ones are there.

    A directory holding all four files is used as it is: a snapshot of other dates is the user's data, not a
    corrupt download, and must never be replaced by the published files.
    """
    present = [f for f in DATASET_FILES if (data_dir / f.name).exists()]
    if len(present) == len(DATASET_FILES):
        return
    differing = sorted(set(f.name for f in present) & set(missing_or_invalid(data_dir)))
    if differing:
        missing = sorted(f.name for f in DATASET_FILES if f not in present)
        raise FileNotFoundError(f"{data_dir} lacks {', '.join(missing)} but holds other data in "
                                f"{', '.join(differing)}; add the missing files or remove the others to download "
                                "the published ones")
    fetch_data(data_dir, base_url=default_base_url())


def run_pipeline(settings: Settings, data_dir: Path | None = None, *, instance: dg.DagsterInstance | None = None) -> RunSummary:
    started = time.perf_counter()
    data_dir = data_dir or settings.covid_data_dir
    with exclusive_run(settings.etl_home):
        ensure_data(data_dir)
        needed = needs_seed(settings.source_db_url, data_dir)
        seeded = seed_source(settings.source_db_url, data_dir) if needed else None
        job = build_definitions(settings).resolve_job_def(ALL_ASSETS_JOB)
        with (dg.DagsterInstance.ephemeral() if instance is None else contextlib.nullcontext(instance)) as inst:
            result = job.execute_in_process(instance=inst, raise_on_error=False, run_config=QUIET)
            summary = summarize(result, inst, seeded)
    summary.wall_seconds = time.perf_counter() - started
    return summary


def summarize(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, seeded: dict[str, int] | None) -> RunSummary:
    layers: dict[str, LayerSummary] = defaultdict(LayerSummary)
    step_layer: dict[str, str] = {}
    for event in result.get_asset_materialization_events():
        materialization = event.materialization
        layer = materialization.asset_key.path[0]
        step_layer[event.step_key] = layer
        layers[layer].assets += 1
        rows = materialization.metadata.get("dagster/row_count")
        layers[layer].rows += int(rows.value) if rows is not None else 0
    for evaluation in result.get_asset_check_evaluations():
        s = layers[evaluation.asset_key.path[0]]
        if evaluation.passed:
            s.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            s.checks_warned += 1
        else:
            s.checks_failed += 1
    for stats in instance.get_run_step_stats(result.run_id):
        if stats.step_key in step_layer and stats.end_time and stats.start_time:
            layers[step_layer[stats.step_key]].seconds += stats.end_time - stats.start_time
    failures = [
        f"{event.step_key}: {failure_message(event.step_failure_data.error) if event.step_failure_data.error else 'failed'}"
        for event in result.all_events
        if event.is_step_failure
    ]
    ordered = {name: layers[name] for name in LAYERS if name in layers}
    failed_checks = sum(s.checks_failed for s in ordered.values())
    return RunSummary(success=result.success and not failed_checks, seeded=seeded, layers=ordered, failures=failures)


#: Dagster's own wrappers of the error that failed a step ("Exceeded max_retries of 2", "Error occurred while
#: handling output ..."): the error they wrap says what failed.
_DAGSTER_WRAPPERS = {"RetryRequestedFromPolicy", "DagsterExecutionStepExecutionError",
                     "DagsterExecutionHandleOutputError", "DagsterExecutionLoadInputError"}


def failure_message(error: SerializableErrorInfo) -> str:
    while error.cause is not None and error.cls_name in _DAGSTER_WRAPPERS:
        error = error.cause
    return error.message.strip()
