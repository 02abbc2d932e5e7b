"""The class-data-sharing archive of a local Spark driver: the JVM maps Spark's classes from a file written by the
first run instead of loading and verifying them (a cold session plus its first query take about half as long)."""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)


def class_archive_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/covid-etl`` (default ``~/.cache/covid-etl``): a cache, safe to delete at any time."""
    env = os.environ if environ is None else environ
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covid-etl"


def class_archive_name(java_options: str, class_path: str = "") -> str:
    """The archive's file name, keyed by the JVM binary, Spark's jars, the extra class path (the JVM refuses an
    archive written with another) and the JVM options it is valid for."""
    from pyspark.find_spark_home import _find_spark_home

    java = Path(shutil.which("java", path=os.path.join(os.environ.get("JAVA_HOME", ""), "bin") + os.pathsep
                             + os.environ.get("PATH", "")) or "java").resolve()
    jars = sorted(Path(_find_spark_home(), "jars").glob("*.jar"))
    stamp = [str(java), java.stat().st_mtime if java.exists() else 0, java_options,
             [(j.name, j.stat().st_size) for j in jars], class_path]
    return f"spark-classes-{hashlib.sha256(json.dumps(stamp).encode()).hexdigest()[:16]}.jsa"


@functools.cache
def class_archive_options(java_options: str, stop_session: Callable[[], None], class_path: str = "") -> str:
    """JVM options for this process's local driver: start from the class-data-sharing archive when there is one
    (the JVM maps Spark's ~15,000 classes instead of loading and verifying them: a cold session plus its first
    query take about half as long); otherwise have this JVM write it at exit, for the next run.

    Decided once per process. ``stop_session`` stops the process's session at exit, before the JVM is let go.
    The JVM writes ``<name>.partial-<pid>``; the exit hook below lets the JVM exit,
    then renames it into place, so concurrent runs never see a half-written archive. The JVM ignores an
    archive that does not match it, silently (``-Xlog:cds=off``).
    """
    from pyspark import SparkContext

    if SparkContext._gateway is not None:  # the JVM is already running: its options are fixed
        return java_options
    directory = class_archive_dir()
    archive = directory / class_archive_name(java_options, class_path)
    quiet = "-Xlog:cds=off -Xlog:cds+dynamic=off"
    if archive.is_file():
        return f"{java_options} {quiet} -XX:SharedArchiveFile={archive}"
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.partial-*"):  # left by runs that were killed before publishing
        if time.time() - stale.stat().st_mtime > 3600:
            stale.unlink(missing_ok=True)
    partial = archive.with_name(f"{archive.name}.partial-{os.getpid()}")
    atexit.register(_publish_class_archive, partial, archive, stop_session)
    return f"{java_options} {quiet} -XX:ArchiveClassesAtExit={partial}"


def _publish_class_archive(partial: Path, archive: Path, stop_session: Callable[[], None]) -> None:
    """At exit: stop the session, close the JVM's stdin so that it exits and writes the archive, publish it."""
    from pyspark import SparkContext

    stop_session()
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
