"""``covid-etl run`` leaves its Dagster history behind: a persistent instance under ``$ETL_HOME/dagster`` (or
``$DAGSTER_HOME``), which ``dagster dev`` with that ``DAGSTER_HOME`` shows afterwards.

Reads the session's embedded run (conftest's ``embedded_run``) back through Dagster's own instance API, the same
storage the Dagster UI reads.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import dagster as dg
import pytest

from etl_pipeline.definitions import ALL_ASSETS_JOB, build_definitions
from etl_pipeline.settings import Settings


@pytest.fixture(scope="module")
def history(embedded_run: tuple[Path, subprocess.CompletedProcess]):
    home = embedded_run[0]
    assert (home / "dagster" / "history" / "runs.db").is_file()  # SQLite run storage of a default instance
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        yield instance


def expected_keys() -> tuple[set[dg.AssetKey], set[dg.AssetCheckKey]]:
    """Every materializable asset and every asset check of the code location."""
    graph = build_definitions(Settings.from_env({})).resolve_asset_graph()
    return set(graph.materializable_asset_keys), set(graph.asset_check_keys)


def test_the_run_is_recorded_with_its_job_and_status(history: dg.DagsterInstance) -> None:
    [run] = history.get_runs(filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))
    assert run.job_name == ALL_ASSETS_JOB
    assert run.status == dg.DagsterRunStatus.SUCCESS
    steps = {stats.step_key: stats.status.value for stats in history.get_run_step_stats(run.run_id)}
    assert steps and set(steps.values()) == {"SUCCESS"}


def test_every_asset_materialization_is_recorded_with_its_metadata(history: dg.DagsterInstance) -> None:
    assets, _ = expected_keys()
    [run] = history.get_runs(filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))
    for key in assets:
        event = history.get_latest_materialization_event(key)
        assert event is not None and event.run_id == run.run_id, key.to_user_string()
        assert "dagster/row_count" in event.asset_materialization.metadata, key.to_user_string()


def test_every_asset_check_result_is_recorded_with_its_metadata(history: dg.DagsterInstance) -> None:
    _, checks = expected_keys()
    [run] = history.get_runs(filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))
    records = history.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION).records
    evaluations = {r.event_log_entry.dagster_event.asset_check_evaluation_data.asset_check_key: 
                   r.event_log_entry.dagster_event.asset_check_evaluation_data for r in records}
    assert set(evaluations) == checks
    with_metadata = [key for key, evaluation in evaluations.items() if evaluation.metadata]
    assert with_metadata, "checks record their counts and examples as metadata"


def test_step_logs_are_kept(history: dg.DagsterInstance) -> None:
    [run] = history.get_runs(filters=dg.RunsFilter(job_name=ALL_ASSETS_JOB))
    logs = history.all_logs(run.run_id)
    step_keys = {entry.step_key for entry in logs if entry.step_key}
    assert any(key.startswith("bronze__") for key in step_keys) and any(key.startswith("warehouse") for key in step_keys)
