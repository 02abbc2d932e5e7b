"""Before a run touches anything: is every configured server there?

A wrong URL must cost seconds, not a run: without this, ``covid-etl run`` did all the Spark work and then failed
the warehouse steps one after another, each after its retries. :func:`check_servers` tries every server the
configuration names (source database, lake endpoint and bucket, Spark master, warehouse) at once, each bounded
by a few seconds, and reports every one that failed in one :class:`PreflightError`. Embedded pieces (SQLite
files, a lake directory, Sail or ``local[*]`` Spark) need no server; for them only what a run needs first is
checked (pysail for Sail, Java for local Spark).
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlparse

import sqlalchemy as sa

from etl_pipeline.core.engines import CONNECT_TIMEOUT_S, check_connection
from etl_pipeline.core.redaction import redact
from etl_pipeline.resources import sail_server
from etl_pipeline.resources.lake import LakeResource, lake_from_settings, split_s3_url
from etl_pipeline.resources.spark_conf import is_connect, is_local, redact_master
from etl_pipeline.settings import Settings

#: Spark Connect's default port (``sc://host`` without one).
CONNECT_DEFAULT_PORT = 15002


class PreflightError(RuntimeError):
    """Servers the configuration names could not be reached; one line per server, naming it and why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("not started: " + ("one server is" if len(problems) == 1 else f"{len(problems)} servers are")
                         + " not usable\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def check_servers(settings: Settings) -> None:
    """Try every server of ``settings`` concurrently; raise :class:`PreflightError` listing each that failed.

    Takes at most about ``CONNECT_TIMEOUT_S`` seconds (the checks run in parallel), and nothing when everything
    is embedded."""
    checks: dict[str, Callable[[], None]] = {}
    for variable, url in (("SOURCE_DB_URL", settings.source_db_url), ("WAREHOUSE_DB_URL", settings.warehouse_db_url)):
        if sa.make_url(url).get_backend_name() != "sqlite":
            checks[variable] = lambda url=url: check_connection(url)  # its message names the redacted URL
    lake = lake_from_settings(settings)
    if lake.is_s3:
        checks[f"LAKE_URL {lake.url} at {lake.s3_endpoint_url or 'AWS'}"] = lambda: check_lake(lake)
    checks[f"SPARK_MASTER {redact_master(settings.spark_master)}"] = lambda: check_spark(settings.spark_master,
                                                                                         lake.url)
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        futures = {name: pool.submit(check) for name, check in checks.items()}
    problems = []
    for name, future in futures.items():
        error = future.exception()
        if error is not None:
            problems.append(f"{name}: " + " ".join(redact(str(error)).split()))  # one line per server
    if problems:
        raise PreflightError(problems)


def check_lake(lake: LakeResource) -> None:
    """The endpoint answers and the credentials may look at the bucket (a missing bucket is fine: the first
    write creates it)."""
    bucket, _ = split_s3_url(lake.url)
    lake.filesystem(CONNECT_TIMEOUT_S, CONNECT_TIMEOUT_S, attempts=1).get_file_info(bucket)


def check_spark(master: str, lake_url: str) -> None:
    """``local[*]``: Java is installed; ``sail``: pysail is installed; ``spark://``, ``sc://`` and ``sail://``: the
    master's port accepts connections. Sail and an ``s3://`` lake: refused (``ValueError``)."""
    sail_server.refuse_s3_lake(master, lake_url)
    if master == "sail":
        sail_server.check_installed()
        return
    if is_local(master):
        java_home = os.environ.get("JAVA_HOME")  # where pyspark's launcher looks first
        if not (os.access(os.path.join(java_home, "bin", "java"), os.X_OK) if java_home else shutil.which("java")):
            raise RuntimeError("local Spark needs Java 17: no `java` " + (f"in JAVA_HOME={java_home}" if java_home
                                                                          else "on PATH"))
        return
    parsed = urlparse(master.split(";")[0])
    port = parsed.port or (CONNECT_DEFAULT_PORT if is_connect(master) else 7077)
    try:
        socket.create_connection((parsed.hostname, port), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise RuntimeError(f"cannot connect to {parsed.hostname}:{port}: {exc}") from None
