"""Bronze layer: each source table extracted, as typed, to ``<LAKE_URL>/bronze/medical/<table>.pq``.

Extraction streams: the MySQL IO manager yields record batches and the MinIO IO manager writes them as they
come, so no step holds a whole table in memory.
"""

import dagster as dg
import pyarrow as pa

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.assets import WRITES_POOL
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.retries import NETWORK_RETRY


def _bronze_asset(table: str) -> dg.AssetsDefinition:
    @dg.asset(
        key=asset_key("bronze", table),
        ins={"source": dg.AssetIn(key=asset_key("source", table))},
        io_manager_key="minio_io_manager",
        group_name="bronze",
        kinds={"delta"},  # and the source database's kind, added by definitions.py from the settings
        pool=WRITES_POOL,
        description=f"`{table}` extracted from the source database to a Delta table in the lake, typed, nothing dropped.",
        retry_policy=NETWORK_RETRY,
    )
    def _extract(source: pa.RecordBatchReader) -> pa.RecordBatchReader:
        return source

    return _extract


bronze_assets = [_bronze_asset(table) for table in SOURCE_TABLES]
