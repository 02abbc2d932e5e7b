"""Warehouse layer: the six gold tables published together into the warehouse (Postgres, or SQLite embedded).

One step publishes every table in one transaction (``PostgresIOManager.load_tables``: COPY into staging tables,
upsert and delete, one commit), so readers such as the dashboard see the previous warehouse or the new one,
never a mix. The step runs only once gold is written and audited: it depends on every asset that carries a
blocking check, and Dagster does not start a step downstream of a blocking check that failed. So a run whose
blocking check fails anywhere (an unknown country in silver, gold that does not reconcile) publishes nothing,
and every warehouse table keeps its previous content. The six warehouse assets are materialized together or
not at all (the multi-asset cannot be subset).
"""

from __future__ import annotations

from collections.abc import Iterator

import dagster as dg
import pyarrow as pa

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.assets.gold import gold_checks
from etl_pipeline.assets.silver import silver_checks
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.retries import NETWORK_RETRY, retry_only_transient

#: The name of the publication step (the one step of the warehouse layer).
PUBLISH_STEP = "warehouse"

_GOLD = {table: asset_key("gold", table) for table in WAREHOUSE_TABLES}
#: The other assets that carry a blocking check (silver tables, e.g. country-wise, which no gold table reads):
#: the publication depends on them too, so that it waits for their checks and is skipped if one fails. The gold
#: tables' own blocking checks gate it through its inputs.
AUDITED = sorted({spec.asset_key for checks in (*silver_checks, *gold_checks) for spec in checks.check_specs
                  if spec.blocking} - set(_GOLD.values()), key=lambda key: key.path)


@dg.multi_asset(
    name=PUBLISH_STEP,
    specs=[
        dg.AssetSpec(  # kind: the warehouse database's, added by definitions.py from the settings
            asset_key("warehouse", table), deps=[_GOLD[table], *AUDITED], group_name="warehouse",
            description=f"{WAREHOUSE_TABLES[table].comment} Warehouse table `{table}`, published with the other "
            "warehouse tables in one transaction once every blocking check of the run passed.",
        )
        for table in WAREHOUSE_TABLES
    ],
    ins={table: dg.AssetIn(key=key, input_manager_key="minio_io_manager") for table, key in _GOLD.items()},
    can_subset=False,
    pool=WRITES_POOL,
    retry_policy=NETWORK_RETRY,
)
def publish_warehouse(psql_io_manager: PostgresIOManager,
                      **gold: pa.RecordBatchReader) -> Iterator[dg.MaterializeResult]:
    """Gold read from the lake as streamed Arrow record batches, loaded into the warehouse in one transaction."""
    with retry_only_transient("publishing the warehouse"):
        loaded = psql_io_manager.load_tables(gold)
    for table, stats in loaded.items():
        yield dg.MaterializeResult(asset_key=asset_key("warehouse", table),
                                   metadata=psql_io_manager.metadata(table, stats))


warehouse_assets = [publish_warehouse]
