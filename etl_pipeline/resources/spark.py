"""The Spark session provider: one session per process, built lazily, reused by every Spark step, stopped at exit.

``master`` (``SPARK_MASTER``) picks where Spark runs:

- ``sail`` (the embedded default) or ``sail://host:port``: a Spark Connect client of Sail, a JVM-free engine
  (:mod:`etl_pipeline.resources.sail_server`; ``sail`` runs it in a child process of this one);
- ``local[*]``: Apache Spark, a JVM inside this process (a cold start costs seconds, paid once per process);
- ``spark://host:port``: a standalone cluster, with this process as the driver;
- ``sc://host:port``: a Spark Connect client (sub-second), the server owning the JVM.

What the session is built with is :mod:`etl_pipeline.resources.spark_conf` (the lake's ``s3a`` settings come
from the :class:`~etl_pipeline.resources.lake.LakeResource` handed to the resource).

A process holds one session at a time, keyed by its configuration: every resource instance with the same
configuration gets the same session; asking for a different one stops the current session first (tests
switch masters this way; a deployment never does, its configuration is fixed per process). The session is
stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Union

import dagster as dg
from pydantic import Field

from etl_pipeline.resources import sail_server
from etl_pipeline.resources.class_archive import class_archive_options
from etl_pipeline.resources.lake import LakeResource
from etl_pipeline.resources.spark_conf import (
    LOOPBACK,
    is_connect,
    is_local,
    jars_conf,
    parse_spark_defaults,
    redact_master,
    redacted,
    resolve_conf_file,
    session_conf,
)
from etl_pipeline.settings import EMBEDDED_MASTER
from etl_pipeline.spark_jars import (
    JarsUnavailable,
    delta_packages,
    forget_connect_mode,
    ivy_dir,
    s3a_packages,
    unavailable_message,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession as ClassicSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    AnySparkSession = Union[ClassicSession, ConnectSession]

logger = logging.getLogger(__name__)


class _ProcessSession:
    """The process's one session and the (hashed) configuration it was built from."""

    lock = threading.Lock()
    key: str | None = None
    session: AnySparkSession | None = None


def _config_key(master: str, app_name: str, conf: Mapping[str, str]) -> str:
    payload = json.dumps([master, app_name, sorted(conf.items())])
    return hashlib.sha256(payload.encode()).hexdigest()


def _is_usable(session: AnySparkSession) -> bool:
    if hasattr(session, "is_stopped"):  # Spark Connect client
        return not session.is_stopped
    return session.sparkContext._jsc is not None


def _build(master: str, app_name: str, conf: Mapping[str, str]) -> AnySparkSession:
    from pyspark.sql import SparkSession

    if is_connect(master):
        url = sail_server.connect_url(master) if sail_server.is_sail(master) else master
        return SparkSession.builder.remote(url).config(map=dict(conf)).getOrCreate()
    forget_connect_mode()
    if is_local(master):
        os.environ.setdefault("SPARK_LOCAL_IP", LOOPBACK)
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # local executors run this interpreter
    try:
        return SparkSession.builder.master(master).appName(app_name).config(map=dict(conf)).getOrCreate()
    except RuntimeError as exc:  # the launcher resolves packages before the JVM starts: no network nor cache
        if "spark.jars.packages" not in conf:
            raise
        packages = conf["spark.jars.packages"].split(",")
        raise JarsUnavailable(unavailable_message(packages, conf.get("spark.jars.ivy", "~/.ivy2"), exc)) from exc


def process_session(master: str, app_name: str, conf: Mapping[str, str]) -> AnySparkSession:
    """The process's session for this configuration, built on first use."""
    key = _config_key(master, app_name, conf)
    with _ProcessSession.lock:
        current = _ProcessSession.session
        if current is not None and _ProcessSession.key == key and _is_usable(current):
            return current
        if current is not None:
            logger.warning("Spark configuration changed in this process: stopping the current session")
            _stop_locked()
        started = time.monotonic()
        session = _build(master, app_name, conf)
        logger.info(
            "Spark session ready in %.1f s: master=%s conf=%s",
            time.monotonic() - started,
            redact_master(master),
            redacted(conf),
        )
        _ProcessSession.key, _ProcessSession.session = key, session
        return session


def _stop_locked() -> None:
    session, _ProcessSession.session, _ProcessSession.key = _ProcessSession.session, None, None
    if session is not None:
        session.stop()
    sail_server.stop()


def stop_process_session() -> None:
    """Stop the process's session (registered with ``atexit``; tests call it to switch masters)."""
    with _ProcessSession.lock:
        _stop_locked()


atexit.register(stop_process_session)


class SparkSessionResource(dg.ConfigurableResource):
    """Hands every Spark step of a process the same session (see the module docstring)."""

    master: str = Field(default=EMBEDDED_MASTER,
                        description="local[*], spark://host:port, sc://host:port, sail or sail://host:port")
    lake: LakeResource | None = Field(default=None, description="the lake this session reads and writes (its "
                                      "s3a settings); none for a session that never touches the lake")
    conf_file: str | None = Field(
        default=None,
        description="spark-defaults.conf (SPARK_DEFAULTS_CONF); default: the repository's spark-defaults.conf",
    )
    packages: list[str] | None = Field(
        default=None,
        description="Maven coordinates Spark resolves at start; default (required_packages): Delta Lake, plus the "
        "S3A connector when the lake is on S3",
    )
    ivy_dir: str | None = Field(default=None, description="Ivy cache of those jars; default: SPARK_JARS_IVY")
    app_name: str = "covid19-etl"
    class_archive: bool = Field(
        default=True,
        description="local masters: start the driver JVM from a class-data-sharing archive kept in "
        "$XDG_CACHE_HOME/covid-etl (written by the first run)",
    )

    def required_packages(self) -> list[str]:
        """``packages`` if given, else Delta Lake (every lake table is a Delta table, and a JVM takes jars only when
        it starts, so every session of a process carries it) plus the S3A connector for an ``s3://`` lake. A
        Spark Connect client loads none whatever this says: the server holds them (:func:`jars_conf`)."""
        if self.packages is not None:
            return list(self.packages)
        return delta_packages() + (s3a_packages() if self.lake is not None and self.lake.is_s3 else [])

    def conf(self) -> dict[str, str]:
        path = resolve_conf_file(self.conf_file)
        defaults = parse_spark_defaults(path.read_text()) if path else {}
        jars = jars_conf(self.master, self.required_packages(), self.ivy_dir or ivy_dir())
        return session_conf(self.master, defaults, jars,
                            self.lake.s3a_conf() if self.lake else None)

    def get_session(self) -> AnySparkSession:
        """The process's session (see the module docstring). Raises ``ValueError`` for Sail on an ``s3://`` lake
        (:func:`~etl_pipeline.resources.sail_server.refuse_s3_lake`)."""
        if self.lake is not None:
            sail_server.refuse_s3_lake(self.master, self.lake.url)
        conf = self.conf()
        if self.class_archive and is_local(self.master):
            options = conf.get("spark.driver.extraJavaOptions", "")
            conf["spark.driver.extraJavaOptions"] = class_archive_options(
                options, stop_process_session, conf.get("spark.driver.extraClassPath", "")).strip()
        return process_session(self.master, self.app_name, conf)
