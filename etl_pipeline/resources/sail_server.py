"""Sail (``pysail``, a Rust engine behind the Spark Connect protocol, no JVM) as this process's Spark.

``SPARK_MASTER=sail`` starts one Sail Spark Connect server in a child process, on a free loopback port, the
first time a session is asked for; ``sail://host:port`` names a Sail server already running. Either way the
session is an ordinary Spark Connect client (``sc://``): the transforms, IO managers and checks are the same
PySpark DataFrame code on both engines.

Why a child process rather than a server thread in this one: Sail's memory then is its own (like Apache Spark's
driver JVM), so the Dagster process stays small at scale, and a fault inside the engine cannot take the Dagster
process down with it. The child stops when this process stops it (at exit), and on its own when this process
dies without doing so. It inherits the environment: Sail's own settings (``SAIL_*``, e.g.
``SAIL_RUNTIME__MEMORY_POOL__TYPE``) reach it, and it logs to stderr at ``RUST_LOG`` level, ``error`` unless set.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import selectors
import subprocess
import sys
import threading
import time

from etl_pipeline.resources.spark_conf import LOOPBACK

#: Seconds the child gets to report its port.
START_TIMEOUT = 60.0


class _Child:
    lock = threading.Lock()
    process: subprocess.Popen | None = None
    url: str | None = None


def is_sail(master: str) -> bool:
    return master == "sail" or master.startswith("sail://")


def check_installed() -> None:
    """Raise ``RuntimeError`` when the ``pysail`` package is not installed."""
    if importlib.util.find_spec("pysail") is None:
        raise RuntimeError("SPARK_MASTER=sail needs the pysail package (pip install pysail)")


def refuse_s3_lake(master: str, lake_url: str) -> None:
    """Raise ``ValueError`` for Sail on an ``s3://`` lake: Sail would need the lake's endpoint and credentials in its
    own environment, which this project does not hand it."""
    if is_sail(master) and lake_url.startswith("s3://"):
        raise ValueError(f"SPARK_MASTER={master}: Sail runs on a lake directory only, not on {lake_url}; set "
                         "SPARK_MASTER to Apache Spark (local[*], spark:// or sc://) for an s3:// lake")


def connect_url(master: str) -> str:
    """The ``sc://host:port`` a Connect client uses for ``master`` (``sail`` or ``sail://host:port``).

    ``sail`` starts the child server on first use (later calls reuse it while it runs). Raises ``RuntimeError``
    when ``pysail`` is not installed or the server does not start within :data:`START_TIMEOUT` seconds.
    """
    if master != "sail":
        return "sc://" + master.removeprefix("sail://")
    with _Child.lock:
        if _Child.process is None or _Child.process.poll() is not None:
            check_installed()
            _Child.process, _Child.url = _start()
        return _Child.url


def _start() -> tuple[subprocess.Popen, str]:
    env = {**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "error")}  # no INFO lines, no no-op hints
    process = subprocess.Popen([sys.executable, "-m", __name__, "--parent", str(os.getpid())], env=env,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        ready = selector.select(START_TIMEOUT)
    address = process.stdout.readline().strip() if ready else ""
    if not address:
        process.kill()
        process.wait()
        raise RuntimeError(f"the Sail server did not start within {START_TIMEOUT:.0f} s (exit code "
                           f"{process.returncode}; its error, if any, is on stderr above)")
    return process, f"sc://{address}"


def stop() -> None:
    """Stop the child server, if one was started (after the session using it has stopped)."""
    with _Child.lock:
        process, _Child.process, _Child.url = _Child.process, None, None
    if process is not None and process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _serve(parent: int) -> None:
    """The child: a Sail server on a free loopback port; prints ``host:port``, then serves until ``parent`` exits
    (or a SIGTERM ends this process)."""
    from pysail.spark import SparkConnectServer

    server = SparkConnectServer(LOOPBACK, 0)
    server.start(background=True)
    host, port = server.listening_address
    print(f"{host}:{port}", flush=True)
    try:
        while os.getppid() == parent:
            time.sleep(0.5)
    finally:
        server.stop()


if __name__ == "__main__":
    arguments = argparse.ArgumentParser(description=_serve.__doc__)
    arguments.add_argument("--parent", type=int, required=True, help="the process id whose exit stops the server")
    _serve(arguments.parse_args().parent)
