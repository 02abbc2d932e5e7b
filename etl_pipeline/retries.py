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

from etl_pipeline.settings import redact

#: Two more attempts, after 1 s and 2 s. With the 5 s connect timeout of each attempt, a server that stays
#: down fails the run in well under 30 s; one that was only restarting is reached on the next attempt.
NETWORK_RETRY = dg.RetryPolicy(max_retries=2, delay=1, backoff=dg.Backoff.EXPONENTIAL)

_TRANSIENT_MESSAGES = (
    "connection refused", "could not connect", "couldn't connect", "connection reset", "server closed the connection",
    "terminating connection", "lost connection", "gone away", "timed out", "timeout", "connection aborted",
    "broken pipe", "temporarily unavailable", "curl error", "curlcode", "network_connection",
    "could not resolve host", "no route to host", "can't connect",
)


def is_transient(exc: BaseException) -> bool:
    """True when ``exc`` (or an exception it was raised from) is a connection-level failure."""
    import sqlalchemy.exc

    from etl_pipeline.resources.db import DatabaseUnavailableError

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, DatabaseUnavailableError,
                                sqlalchemy.exc.DisconnectionError)):
            return True
        if isinstance(current, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)) or type(
            current
        ).__name__ in {"OperationalError", "InterfaceError", "EndpointConnectionError", "ConnectTimeoutError"}:
            message = str(current).lower()
            if any(m in message for m in _TRANSIENT_MESSAGES):
                return True
        elif isinstance(current, OSError) and any(m in str(current).lower() for m in _TRANSIENT_MESSAGES):
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
