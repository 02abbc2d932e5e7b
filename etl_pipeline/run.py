"""``covid-etl run``: make sure the data and the source database are there, observe the source tables, then
materialize what is stale (everything on a first run or with ``--full-refresh``; nothing when no source table
changed, see :mod:`etl_pipeline.staleness`)."""

from __future__ import annotations

import contextlib
import shlex
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg
import sqlalchemy as sa

from etl_pipeline.assets.warehouse import PUBLISH_STEP
from etl_pipeline.core.engines import describe_url
from etl_pipeline.definitions import ALL_ASSETS_JOB, OBSERVE_JOB, build_definitions
from etl_pipeline.fetch import DATASET_FILES, default_base_url, fetch_data, missing_or_invalid
from etl_pipeline.preflight import check_servers
from etl_pipeline.run_lock import exclusive_run
from etl_pipeline.seed import needs_seed, seed_source
from etl_pipeline.settings import Settings
from etl_pipeline.staleness import run_selection, stale_assets

if TYPE_CHECKING:
    from dagster._utils.error import SerializableErrorInfo

#: Dagster's console log: by default only what would stop the process (the summary says what failed and why,
#: without tracebacks); ``--verbose``: every step's start, end and failure, tracebacks included.
QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}
VERBOSE = {"loggers": {"console": {"config": {"log_level": "DEBUG"}}}}  # Dagster logs step events at DEBUG
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
    """What ``covid-etl run`` prints: a line per layer, then what failed and why, and what was only warned about.

    ``failures`` are failed steps (``<step>: <error>``); ``failed_checks`` and ``warnings`` are checks that did
    not pass at ERROR and WARN severity (``<asset> <check>: <description>``, the description naming counts and
    first examples); ``not_run`` are the steps of the run that never started because a step or blocking check
    upstream failed; ``published`` tells whether the warehouse publication step succeeded (None: not in the run).
    """

    success: bool
    seeded: dict[str, int] | None
    layers: dict[str, LayerSummary] = field(default_factory=dict)
    wall_seconds: float = 0.0
    waited_seconds: float = 0.0
    failures: list[str] = field(default_factory=list)
    failed_checks: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)
    published: bool | None = None
    run_id: str | None = None
    #: ``{asset: why it was stale}`` of the assets the run was started for (their downstream assets ran too);
    #: None: a full refresh (or a first run) of everything; empty: everything was up to date, nothing ran.
    stale: dict[str, str] | None = None
    output: dict[str, str] = field(default_factory=dict)
    next_steps: list[str] = field(default_factory=list)

    def format(self) -> str:
        lines = []
        if self.seeded:
            lines.append("seeded the source database: " + ", ".join(f"{t} {n:,}" for t, n in self.seeded.items()))
        else:
            lines.append("source database already seeded from these files; not reloaded")
        if self.stale == {}:
            lines.append("up to date: no source table changed since the assets last read them and no blocking "
                         "check failed; nothing materialized (covid-etl run --full-refresh rebuilds everything)")
        elif self.stale:
            lines.append("stale: " + "; ".join(f"{asset} ({why})" for asset, why in self.stale.items())
                         + "; these and everything downstream materialized")
        header = f"{'layer':<10}{'assets':>7}{'rows':>12}{'checks ok':>10}{'warned':>8}{'failed':>8}{'seconds':>9}"
        if self.layers:
            lines += [header, "-" * len(header)]
        for name, s in self.layers.items():
            lines.append(f"{name:<10}{s.assets:>7}{s.rows:>12,}{s.checks_passed:>10}{s.checks_warned:>8}"
                         f"{s.checks_failed:>8}{s.seconds:>9.1f}" + ("" if s.assets else "  (nothing materialized)"))
        waited = f" (after {self.waited_seconds:.0f} s waiting for another run)" if self.waited_seconds >= 1 else ""
        lines.append(f"{'SUCCESS' if self.success else 'FAILED'} in {self.wall_seconds:.1f} s wall time{waited}")
        lines += [f"  failure: {f}" for f in self.failures]
        lines += [f"  failed check: {c}" for c in self.failed_checks]
        if self.not_run:
            lines.append(f"  not run (a step or blocking check upstream failed): {', '.join(self.not_run)}")
        if self.published is False:
            lines.append("  warehouse not published: every warehouse table keeps its previous content")
        lines += [f"  warned: {w}" for w in self.warnings]
        if self.output:
            lines.append("output:")
            lines += [f"  {name + ':':<13}{where}" for name, where in self.output.items()]
        if self.next_steps:
            lines.append("next:")
            lines += [f"  {step}" for step in self.next_steps]
        return "\n".join(lines)


