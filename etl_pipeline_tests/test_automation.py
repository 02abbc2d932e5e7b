"""The daily refresh as Dagster's automation sensor evaluates it, at frozen times, on the project's definitions:
the source tables are observed at 01:00 UTC; a source observed with a new data version gets its assets and
everything downstream requested (in one tick); an unchanged observation requests nothing. Runs are stood in for
by reported observations and materializations, so this tests the conditions, not the assets."""

from __future__ import annotations

import datetime as dt

import dagster as dg
import pytest

from etl_pipeline.definitions import defs
from etl_pipeline_tests import test_incremental as incremental

UTC = dt.timezone.utc
SOURCES = ["source/medical/covid19_cases_position", "source/medical/covid19_country_wise",
           "source/medical/covid19_time_series", "source/medical/covid19_worldometer"]
#: worldometer's bronze and every asset that reads it, directly or through another, and the six warehouse tables,
#: which are published together.
READ_WORLDOMETER = sorted(incremental.READ_WORLDOMETER + incremental.WAREHOUSE)


class Ticks:
    """Successive evaluations of every automation condition, each from the cursor of the one before."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance, self.cursor = instance, None

    def requested(self, at: dt.datetime) -> list[str]:
        result = dg.evaluate_automation_conditions(defs=defs, instance=self.instance, evaluation_time=at,
                                                   cursor=self.cursor)
        self.cursor = result.cursor
        return sorted(r.key.to_user_string() for r in result.results if r.true_subset.size)


def observe(instance: dg.DagsterInstance, versions: dict[str, str]) -> None:
    for key, version in versions.items():
        instance.report_runless_asset_event(dg.AssetObservation(
            asset_key=dg.AssetKey.from_user_string(key), tags={"dagster/data_version": version}))


def materialize(instance: dg.DagsterInstance, keys: list[str]) -> None:
    for key in keys:
        instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=dg.AssetKey.from_user_string(key)))


@pytest.fixture
def ticks():
    with dg.instance_for_test() as instance:
        yield Ticks(instance)


def test_observed_daily_at_one_then_what_changed_and_its_downstream(ticks: Ticks) -> None:
    day = dt.datetime(2026, 11, 30, tzinfo=UTC)
    everything = sorted(k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys)

    assert ticks.requested(day + dt.timedelta(hours=0, minutes=30)) == []  # before the cron tick: nothing
    assert ticks.requested(day + dt.timedelta(hours=1, seconds=30)) == SOURCES  # 01:00 UTC: observe the sources
    observe(ticks.instance, dict.fromkeys(SOURCES, "v1"))
    assert ticks.requested(day + dt.timedelta(hours=1, minutes=1)) == everything  # all missing: one tick
    materialize(ticks.instance, everything)
    assert ticks.requested(day + dt.timedelta(hours=1, minutes=2)) == []  # up to date
    assert ticks.requested(day + dt.timedelta(hours=12)) == []  # no new cron tick, no new observation

    tomorrow = day + dt.timedelta(days=1)
    assert ticks.requested(tomorrow + dt.timedelta(hours=1, seconds=30)) == SOURCES
    observe(ticks.instance, dict.fromkeys(SOURCES, "v1"))  # nothing changed upstream
    assert ticks.requested(tomorrow + dt.timedelta(hours=1, minutes=1)) == []

    after = tomorrow + dt.timedelta(days=1)
    assert ticks.requested(after + dt.timedelta(hours=1, seconds=30)) == SOURCES
    observe(ticks.instance, {**dict.fromkeys(SOURCES, "v1"), "source/medical/covid19_worldometer": "v2"})
    assert ticks.requested(after + dt.timedelta(hours=1, minutes=1)) == READ_WORLDOMETER


def test_nothing_downstream_of_a_failed_blocking_check_is_requested_until_it_passes(ticks: Ticks) -> None:
    day = dt.datetime(2026, 11, 30, tzinfo=UTC)
    everything = sorted(k.to_user_string() for k in defs.resolve_asset_graph().materializable_asset_keys)
    ticks.requested(day + dt.timedelta(hours=1, seconds=30))
    observe(ticks.instance, dict.fromkeys(SOURCES, "v1"))
    ticks.requested(day + dt.timedelta(hours=1, minutes=1))
    materialize(ticks.instance, everything)
    countries = dg.AssetKey.from_user_string("silver/medical/covid19_countries")
    ticks.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=countries, check_name="every_country_mapped", passed=False, blocking=True,
        severity=dg.AssetCheckSeverity.ERROR))
    ticks.requested(day + dt.timedelta(hours=1, minutes=2))

    tomorrow = day + dt.timedelta(days=1)
    assert ticks.requested(tomorrow + dt.timedelta(hours=1, seconds=30)) == SOURCES
    observe(ticks.instance, {**dict.fromkeys(SOURCES, "v1"), "source/medical/covid19_worldometer": "v2"})
    silver = ["bronze/medical/covid19_worldometer", "silver/medical/covid19_countries",
              "silver/medical/covid19_worldometer"]
    # the failed asset itself is refreshed (and checked again); gold and the warehouse wait for its check
    assert ticks.requested(tomorrow + dt.timedelta(hours=1, minutes=1)) == silver
    materialize(ticks.instance, silver)
    ticks.instance.report_runless_asset_event(dg.AssetCheckEvaluation(
        asset_key=countries, check_name="every_country_mapped", passed=True, blocking=True,
        severity=dg.AssetCheckSeverity.ERROR))
    assert ticks.requested(tomorrow + dt.timedelta(hours=1, minutes=2)) == [
        key for key in READ_WORLDOMETER if key not in silver]
