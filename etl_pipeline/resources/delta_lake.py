"""What both lake IO managers and ``covid-etl lake`` need of a Delta table, through delta-rs (no JVM).

A lake table is a Delta table: Parquet data files plus a transaction log (``_delta_log/``). Every write is one
commit that creates the next log entry, so readers see one version or the next, never a mix; older versions
stay readable until VACUUM removes their files (:func:`vacuum`, after ``retention_hours``).

Each materialization records the version it committed as ``delta/version`` (:data:`VERSION_KEY`), and readers
load that version (:func:`recorded_version`), not "whatever is there now": a step reads exactly what its
upstream step produced even if the table was rewritten since.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

import dagster as dg
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

VERSION_KEY = "delta/version"
#: Commit metadata key holding the Dagster run id (Spark's ``userMetadata`` commit option; the same key for delta-rs).
RUN_ID_KEY = "userMetadata"
#: Default retention of files no version younger than this needs (Delta's own default, 7 days).
DEFAULT_RETENTION_HOURS = 168


def open_table(uri: str, storage_options: Mapping[str, str] | None = None, version: int | None = None) -> DeltaTable:
    """The Delta table at ``uri`` (``s3://...`` or a local path), at ``version`` or the latest.

    Raises ``FileNotFoundError`` naming ``uri`` when there is no Delta table there.
    """
    try:
        return DeltaTable(uri, version=version, storage_options=dict(storage_options or {}))
    except TableNotFoundError as exc:
        raise FileNotFoundError(f"no Delta table at {uri}: materialize it first") from exc


def commit_rows(commit: Mapping[str, Any]) -> int | None:
    """Rows a commit wrote, from its operation metrics (delta-rs: ``num_added_rows``; Spark: ``numOutputRows``)."""
    metrics = commit.get("operationMetrics") or {}
    for key in ("num_added_rows", "numOutputRows"):
        if key in metrics:
            return int(metrics[key])
    return None


def own_commit(table: DeltaTable, run_id: str | None, depth: int = 20) -> dict[str, Any]:
    """The newest commit among the table's last ``depth`` whose run id is ``run_id`` (the commit a writer just
    made, even if another writer committed after it); the latest commit when ``run_id`` is ``None`` (a write
    outside Dagster). Raises ``RuntimeError`` naming the run when none of them is the run's."""
    commits = table.history(1 if run_id is None else depth)
    for commit in commits:
        if run_id is None or commit.get(RUN_ID_KEY) == run_id:
            return commit
    raise RuntimeError(f"none of the last {len(commits)} commits of {table.table_uri} is run {run_id}'s")


def history(table: DeltaTable) -> list[dict[str, Any]]:
    """One row per version, newest first: version, time (UTC), operation, rows written, Dagster run id."""
    rows = []
    for commit in table.history():
        stamp = commit.get("timestamp")
        rows.append({
            "version": commit.get("version"),
            "time": dt.datetime.fromtimestamp(stamp / 1000, dt.timezone.utc) if stamp is not None else None,
            "operation": commit.get("operation"),
            "rows": commit_rows(commit),
            "run_id": commit.get(RUN_ID_KEY),
        })
    return rows


def vacuum(table: DeltaTable, retention_hours: int) -> list[str]:
    """Delete the data files no version younger than ``retention_hours`` references; returns them.

    ``retention_hours`` below Delta's 7-day default is allowed on purpose (a setting, ``LAKE_RETENTION_HOURS``):
    this lake has one writer per table at a time, so no long-running reader can still need those files.
    """
    return table.vacuum(retention_hours=retention_hours, enforce_retention_duration=False, dry_run=False)


def recorded_version(context: dg.InputContext) -> int | None:
    """The Delta version the upstream asset's materialization recorded: this run's materialization when the
    run produced one, else the latest the Dagster instance knows; ``None`` (read the latest version) when there
    is no instance or no record (a table written outside Dagster)."""
    try:
        instance = context.instance
        run_id = context.step_context.run_id
    except dg.DagsterInvariantViolationError:  # a context built outside a run
        return None
    if run_id:
        records = instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION).records
        for record in reversed(records):
            materialization = record.event_log_entry.asset_materialization
            if materialization and materialization.asset_key == context.asset_key:
                return _version_of(materialization)
    event = instance.get_latest_materialization_event(context.asset_key)
    return _version_of(event.asset_materialization) if event and event.asset_materialization else None


def _version_of(materialization: dg.AssetMaterialization) -> int | None:
    value = materialization.metadata.get(VERSION_KEY)
    return int(value.value) if value is not None else None
