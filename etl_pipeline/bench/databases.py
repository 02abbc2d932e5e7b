"""Scratch databases for the database benchmarks, on the servers that SOURCE_DB_URL / WAREHOUSE_DB_URL name.

The bench never writes to the configured databases themselves: it creates its own database next to them
(``covid_etl_bench_<pid>_<random>``) and drops it afterwards, whatever happened.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from etl_pipeline.core.engines import backend, describe_url, get_engine

#: The database an admin connection opens on each server (PostgreSQL needs one; MySQL does not).
_ADMIN_DATABASE = {"postgresql": "postgres", "mysql": None}


def describe(url: str) -> str:
    """``the embedded SQLite default`` or the redacted URL."""
    return "unset: the embedded SQLite database" if backend(url) == "sqlite" else describe_url(url)


@contextmanager
def scratch_database(url: str) -> Iterator[str]:
    """The URL of a new, empty database on the server of ``url``; dropped on exit."""
    parsed = sa.make_url(url)
    kind = parsed.get_backend_name()
    if kind not in _ADMIN_DATABASE:
        raise ValueError(f"scratch databases need MySQL or PostgreSQL, not {kind}")
    name = f"covid_etl_bench_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    quoted = f"`{name}`" if kind == "mysql" else f'"{name}"'
    admin = sa.create_engine(parsed.set(database=_ADMIN_DATABASE[kind]), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {quoted}" + (" CHARACTER SET utf8mb4" if kind == "mysql" else "")))
        scratch = parsed.set(database=name).render_as_string(hide_password=False)
        try:
            yield scratch
        finally:
            get_engine(scratch).dispose()  # pooled connections would keep the database in use
            with admin.connect() as conn:
                conn.execute(sa.text(f"DROP DATABASE IF EXISTS {quoted}" + (" WITH (FORCE)" if kind == "postgresql" else "")))
    finally:
        admin.dispose()
