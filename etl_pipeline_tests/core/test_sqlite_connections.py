"""The two ways the pipeline writes a SQLite file (SQLAlchemy's pysqlite engine, the ADBC driver for bulk loads)
wait equally long for another writer's lock."""

from __future__ import annotations

import contextlib
from pathlib import Path

from etl_pipeline.core.engines import SQLITE_BUSY_TIMEOUT_S, adbc_sqlite_connection, get_engine


def test_adbc_and_sqlalchemy_connections_wait_the_same_busy_timeout(tmp_path: Path) -> None:
    path = tmp_path / "warehouse.db"
    with adbc_sqlite_connection(path) as connection, contextlib.closing(connection.cursor()) as cursor:
        cursor.execute("PRAGMA busy_timeout")
        assert cursor.fetchone() == (SQLITE_BUSY_TIMEOUT_S * 1000,)
    with get_engine(f"sqlite:///{path}").connect() as connection:
        assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_S * 1000
