"""The original project's ways of moving data, as baselines: pandas ``to_sql`` and ``read_sql_query``.

(The original's third way, a Spark session per asset, is the multiprocess executor in ``spark_steps``.)
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa


def to_sql_multi(frame: pd.DataFrame, engine: sa.Engine, table: str) -> None:
    """How the original loaded a table: multi-row INSERTs of 10,000 rows, the table replaced."""
    frame.to_sql(table, engine, if_exists="replace", index=False, chunksize=10000, method="multi")


def extract_with_read_sql_query(engine: sa.Engine, table: str, path: Path) -> int:
    """How the original extracted a table to bronze: the whole table into pandas, then one Parquet file."""
    frame = pd.read_sql_query(f"SELECT * FROM {table}", engine)
    pq.write_table(pa.Table.from_pandas(frame), path)
    return len(frame)
