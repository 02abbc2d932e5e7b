"""The Spark session provider: one session per process, built lazily, reused by every Spark step, stopped at exit.

``master`` (``SPARK_MASTER``) picks where Spark runs:

- ``local[*]``: a JVM inside this process (a cold start costs seconds, so it is paid once per process);
- ``spark://host:port``: a standalone cluster, with this process as the driver;
- ``sc://host:port``: a Spark Connect client (sub-second), the server owning the JVM.

Settings, from weakest to strongest: :data:`BASE_CONF` (small-data defaults, UTC) and, for local masters,
:data:`LOCAL_CONF` (a JVM tuned to live for one run), the ``spark-defaults.conf`` file, then this resource's own
fields (S3 endpoint and credentials, loopback binding for local masters).
For ``sc://`` only the ``spark.sql.*`` runtime settings are sent; static settings and S3 access belong to the
Connect server's own ``spark-defaults.conf``, and no credential leaves this process.

A process holds one session at a time, keyed by its configuration: every resource instance with the same
configuration gets the same session; asking for a different one stops the current session first (tests
switch masters this way; a deployment never does, its configuration is fixed per process). PySpark turns a
process that opened a Connect session into a Connect-only process, so ``sc://`` cannot switch back to a
classic master within one process. The session is stopped at interpreter exit.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Union

import dagster as dg
from pydantic import Field

from etl_pipeline.spark_jars import JarsUnavailable, classpath_conf, ivy_dir, packages_conf, unavailable_message

if TYPE_CHECKING:
    from pyspark.sql import SparkSession as ClassicSession
    from pyspark.sql.connect.session import SparkSession as ConnectSession

    AnySparkSession = Union[ClassicSession, ConnectSession]

logger = logging.getLogger(__name__)

#: ``spark-defaults.conf`` at the repository root, used when neither the resource nor ``SPARK_DEFAULTS_CONF`` names one.
REPO_SPARK_DEFAULTS = Path(__file__).resolve().parents[2] / "spark-defaults.conf"
LOOPBACK = "127.0.0.1"

#: Defaults for this project's small tables; ``spark-defaults.conf`` may override any of them.
BASE_CONF: Mapping[str, str] = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.ui.showConsoleProgress": "false",
}

#: For a local driver, whose JVM lives only as long as one run: no web UI, and a JIT that compiles cheaply (C1 only)
#: with a single-threaded collector. On two cores this halves the CPU time of a run, so a run shares the machine
#: better (measured by ``covid-etl bench``).
LOCAL_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}

#: Keys whose values are never logged (Spark's own ``spark.redaction.regex`` default).
SECRET_KEY = re.compile(r"(?i)secret|password|token|access[.]?key")


def parse_spark_defaults(text: str) -> dict[str, str]:
    """Parse ``spark-defaults.conf`` text as Spark reads it (Java properties; Spark trims the values).

    One ``key value`` per line (``key=value`` and ``key:value`` also work); blank lines and lines starting
    with ``#`` or ``!`` are comments; a later key wins. Backslash escapes and continuation lines, which
    Spark's own files do not use, are not supported.
    """
    conf: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = re.match(r"([^\s=:]+)\s*[=:\s]\s*(.*)$", line)
        if match:
            conf[match.group(1)] = match.group(2).strip()
        else:
            conf[line] = ""
    return conf


def resolve_conf_file(conf_file: str | None, environ: Mapping[str, str] | None = None) -> Path | None:
    """The resource's file, else ``SPARK_DEFAULTS_CONF``, else the repo's ``spark-defaults.conf`` if present."""
    env = os.environ if environ is None else environ
    if conf_file:
        return Path(conf_file)
    if env.get("SPARK_DEFAULTS_CONF"):
        return Path(env["SPARK_DEFAULTS_CONF"])
    return REPO_SPARK_DEFAULTS if REPO_SPARK_DEFAULTS.is_file() else None


def is_connect(master: str) -> bool:
    return master.startswith("sc://")


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def session_conf(
    master: str,
    defaults: Mapping[str, str],
    s3_endpoint_url: str | None = None,
    aws_access_key_id: str | None = None,
    aws_secret_access_key: str | None = None,
    jars: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every setting the session is built with (pure: no environment, no I/O). ``jars``: how the JVM gets the
    extra jars (:func:`jars_conf`)."""
    conf = {**BASE_CONF, **(LOCAL_CONF if is_local(master) else {}), **defaults, **(jars or {})}
    if is_local(master):
        conf["spark.driver.host"] = LOOPBACK
        conf["spark.driver.bindAddress"] = LOOPBACK
    if s3_endpoint_url:
        conf["spark.hadoop.fs.s3a.endpoint"] = s3_endpoint_url
        conf["spark.hadoop.fs.s3a.path.style.access"] = "true"
        conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(s3_endpoint_url.startswith("https://")).lower()
    if aws_access_key_id:
        conf["spark.hadoop.fs.s3a.access.key"] = aws_access_key_id
    if aws_secret_access_key:
        conf["spark.hadoop.fs.s3a.secret.key"] = aws_secret_access_key
    if is_connect(master):
        return {k: v for k, v in conf.items() if k.startswith("spark.sql.")}
    return conf


def jars_conf(master: str, packages: Sequence[str], ivy: str | Path) -> dict[str, str]:
    """A local driver resolves ``packages`` itself (``spark.jars.packages``, fetched on first use); a cluster
    driver puts the cached jars on its executors' class path instead of shipping them to every executor
    (see :mod:`etl_pipeline.spark_jars`); a Connect client needs none (the server holds them)."""
    if not packages or is_connect(master):
        return {}
    return packages_conf(packages, ivy) if is_local(master) else classpath_conf(packages, ivy)


