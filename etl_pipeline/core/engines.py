"""SQLAlchemy engines for the source database and the warehouse (MySQL, PostgreSQL or SQLite).

One place decides connection timeouts and driver options, so that an unreachable server fails fast with a
message that names the host and database but never the password.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa

from etl_pipeline.core.redaction import redact

#: Seconds to wait for a server before giving up (a run must fail fast, not hang).
CONNECT_TIMEOUT_S = 5


class DatabaseUnavailableError(RuntimeError):
    """The database could not be reached; the message carries the redacted URL."""


def _connect_args(url: sa.URL) -> dict:
    """Driver defaults; a query parameter of the URL (e.g. ``?local_infile=0``) overrides its default."""
    defaults = {
        "mysql": {"connect_timeout": CONNECT_TIMEOUT_S, "local_infile": True, "charset": "utf8mb4"},
        "postgresql": {"connect_timeout": CONNECT_TIMEOUT_S},
        "sqlite": {"timeout": 30},
    }.get(url.get_backend_name(), {})
    return {name: value for name, value in defaults.items() if name not in url.query}


@lru_cache(maxsize=16)
def get_engine(url: str) -> sa.Engine:
    """A pooled engine per URL and process (SQLite files get their parent directory created)."""
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    return sa.create_engine(parsed, connect_args=_connect_args(parsed), pool_pre_ping=True)


def backend(url: str) -> str:
    """The database behind ``url``: ``sqlite``, ``mysql`` or ``postgresql``."""
    return sa.make_url(url).get_backend_name()


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
