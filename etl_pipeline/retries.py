"""Retries for steps that talk to MySQL, S3 or Postgres: transient connection errors only.

Assets that touch a server carry ``NETWORK_RETRY``. Their IO managers run the I/O inside
:func:`retry_only_transient`, which lets connection-level errors through (the policy retries them with
exponential backoff) and turns every other error into a ``Failure`` that is never retried: retrying cannot
fix a bad value or a missing column, and it would hide the error behind minutes of waiting.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg

from etl_pipeline.core.redaction import redact

#: Two more attempts, after 1 s and then 3 s (Dagster's exponential backoff: delay x (2^n - 1)). With the 5 s
#: connect timeout of each attempt, a server that stays down fails the run in well under 30 s; one that was only
#: restarting is reached on the next attempt.
NETWORK_RETRY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL)

_TRANSIENT_MESSAGES = (
    "connection refused", "could not connect", "couldn't connect", "connection reset", "server closed the connection",
    "terminating connection", "lost connection", "gone away", "timed out", "timeout", "connection aborted",
    "broken pipe", "temporarily unavailable", "curl error", "curlcode", "network_connection",
    "could not resolve host", "no route to host", "can't connect",
    "error sending request",  # delta-rs (reqwest): the S3 endpoint did not take the request
)

#: SQLSTATEs of a lost or refused PostgreSQL connection: class 08, and the server shutting down or starting up.
_POSTGRES_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")
#: MySQL/MariaDB codes of a lost or refused connection: server shutdown in progress, connection killed (MariaDB),
#: can't connect (socket, TCP), server gone away, lost connection during a query or at its start.
_MYSQL_CONNECTION_ERRORS = {1053, 1927, 2002, 2003, 2006, 2013, 2055}


def _lost_connection(error: BaseException) -> bool:
    """A driver error that says, by its code, that the connection is gone. psycopg2 reports a connection the
    server terminated mid-COPY only as "invalid socket", without SQLSTATE: libpq's own errors have none."""
    driver = type(error).__module__.split(".")[0]
    if driver == "psycopg2" and type(error).__name__ in {"OperationalError", "InterfaceError"}:
        return getattr(error, "pgcode", None) is None
    if driver == "psycopg2":
        return (getattr(error, "pgcode", None) or "").startswith(_POSTGRES_CONNECTION_STATES)
    if driver == "pymysql":
        return bool(error.args) and error.args[0] in _MYSQL_CONNECTION_ERRORS
    return False


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a connection-level failure."""
    import sqlalchemy.exc

    from etl_pipeline.core.engines import DatabaseUnavailableError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, DatabaseUnavailableError,
                                sqlalchemy.exc.DisconnectionError)) or _lost_connection(current):
            return True
        if isinstance(current, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or type(
            current
        ).__name__ in {"OperationalError", "InterfaceError", "EndpointConnectionError", "ConnectTimeoutError"}:
            message = str(current).lower()
            if any(m in message for m in _TRANSIENT_MESSAGES):
                return True
        elif (isinstance(current, OSError) or type(current).__name__ == "DeltaError") and any(
                m in str(current).lower() for m in _TRANSIENT_MESSAGES):
            return True
        current = current.__cause__ or current.__context__
    return False


@contextmanager
def retry_only_transient(what: str) -> Iterator[None]:
    """Re-raise transient errors for the retry policy; anything else fails the step for good."""
    try:
        yield
    except dg.Failure:
        raise
    except Exception as exc:
        if is_transient(exc):
            raise
        raise dg.Failure(description=f"{what}: {redact(str(exc))}", allow_retries=False) from exc
