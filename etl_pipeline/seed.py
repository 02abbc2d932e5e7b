"""``covid-etl seed``: validate the four CSV files completely, then replace the source tables in one go.

Files are validated as streams; a large file's typed rows wait in a temporary Parquet file between validation
and loading, so seeding takes about the same memory whatever the size of the files.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import sqlalchemy as sa

from etl_pipeline.core.engines import check_connection, get_engine
from etl_pipeline.core.source_schema import SOURCE_TABLES
from etl_pipeline.resources.mysql_io_manager import MySQLIOManager
from etl_pipeline.transforms.source_validation import validate_source_files


def seed_source(source_db_url: str, data_dir: Path) -> dict[str, int]:
    """Load every source table from ``data_dir``; returns rows loaded per table.

    Raises ``SourceValidationError`` (nothing touched) or ``SourceLoadError`` (previous content kept).
    """
    with tempfile.TemporaryDirectory(prefix="covid-etl-seed-") as spill:
        tables = validate_source_files(SOURCE_TABLES.values(), data_dir, spill_dir=Path(spill))
        MySQLIOManager(url=source_db_url).replace_tables(tables)
    _record_fingerprint(source_db_url, data_fingerprint(data_dir))
    return {name: table.rows for name, table in tables.items()}


def needs_seed(source_db_url: str, data_dir: Path) -> bool:
    """True unless every source table holds rows seeded from exactly the files now in ``data_dir``."""
    check_connection(source_db_url)  # a database that is down is named (password redacted), not left to the driver
    manager = MySQLIOManager(url=source_db_url)
    if not all(manager.row_count(name) for name in SOURCE_TABLES):
        return True
    engine = get_engine(source_db_url)
    if not sa.inspect(engine).has_table(_STATE.name):
        return True
    with engine.connect() as conn:
        seeded = conn.execute(sa.select(_STATE.c.fingerprint)).scalar_one_or_none()
    return seeded != data_fingerprint(data_dir)


#: One row: the fingerprint of the files the source tables were last seeded from.
_STATE = sa.Table("etl_seed_state", sa.MetaData(), sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                  sa.Column("fingerprint", sa.String(64), nullable=False))


def _record_fingerprint(source_db_url: str, fingerprint: str) -> None:
    engine = get_engine(source_db_url)
    _STATE.create(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(_STATE.delete())
        conn.execute(_STATE.insert().values(id=1, fingerprint=fingerprint))


def data_fingerprint(data_dir: Path) -> str:
    """sha256 over the four files' contents: what a source database seeded from ``data_dir`` holds."""
    digest = hashlib.sha256()
    for schema in SOURCE_TABLES.values():
        with (data_dir / schema.file_name).open("rb") as f:
            digest.update(hashlib.file_digest(f, "sha256").digest())
    return digest.hexdigest()
