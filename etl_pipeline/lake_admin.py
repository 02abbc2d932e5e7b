"""``covid-etl lake``: a lake table's Delta history, and rolling it back to an earlier version (delta-rs, no JVM)."""

from __future__ import annotations

import dagster as dg

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.staleness import DATA_VERSION_TAG, INPUT_DATA_VERSION_TAG
from etl_pipeline.resources.delta_lake import VERSION_KEY, history, open_table
from etl_pipeline.resources.lake import LakeResource, lake_from_settings
from etl_pipeline.settings import Settings

LAYERS = ("bronze", "silver", "gold")


def table_key(name: str) -> dg.AssetKey:
    """``<layer>.<table>`` (e.g. ``silver.covid19_time_series``) -> the asset's key.

    Raises ``ValueError`` for a name that is not ``<layer>.<table>`` with a lake layer.
    """
    layer, dot, table = name.partition(".")
    if not dot or layer not in LAYERS or not table or "/" in table:
        raise ValueError(f"expected <layer>.<table> with layer one of {', '.join(LAYERS)}, got {name!r}")
    return asset_key(layer, table)


def table_uri(lake: LakeResource, name: str) -> str:
    """The Delta table's URI in the lake for ``<layer>.<table>`` (errors: :func:`table_key`)."""
    return lake.table_uri(table_key(name).path)


def format_history(settings: Settings, name: str) -> str:
    """The table's versions, newest first: version, time (UTC), operation, rows written, Dagster run id."""
    lake = lake_from_settings(settings)
    uri = table_uri(lake, name)
    rows = history(open_table(uri, lake.storage_options()))
    width = max([len("operation"), *(len(row["operation"] or "-") for row in rows)])  # e.g. CREATE OR REPLACE TABLE
    lines = [f"{name} ({uri})", f"{'version':>7}  {'time (UTC)':<19}  {'operation':<{width}}  {'rows':>12}  run id"]
    for row in rows:
        time = row["time"].strftime("%Y-%m-%d %H:%M:%S") if row["time"] else "-"
        count = f"{row['rows']:,}" if row["rows"] is not None else "-"
        lines.append(f"{row['version']:>7}  {time:<19}  {row['operation'] or '-':<{width}}  {count:>12}  "
                     f"{row['run_id'] or '-'}")
    return "\n".join(lines)


def restore(settings: Settings, name: str, version: int) -> int:
    """Make ``version`` the table's content again, as a new commit (history is kept), and record it in the run
    history as a materialization of the asset with that new ``delta/version``, so that the steps downstream read
    the restored version; returns the new version.

    The recorded materialization has a new data version, so the assets downstream are stale (the next
    ``covid-etl run`` rebuilds them from the restored table), and the input data versions of the materialization it
    replaces, so the restored table itself is not (the next run keeps it until its inputs change).

    Raises ``ValueError`` for a version the table does not have (or whose files VACUUM removed).
    """
    from etl_pipeline.run import run_history

    lake = lake_from_settings(settings)
    uri = table_uri(lake, name)
    table = open_table(uri, lake.storage_options())
    if not 0 <= version < table.version():
        raise ValueError(f"{name} has versions 0..{table.version()}; cannot restore version {version}")
    table.restore(version)
    restored = table.version()
    with run_history(settings) as instance:
        replaced = instance.get_latest_data_version_record(table_key(name))
        inputs = {tag: value for tag, value in (replaced.event_log_entry.tags or {} if replaced else {}).items()
                  if tag.startswith(INPUT_DATA_VERSION_TAG)}
        instance.report_runless_asset_event(dg.AssetMaterialization(
            asset_key=table_key(name), description=f"covid-etl lake restore --version {version}",
            metadata={VERSION_KEY: restored, "restored_from_version": version, "path": dg.MetadataValue.path(uri)},
            tags={**inputs, DATA_VERSION_TAG: f"{uri}@{restored}"}))
    return restored