def ensure_data(data_dir: Path, *, download: bool = True) -> None:
    """Make sure ``data_dir`` holds the four CSV files; download the published ones when ``download`` and none or
    only some are there.

    A directory holding all four files is used as it is: a snapshot of other dates is the user's data, not a
    corrupt download, and must never be replaced by the published files. Without ``download`` (a directory the
    user named: a typo must not become a new directory filled from the internet), a missing directory or file is
    a ``FileNotFoundError`` saying which.
    """
    present = [f for f in DATASET_FILES if (data_dir / f.name).exists()]
    if len(present) == len(DATASET_FILES):
        return
    missing = sorted(f.name for f in DATASET_FILES if f not in present)
    if not download:
        if not data_dir.is_dir():
            raise FileNotFoundError(f"--data-dir {data_dir}: no such directory")
        raise FileNotFoundError(f"--data-dir {data_dir} lacks {', '.join(missing)}; add them, or add --download to "
                                "download the published files into it")
    differing = sorted(set(f.name for f in present) & set(missing_or_invalid(data_dir)))
    if differing:
        raise FileNotFoundError(f"{data_dir} lacks {', '.join(missing)} but holds other data in "
                                f"{', '.join(differing)}; add the missing files or remove the others to download "
                                "the published ones")
    fetch_data(data_dir, base_url=default_base_url())


def run_history(settings: Settings) -> dg.DagsterInstance:
    """The Dagster instance that keeps the run's history: ``$DAGSTER_HOME`` (its ``dagster.yaml``, e.g. the
    deployment's Postgres storage), else ``$ETL_HOME/dagster`` (SQLite storage), so that ``dagster dev`` with that
    ``DAGSTER_HOME`` shows the run, its step logs, materializations and asset check results afterwards."""
    settings.dagster_home.mkdir(parents=True, exist_ok=True)
    config = settings.dagster_home / "dagster.yaml"
    if not config.exists():  # Dagster's defaults (SQLite storage here), said once instead of warned at every start
        config.write_text("# The Dagster instance of `covid-etl run`: Dagster's defaults, SQLite storage in this "
                          "directory.\n")
    return dg.DagsterInstance.from_config(str(settings.dagster_home))


def run_pipeline(settings: Settings, data_dir: Path | None = None, *, download: bool | None = None,
                 verbose: bool = False, full_refresh: bool = False,
                 instance: dg.DagsterInstance | None = None) -> RunSummary:
    """Check every server (:func:`~etl_pipeline.preflight.check_servers`), make sure the data is there, seed the
    source when the files changed, observe the source tables (``observe_sources_job``), then materialize the stale
    assets and everything downstream of them (:mod:`etl_pipeline.staleness`), or every asset if ``full_refresh``.

    ``data_dir``: the CSV files (default ``settings.covid_data_dir``); files are downloaded into the default
    directory when missing, into a named one only when ``download``. ``verbose``: Dagster's step logs (with
    tracebacks) on stderr; otherwise only the summary says what failed. Raises
    :class:`~etl_pipeline.preflight.PreflightError` before any work when a server is not usable.
    """
    started = time.perf_counter()
    download = data_dir is None if download is None else download
    data_dir = data_dir or settings.covid_data_dir
    with exclusive_run(settings.etl_home):
        locked = time.perf_counter()
        check_servers(settings)
        ensure_data(data_dir, download=download)
        needed = needs_seed(settings.source_db_url, data_dir)
        seeded = seed_source(settings.source_db_url, data_dir) if needed else None
        defs = build_definitions(settings)
        config = VERBOSE if verbose else QUIET
        with (run_history(settings) if instance is None else contextlib.nullcontext(instance)) as inst:
            observed = defs.resolve_job_def(OBSERVE_JOB).execute_in_process(instance=inst, raise_on_error=False,
                                                                            run_config=config)
            summary = summarize(observed, inst, seeded) if not observed.success else \
                _materialize(defs, inst, seeded, config, full_refresh=full_refresh)
    summary.wall_seconds, summary.waited_seconds = time.perf_counter() - locked, locked - started
    summary.output, summary.next_steps = output_locations(settings, summary.run_id, summary.success)
    return summary


def _materialize(defs: dg.Definitions, instance: dg.DagsterInstance, seeded: dict[str, int] | None, config: dict,
                 *, full_refresh: bool) -> RunSummary:
    """One run of ``covid19_etl_job`` over the stale assets (all of them if ``full_refresh`` or none was ever
    materialized); no run at all when nothing is stale."""
    stale = {} if full_refresh else stale_assets(defs, instance)
    first = bool(stale) and all(why == "never materialized" for why in stale.values())
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    if full_refresh or first:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=config)
    elif not stale:
        return RunSummary(success=True, seeded=seeded, stale={})
    else:
        result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=config,
                                        asset_selection=run_selection(defs, stale))
    summary = summarize(result, instance, seeded)
    summary.stale = None if full_refresh or first else {key.to_user_string(): why for key, why in stale.items()}
    return summary


