"""Which assets a run must materialize to bring everything up to date, from Dagster's own records.

Dagster stores, with every materialization, the data version of each upstream asset it read
(``dagster/input_data_version/<key>`` tags), and with every source observation the source's data version (its
content fingerprint, see :mod:`etl_pipeline.assets.source`). An asset is **stale** when

- it was never materialized;
- an upstream asset's current data version is not the one its last materialization read (a source table changed,
  or an upstream asset was materialized again since); or
- a check of its last materialization at ERROR severity did not pass or never ran (a run that failed a blocking
  check must fail it again, not carry on downstream on the next run; a table restored by ``covid-etl lake
  restore`` is the exception: no run checked it, and it stays as restored).

A run materializes the stale assets and everything downstream of them (their inputs are about to change), and
whole multi-assets that cannot be subset (the warehouse publication). This is the rule of Dagster's "stale"
status, reduced to what this project uses; it does not see code changes (``covid-etl run --full-refresh``).
"""

from __future__ import annotations

import dagster as dg

#: Dagster's tags on a materialization: its data version, and (suffixed by an upstream key) the upstream's data
#: version it read.
DATA_VERSION_TAG = "dagster/data_version"
INPUT_DATA_VERSION_TAG = "dagster/input_data_version/"

def stale_assets(defs: dg.Definitions, instance: dg.DagsterInstance) -> dict[dg.AssetKey, str]:
    """``{asset key: why it is stale}`` for every stale materializable asset of ``defs`` (see the module docstring),
    in topological order; empty when everything is up to date."""
    graph = defs.resolve_asset_graph()
    stale: dict[dg.AssetKey, str] = {}
    for key in graph.toposorted_asset_keys:
        if key not in graph.materializable_asset_keys:
            continue
        reason = _why_stale(graph.get(key), instance)
        if reason:
            stale[key] = reason
    return stale


def _why_stale(node, instance: dg.DagsterInstance) -> str | None:
    record = instance.get_latest_data_version_record(node.key)
    if record is None:
        return "never materialized"
    read = record.event_log_entry.tags or {}
    for parent in sorted(node.parent_keys, key=lambda k: k.path):
        current = instance.get_latest_data_version_record(parent)
        version = (current.event_log_entry.tags or {}).get(DATA_VERSION_TAG) if current else None
        if read.get(INPUT_DATA_VERSION_TAG + parent.to_user_string()) != version:
            return f"{parent.to_user_string()} changed"
    restored = not record.event_log_entry.run_id  # reported by `covid-etl lake restore`, outside any run
    for check_key in sorted(node.check_keys, key=lambda k: k.name):
        check = instance.get_latest_asset_check_evaluation_record(check_key)
        # PLANNED, SKIPPED or EXECUTION_FAILED: the check's step never evaluated it
        evaluated = check is not None and check.status.value in ("SUCCEEDED", "FAILED") and check.event is not None
        evaluation = check.event.dagster_event.event_specific_data if evaluated else None
        target = evaluation.target_materialization_data if evaluation else None
        if evaluation is not None and not evaluation.passed and evaluation.severity == dg.AssetCheckSeverity.ERROR:
            return f"check {check_key.name} failed"
        if not restored and (target is None or target.storage_id != record.storage_id):
            return f"check {check_key.name} did not run on its last materialization"
    return None


def run_selection(defs: dg.Definitions, stale: dict[dg.AssetKey, str]) -> list[dg.AssetKey]:
    """The assets a run materializes: ``stale``, everything downstream of it, and the rest of any multi-asset that
    cannot be subset; sorted by key path."""
    if not stale:
        return []
    graph = defs.resolve_asset_graph()
    selected = set(dg.AssetSelection.assets(*stale).downstream().resolve(graph))
    selected &= set(graph.materializable_asset_keys)
    for key in list(selected):
        selected |= set(graph.get(key).execution_set_asset_keys)
    return sorted(selected, key=lambda k: k.path)