def redacted(conf: Mapping[str, str]) -> dict[str, str]:
    """``conf`` with secret values replaced by ``***`` (for logs)."""
    return {k: "***" if SECRET_KEY.search(k) else v for k, v in conf.items()}


def _redact_master(master: str) -> str:
    """Hide a Spark Connect ``;token=...`` parameter."""
    return re.sub(r"(?i)(token=)[^;]*", r"\1***", master)


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
        return SparkSession.builder.remote(master).config(map=dict(conf)).getOrCreate()
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
            _redact_master(master),
            redacted(conf),
        )
        _ProcessSession.key, _ProcessSession.session = key, session
        return session


def _stop_locked() -> None:
    session, _ProcessSession.session, _ProcessSession.key = _ProcessSession.session, None, None
    if session is not None:
        session.stop()


def stop_process_session() -> None:
    """Stop the process's session (registered with ``atexit``; tests call it to switch masters)."""
    with _ProcessSession.lock:
        _stop_locked()


atexit.register(stop_process_session)


# -- class-data-sharing archive of a local driver -----------------------------------------------------------------


def class_archive_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/covid-etl`` (default ``~/.cache/covid-etl``): a cache, safe to delete at any time."""
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covid-etl"


def class_archive_name(java_options: str) -> str:
    """The archive's file name, keyed by the JVM binary, Spark's jars and the JVM options it is valid for."""
    from pyspark.find_spark_home import _find_spark_home

    java = Path(shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin") + os.pathsep
                             + os.environ.get("PATH", "")) or "java").resolve()
    jars = sorted(Path(_find_spark_home(), "jars").glob("*.jar"))
    stamp = [str(java), java.stat().st_mtime if java.exists() else 0, java_options,
             [(j.name, j.stat().st_size) for j in jars]]
    return f"spark-classes-{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]}.jsa"


@functools.cache
def class_archive_options(java_options: str) -> str:
    """JVM options for this process's local driver: start from the class-data-sharing archive when there is one
    (the JVM maps Spark's ~15,000 classes instead of loading and verifying them: a cold session plus its first
    query take about half as long); otherwise have this JVM write it at exit, for the next run.

    Decided once per process. The JVM writes ``<name>.partial-<pid>``; the exit hook below lets the JVM exit,
    then renames it into place, so concurrent runs never see a half-written archive. The JVM ignores an
    archive that does not match it, silently (``-Xlog:cds=off``).
    """
    from pyspark import SparkContext

    if SparkContext._gateway is not None:  # the JVM is already running: its options are fixed
        return java_options
    directory = class_archive_dir()
    archive = directory / class_archive_name(java_options)
    quiet = "-Xlog:cds=off -Xlog:cds+dynamic=off"
    if archive.is_file():
        return f"{java_options} {quiet} -XX:SharedArchiveFile={archive}"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.partial-*"):  # left by runs that were killed before publishing
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    partial = archive.with_name(f"{archive.name}.partial-{os.getpid()}")
    atexit.register(_publish_class_archive, partial, archive)
    return f"{java_options} {quiet} -XX:ArchiveClassesAtExit={partial}"


def _publish_class_archive(partial: Path, archive: Path) -> None:
    """At exit: stop the session, close the JVM's stdin so that it exits and writes the archive, publish it."""
    from pyspark import SparkContext

    stop_process_session()
    process = getattr(SparkContext._gateway, "proc", None)
    if process is None:
        return
    try:
        process.stdin.close()
        process.wait(timeout=120)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        logger.warning("the Spark JVM did not exit in time; its class archive is not published")
        return
    if partial.is_file():
        os.replace(partial, archive)


class SparkSessionResource(dg.ConfigurableResource):
    """Hands every Spark step of a process the same session (see the module docstring)."""

    master: str = Field(default="local[*]", description="local[*], spark://host:port or sc://host:port")
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = Field(default=None, repr=False)
    aws_secret_access_key: str | None = Field(default=None, repr=False)
    conf_file: str | None = Field(
        default=None,
        description="spark-defaults.conf; default: $SPARK_DEFAULTS_CONF, else the repository's spark-defaults.conf",
    )
    packages: list[str] = Field(
        default_factory=list,
        description="Maven coordinates Spark resolves at start (the S3A connector for an s3:// lake)",
    )
    ivy_dir: str | None = Field(default=None, description="Ivy cache of those jars; default: SPARK_JARS_IVY")
    app_name: str = "covid19-etl"
    class_archive: bool = Field(
        default=True,
        description="local masters: start the driver JVM from a class-data-sharing archive kept in "
        "$XDG_CACHE_HOME/covid-etl (written by the first run)",
    )

    def conf(self) -> dict[str, str]:
        path = resolve_conf_file(self.conf_file)
        defaults = parse_spark_defaults(path.read_text()) if path else {}
        return session_conf(
            self.master, defaults, self.s3_endpoint_url, self.aws_access_key_id, self.aws_secret_access_key,
            jars_conf(self.master, self.packages, self.ivy_dir or ivy_dir()),
        )

    def get_session(self) -> AnySparkSession:
        conf = self.conf()
        if self.class_archive and is_local(self.master):
            options = conf.get("spark.driver.extraJavaOptions", "")
            conf["spark.driver.extraJavaOptions"] = class_archive_options(options).strip()
        return process_session(self.master, self.app_name, conf)