def output_locations(settings: Settings, run_id: str | None, success: bool = True) -> tuple[dict[str, str], list[str]]:
    """Where a run's output landed (credentials redacted) and the commands that look at it; after a failed run only
    the Dagster UI, where the failed steps' logs are (the warehouse may not exist yet)."""
    lake = settings.lake_url if settings.lake_url.startswith("s3://") else str(Path(settings.lake_url).resolve())
    warehouse = describe_url(settings.warehouse_db_url)
    # The commands below read the configuration of their own environment: name what this run's environment changed.
    env = f"ETL_HOME={shlex.quote(str(settings.etl_home))} " if "ETL_HOME" in settings.from_environment else ""
    output = {
        "lake": lake + (f"  (Delta tables; versions: {env}covid-etl lake history gold.covid19_daily_stats)"
                        if success else ""),
        "warehouse": warehouse,
        "run history": f"{settings.dagster_home.resolve()}" + (f"  (run {run_id})" if run_id else ""),
    }
    url = sa.make_url(settings.warehouse_db_url)
    if url.get_backend_name() == "sqlite":
        query = f'sqlite3 {shlex.quote(url.database)} "SELECT COUNT(*) FROM covid19_daily_stats"'
    else:  # no password in the URL: psql asks for it (or reads PGPASSWORD)
        query = (f'psql "{url.set(drivername="postgresql", password=None).render_as_string()}"  (query the '
                 "warehouse)")
    same = ", with the same WAREHOUSE_DB_URL" if "WAREHOUSE_DB_URL" in settings.from_environment else ""
    runs = "this run, its checks" if run_id else "the earlier runs, their checks"  # none: nothing was stale
    ui = (f"DAGSTER_HOME={settings.dagster_home.resolve()} dg dev -h 127.0.0.1 -p 3000   ({runs} "
          "and step logs at http://127.0.0.1:3000)")
    if not success:
        return output, [ui]
    dashboard = f"{env}covid-etl dashboard   (the spread map and the study at http://127.0.0.1:8050{same})"
    return output, [dashboard, ui, query]


def summarize(result: dg.ExecuteInProcessResult, instance: dg.DagsterInstance, seeded: dict[str, int] | None) -> RunSummary:
    layers: dict[str, LayerSummary] = defaultdict(LayerSummary)
    failed_checks, warnings = [], []
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
        line = f"{evaluation.asset_key.to_user_string()} {evaluation.check_name}: {evaluation.description}"
        if evaluation.passed:
            s.checks_passed += 1
        elif evaluation.severity == dg.AssetCheckSeverity.WARN:
            s.checks_warned += 1
            warnings.append(line)
        else:
            s.checks_failed += 1
            failed_checks.append(line)
    for stats in instance.get_run_step_stats(result.run_id):
        if stats.step_key in step_layer and stats.end_time and stats.start_time:
            layers[step_layer[stats.step_key]].seconds += stats.end_time - stats.start_time
    failures = [
        f"{event.step_key}: {failure_message(event.step_failure_data.error) if event.step_failure_data.error else 'failed'}"
        for event in result.all_events
        if event.is_step_failure and not _failed_by_blocking_checks(event.step_failure_data.error)
    ]
    planned = [step.key for step in
               instance.get_execution_plan_snapshot(result.dagster_run.execution_plan_snapshot_id).steps]
    started = {event.step_key for event in result.all_events if event.event_type == dg.DagsterEventType.STEP_START}
    succeeded = {event.step_key for event in result.all_events if event.is_step_success}
    for key in planned:  # a layer whose steps all failed or never ran still gets its line
        layers[_step_layer(key)]
    ordered = {name: layers[name] for name in LAYERS if name in layers}
    return RunSummary(
        success=result.success and not failed_checks, seeded=seeded, layers=ordered, failures=failures,
        failed_checks=failed_checks, warnings=warnings, not_run=[key for key in planned if key not in started],
        published=PUBLISH_STEP in succeeded if PUBLISH_STEP in planned else None, run_id=result.run_id,
    )


def _step_layer(step_key: str) -> str:
    """``silver__medical__t`` and ``silver__medical__t_checks`` -> ``silver``; the publication step -> ``warehouse``."""
    return "warehouse" if step_key == PUBLISH_STEP else step_key.split("__")[0]


def _failed_by_blocking_checks(error: SerializableErrorInfo | None) -> bool:
    """A check step that failed only because a blocking check did not pass: the check's own line says why."""
    return error is not None and error.cls_name == "DagsterAssetCheckFailedError"


#: Dagster's own wrappers of the error that failed a step ("Exceeded max_retries of 2", "Error occurred while
#: handling output ..."): the error they wrap says what failed.
_DAGSTER_WRAPPERS = {"RetryRequestedFromPolicy", "DagsterExecutionStepExecutionError",
                     "DagsterExecutionHandleOutputError", "DagsterExecutionLoadInputError"}


def failure_message(error: SerializableErrorInfo) -> str:
    """The message of the error that failed a step; a ``dagster.Failure`` (raised with a message written for
    the user, e.g. by ``retry_only_transient``) without its qualified class name."""
    while error.cause is not None and error.cls_name in _DAGSTER_WRAPPERS:
        error = error.cause
    message = error.message.strip()
    if error.cls_name == dg.Failure.__name__:
        return message.removeprefix(f"{dg.Failure.__module__}.{dg.Failure.__name__}: ")
    return message
