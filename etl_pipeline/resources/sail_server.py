"""Sail (``pysail``, a Rust engine behind the Spark Connect protocol, no JVM) as this process's Spark.

``SPARK_MASTER=sail`` starts one Sail Spark Connect server inside this process, on a free loopback port, the
first time a session is asked for; ``sail://host:port`` names a Sail server already running. Either way the
session is an ordinary Spark Connect client (``sc://``): the transforms, IO managers and checks are the same
PySpark DataFrame code on both engines. Sail logs to stderr at ``RUST_LOG`` level, ``error`` unless set.
"""

from __future__ import annotations

import importlib.util
import os
import threading

from etl_pipeline.resources.spark_conf import LOOPBACK


class _InProcess:
    lock = threading.Lock()
    server = None  # pysail.spark.SparkConnectServer once started


def is_sail(master: str) -> bool:
    return master == "sail" or master.startswith("sail://")


def check_installed() -> None:
    """Raise ``RuntimeError`` when the ``pysail`` package is not installed."""
    if importlib.util.find_spec("pysail") is None:
        raise RuntimeError("SPARK_MASTER=sail needs the pysail package (pip install pysail)")


def connect_url(master: str) -> str:
    """The ``sc://host:port`` a Connect client uses for ``master`` (``sail`` or ``sail://host:port``).

    ``sail`` starts the in-process server on first use (later calls reuse it). Raises ``RuntimeError`` when
    ``pysail`` is not installed.
    """
    if master != "sail":
        return "sc://" + master.removeprefix("sail://")
    with _InProcess.lock:
        if _InProcess.server is None or not _InProcess.server.running:
            os.environ.setdefault("RUST_LOG", "error")  # Sail's log (stderr): no INFO lines, no no-op-hint warnings
            check_installed()
            from pysail.spark import SparkConnectServer
            server = SparkConnectServer(LOOPBACK, 0)
            server.start(background=True)
            _InProcess.server = server
        host, port = _InProcess.server.listening_address
        return f"sc://{host}:{port}"


def stop() -> None:
    """Stop the in-process server, if one was started (after the session using it has stopped)."""
    with _InProcess.lock:
        server, _InProcess.server = _InProcess.server, None
        if server is not None and server.running:
            server.stop()
