"""The assets, one module per layer (definitions.py gathers them)."""

#: The concurrency pool of every asset that writes the lake or the warehouse. Pools are on the assets, not on a
#: job, so that every queued run that writes holds the pool, however it was launched: `covid19_etl_job`,
#: "Materialize all" in the UI (Dagster's implicit asset job), a backfill. deploy/dagster.yaml limits it to one run
#: at a time (run granularity), so that two runs never write the same tables at once.
WRITES_POOL = "covid19_writes"
