"""SQLAlchemy engines for the source database and the warehouse (MySQL, PostgreSQL or SQLite).

One place decides connection timeouts and driver options, so that an unreachable server fails fast with a
message that names the host and database but never the password.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

import adbc_driver_sqlite.dbapi as adbc_sqlite
import sqlalchemy as sa

from etl_pipeline.core.redaction import redact

#: Seconds to wait for a server before giving up (a run must fail fast, not hang).
CONNECT_TIMEOUT_S = 5
#: Seconds a SQLite writer waits for another connection's lock before it fails (the pragma of
#: :func:`adbc_sqlite_connection` says the same in milliseconds).
SQLITE_BUSY_TIMEOUT_S = 30


class DatabaseUnavailableError(RuntimeError):
    """The database could not be reached; the message carries the redacted URL."""


def _connect_args(url: sa.URL) -> dict:
    """Driver defaults; a query parameter of the URL (e.g. ``?local_infile=0``) overrides its default."""
    defaults = {
        "mysql": {"connect_timeout": CONNECT_TIMEOUT_S, "local_infile": True, "charset": "utf8mb4"},
        "postgresql": {"connect_timeout": CONNECT_TIMEOUT_S},
        "sqlite": {"timeout": SQLITE_BUSY_TIMEOUT_S},
    }.get(url.get_backend_name(), {})
    return {name: value for name, value in defaults.items() if name not in url.query}


def get_engine(url: str) -> sa.Engine:
    """A pooled engine per URL and process for a writer (a SQLite file gets its parent directory created)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return _pooled_engine(url)


@contextlib.contextmanager
def adbc_sqlite_connection(path: Path, autocommit: bool = False) -> Iterator[adbc_sqlite.Connection]:
    """An ADBC connection to the SQLite file ``path`` (closed on exit) whose writes wait for another writer's lock
    as long as the SQLAlchemy engines' do. The bulk loads use it: the driver binds Arrow batches in C."""
    with contextlib.closing(adbc_sqlite.connect(str(path), autocommit=autocommit)) as connection:
        with contextlib.closing(connection.cursor()) as cursor:
            cursor.execute("PRAGMA busy_timeout = 30000")  # SQL text holds no computed value
        yield connection


def backend(url: str) -> str:
    """The database behind ``url``: ``sqlite``, ``mysql`` or ``postgresql``."""
    return sa.make_url(url).get_backend_name()


def sqlite_file(url: str) -> Path | None:
    """The absolute path of a SQLite URL's database file; None for another database or an in-memory one."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).resolve()


def read_only_url(url: str) -> str:
    """The URL a reader opens: a SQLite file as a read-only SQLite URI (``mode=ro``), so that a missing file is an
    error instead of a new, empty database created wherever the reader was started; other URLs unchanged."""
    path = sqlite_file(url)
    if path is None:
        return url
    parsed = sa.make_url(url)
    ro = parsed.set(database=f"file:{quote(str(path))}").update_query_dict({"mode": "ro", "uri": "true"})
    return ro.render_as_string(hide_password=False)


def get_read_only_engine(url: str) -> sa.Engine:
    """A pooled engine for a reader (the dashboard): it creates no directory and no file, and opens SQLite
    read-only (:func:`read_only_url`; a relative path is resolved now, so the engine does not follow a later
    change of directory)."""
    return _pooled_engine(read_only_url(url))


@lru_cache(maxsize=16)
def _pooled_engine(url: str) -> sa.Engine:
    parsed = sa.make_url(url)
    return sa.create_engine(parsed, connect_args=_connect_args(parsed), pool_pre_ping=True)


def describe_url(url: str) -> str:
    return redact(sa.make_url(url).render_as_string(hide_password=True))


def check_connection(url: str) -> None:
    """Raise :class:`DatabaseUnavailableError` naming the (redacted) database if it cannot be reached."""
    try:
        with get_engine(url).connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        raise DatabaseUnavailableError(f"cannot connect to {describe_url(url)}: {redact(str(exc.orig))}") from None


def wait_for_server(url: str, wait_s: float) -> None:
    """Retry connecting for up to ``wait_s`` seconds (a server still starting refuses connections), each attempt
    bounded by ``CONNECT_TIMEOUT_S``; then raise :class:`DatabaseUnavailableError` naming the redacted URL."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            check_connection(url)
            return
        except DatabaseUnavailableError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.5)
