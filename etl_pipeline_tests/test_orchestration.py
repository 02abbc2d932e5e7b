"""What a user sees in the Dagster UI: one job over the graph, the daily refresh (declarative automation), the failure sensor,
lineage grouped by layer with descriptions and kinds, and the asset checks."""

from __future__ import annotations

import dagster as dg
from dagster._core.execution.api import create_execution_plan

from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.definitions import ALL_ASSETS_JOB, OBSERVE_JOB, defs

LAYERS = {"source", "bronze", "silver", "gold", "warehouse"}


def test_one_job_materializes_every_executable_asset_with_its_checks():
    job = defs.resolve_job_def(ALL_ASSETS_JOB)
    graph = defs.resolve_asset_graph()
    materializable = set(graph.materializable_asset_keys)
    assert set(job.asset_layer.executable_asset_keys) == materializable
    assert len(materializable) == 4 + 5 + 6 + 6  # bronze, silver, gold, warehouse; the source tables are external
    assert set(job.asset_layer.asset_graph.asset_check_keys) == set(graph.asset_check_keys)


def test_the_source_tables_are_observed_by_their_own_job():
    """Observable source assets: Dagster never materializes them, it records their content fingerprints."""
    graph = defs.resolve_asset_graph()
    sources = {k for k in graph.get_all_asset_keys() if k.path[0] == "source"}
    assert len(sources) == 4 and all(graph.get(k).is_observable for k in sources)
    assert set(defs.resolve_job_def(OBSERVE_JOB).asset_layer.executable_asset_keys) == sources


def test_every_run_that_writes_holds_the_pool_that_serializes_writers_in_deployment():
    """The pool is on the assets, so it is held by runs of the job, by "Materialize all" in the UI (the implicit asset
    job) and by a run of one asset alike, as the instance records them when it creates the run."""
    graph = defs.resolve_asset_graph()
    assert set(graph.materializable_asset_keys) == {
        key for key in graph.get_all_asset_keys() if graph.get(key).pools == {WRITES_POOL}}
    everything = defs.resolve_implicit_global_asset_job_def()
    one_asset = everything.get_subset(asset_selection={dg.AssetKey(["gold", "medical", "covid19_continent_stats"])})
    with dg.instance_for_test() as instance:
        for job in (defs.resolve_job_def(ALL_ASSETS_JOB), everything, one_asset):
            run = instance.create_run_for_job(job, execution_plan=create_execution_plan(job))
            assert run.run_op_concurrency.all_pools == {WRITES_POOL}, job.name


def test_the_daily_refresh_is_declarative_automation_over_every_asset():
    """Its conditions at frozen times: test_automation.py."""
    sensor = defs.resolve_sensor_def("daily_refresh")
    assert isinstance(sensor, dg.AutomationConditionSensorDefinition)
    graph = defs.resolve_asset_graph()
    assert set(sensor.asset_selection.resolve(graph)) == set(graph.get_all_asset_keys())
    for key in graph.get_all_asset_keys():
        condition = graph.get(key).automation_condition
        expected = "on_cron(0 1 * * *, UTC)" if key.path[0] == "source" else "eager, unless an upstream blocking check failed"
        assert condition is not None and condition.get_label() == expected, key


def test_run_failure_sensor_is_registered():
    sensor = defs.resolve_sensor_def("alert_on_run_failure")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING


def test_lineage_is_grouped_by_layer_with_descriptions_and_kinds():
    """Kinds of the lake's layers; the databases' kinds follow the settings (test_definitions.py)."""
    graph = defs.resolve_asset_graph()
    expected_kinds = {"source": set(), "bronze": {"delta"}, "silver": {"pyspark", "delta"},
                      "gold": {"pyspark", "delta"}, "warehouse": set()}
    groups = set()
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        layer = key.path[0]
        groups.add(node.group_name)
        assert node.group_name == layer, key
        assert key.path[1] == "medical", key
        assert node.description, key
        assert set(node.kinds) - {"sqlite", "mysql", "postgres"} == expected_kinds[layer], key
    assert groups == LAYERS


def test_asset_checks_cover_keys_reconciliation_and_data_quality():
    names = {(k.asset_key.path[0], k.asset_key.path[-1], k.name) for k in defs.resolve_asset_graph().asset_check_keys}
    for table in ("covid19_daily_stats", "covid19_continent_stats", "dim_country", "dim_date", "fact_daily_cases",
                  "fact_location_daily"):
        assert {("gold", table, "keys_unique"), ("gold", table, "keys_not_null")} <= names
    assert {
        ("silver", "covid19_countries", "every_country_mapped"),
        ("silver", "covid19_countries", "worldometer_coverage"),
        ("gold", "covid19_daily_stats", "reconciles_with_country_wise"),
        ("gold", "covid19_daily_stats", "provinces_sum_to_country"),
        ("gold", "covid19_daily_stats", "cumulative_counts_never_decrease"),
        ("gold", "covid19_daily_stats", "no_negative_values"),
        ("gold", "covid19_continent_stats", "totals_equal_source"),
    } <= names


def test_steps_share_one_process_so_spark_steps_share_one_session():
    assert defs.resolve_job_def(ALL_ASSETS_JOB).executor_def.name == dg.in_process_executor.name


def test_the_warehouse_is_published_by_one_step_after_every_blocking_check():
    """All six tables in one step that cannot be subset, downstream of every asset that has a blocking check, so
    that Dagster skips it when any blocking check of the run fails."""
    graph = defs.resolve_asset_graph()
    warehouse = {key for key in graph.get_all_asset_keys() if key.path[0] == "warehouse"}
    [publication] = {graph.get(key).assets_def for key in warehouse}
    assert (publication.node_def.name, publication.can_subset, len(warehouse)) == ("warehouse", False, 6)
    blocking = {spec.asset_key for checks in defs.asset_checks for spec in checks.check_specs if spec.blocking}
    assert {key.path[0] for key in blocking} == {"silver", "gold"}
    assert blocking <= set().union(*(graph.get(key).parent_keys for key in warehouse))  # the step's upstream
    for key in warehouse:
        assert dg.AssetKey(["gold", *key.path[1:]]) in graph.get(key).parent_keys
