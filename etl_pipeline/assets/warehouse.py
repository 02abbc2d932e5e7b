"""Warehouse layer: each gold table loaded 1:1 into the warehouse (Postgres, or SQLite embedded).

Gold is read from the lake as streamed Arrow record batches (MinIO IO manager) and loaded by the Postgres IO
manager: COPY into a staging table, upsert and delete in one transaction.
"""

from __future__ import annotations

import dagster as dg
import pyarrow as pa

from etl_pipeline.retries import NETWORK_RETRY
from etl_pipeline.warehouse_model import WAREHOUSE_TABLES


def _warehouse_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=["warehouse", "medical", table],
        ins={"gold": dg.AssetIn(key=["gold", "medical", table], input_manager_key="minio_io_manager")},
        io_manager_key="psql_io_manager",
        group_name="warehouse",
        kinds={"postgres"},
        description=f"{WAREHOUSE_TABLES[table].comment} Warehouse table `{table}`.",
        retry_policy=NETWORK_RETRY,
    )
    def _load(gold: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return gold

    return _load


warehouse_assets = [_warehouse_asset(table) for table in WAREHOUSE_TABLES]
