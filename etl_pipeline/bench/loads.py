"""The database benchmarks: warehouse load, source load (seeding) and bronze extraction, ours against the
original project's pandas methods, on scratch databases of the configured servers."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pyarrow as pa
import sqlalchemy as sa

from etl_pipeline.asset_keys import asset_key
from etl_pipeline.bench.baselines import extract_with_read_sql_query, to_sql_multi
from etl_pipeline.bench.databases import describe, scratch_database
from etl_pipeline.bench.floor import gold_from_files
from etl_pipeline.bench.report import Result, Target
from etl_pipeline.bench.timing import interleaved
from etl_pipeline.core.engines import backend, get_engine
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.core.warehouse_model import warehouse_table
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.minio_io_manager import MinIOIOManager
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.resources.psql_io_manager import PostgresIOManager
from etl_pipeline.resources.warehouse_input import arrow_schema
from etl_pipeline.seed import seed_source
from etl_pipeline.transforms.source_validation import read_source_files

DAILY = "covid19_daily_stats"


def warehouse_load(url: str, data_dir: Path, repeat: int) -> Result:
    result = Result("warehouse_load", ours="PostgresIOManager.load_table of gold covid19_daily_stats (COPY into a "
                    "staging table, upsert, one transaction)", baseline='DataFrame.to_sql(method="multi", '
                    "chunksize=10000) of the same rows", ratio_kind="speedup")
    if backend(url) != "postgresql":
        return result.skip(f"WAREHOUSE_DB_URL does not name a PostgreSQL server ({describe(url)})")
    frame = gold_from_files(data_dir)[DAILY]
    table = pa.Table.from_pandas(frame, preserve_index=False).cast(arrow_schema(warehouse_table(DAILY)))
    with scratch_database(url) as db:
        engine = get_engine(db)

        def empty() -> None:  # every repetition is a first load into an empty database
            with engine.begin() as conn:
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{DAILY}", "{DAILY}_baseline"'))

        loaded: list[int] = []

        def ours() -> None:
            loaded.append(PostgresIOManager(url=db).load_table(DAILY, table).inserted)

        pair = interleaved(ours, lambda: to_sql_multi(frame, engine, f"{DAILY}_baseline"), repeat, before_each=empty)
        [baseline_rows] = _counts(engine, [f"{DAILY}_baseline"])  # the baseline ran last
    result.notes.append(f"rows inserted by the last repetition: ours {loaded[-1]:,}, baseline {baseline_rows:,}")
    return result.measured(pair, rows=len(frame), target=Target(">=", 10))


def source_load_and_extract(url: str, data_dir: Path, repeat: int) -> list[Result]:
    """Seeding (validation included, on both sides), then extracting what was seeded to bronze Parquet."""
    load = Result("source_load", ours="covid-etl seed (validate the CSV files, LOAD DATA LOCAL INFILE into staging "
                  "tables, atomic RENAME)", baseline='the same validation, then DataFrame.to_sql(method="multi", '
                  "chunksize=10000) per table", ratio_kind="speedup")
    extract = Result("source_extract", ours="bronze extraction (MySQLIOManager.read_table streamed into "
                     "MinIOIOManager.write, a local lake)", baseline="pandas.read_sql_query of each table, then "
                     "one Parquet file", ratio_kind="speedup")
    if backend(url) != "mysql":
        reason = f"SOURCE_DB_URL does not name a MySQL server ({describe(url)})"
        return [load.skip(reason), extract.skip(reason)]
    with scratch_database(url) as ours_db, scratch_database(url) as baseline_db, \
            tempfile.TemporaryDirectory(prefix="bench-lake-") as lake:
        baseline_engine = get_engine(baseline_db)

        def seed_with_to_sql() -> None:
            for name, frame in read_source_files(SOURCE_TABLES.values(), data_dir).items():
                to_sql_multi(frame, baseline_engine, name)

        rows = sum(seed_source(ours_db, data_dir).values())  # warm-up: tables exist on both sides
        seed_with_to_sql()
        load.measured(interleaved(lambda: seed_source(ours_db, data_dir) and None, seed_with_to_sql, repeat),
                      rows=rows, target=Target(">=", 5))
        load.notes.append(f"rows in the source tables: ours {sum(_counts(get_engine(ours_db), SOURCE_TABLES)):,}, "
                          f"baseline {sum(_counts(baseline_engine, SOURCE_TABLES)):,}")

        lake_manager = MinIOIOManager(lake=LakeResource(url=lake))
        source = MySQLIOManager(url=ours_db)

        def ours_extract() -> None:
            for name in SOURCE_TABLES:
                lake_manager.write(lake_manager.location(asset_key("bronze", name).path), source.read_table(name))

        def baseline_extract() -> None:
            for name in SOURCE_TABLES:
                extract_with_read_sql_query(get_engine(ours_db), name, Path(lake, f"baseline_{name}.parquet"))

        extract.measured(interleaved(ours_extract, baseline_extract, repeat), rows=rows)
    return [load, extract]


def _counts(engine: sa.Engine, tables) -> list[int]:
    with engine.connect() as conn:
        return [conn.execute(sa.text(f"SELECT COUNT(*) FROM {t}")).scalar_one() for t in tables]
