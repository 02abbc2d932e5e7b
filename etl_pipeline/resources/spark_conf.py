"""What a Spark session is built with (pure: no session, no I/O beyond reading ``spark-defaults.conf``).

Settings, from weakest to strongest: :data:`BASE_CONF` (small-data defaults, UTC) and, for local masters,
:data:`LOCAL_CONF` (a JVM tuned to live for one run), the ``spark-defaults.conf`` file, then the jars and the
lake's ``s3a`` settings, then loopback binding for local masters. For ``sc://`` only the ``spark.sql.*`` runtime
settings are sent; static settings and S3 access belong to the Connect server's own ``spark-defaults.conf``, and
no credential leaves this process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from etl_pipeline.spark_jars import JarsUnavailable, classpath_conf, packages_conf

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
#: better (measured by ``covid-etl bench``). C1 alone makes the JVM size its code cache as a client VM's, 48 MB:
#: a run's hundreds of generated Spark classes filled it ("Out of space in CodeCache for adapters", a failed
#: step), so the cache gets the tiered JVM's 240 MB.
LOCAL_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m -XX:+UseSerialGC",
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


def resolve_conf_file(conf_file: str | None) -> Path | None:
    """The resource's file (``SPARK_DEFAULTS_CONF`` in the settings), else the repo's ``spark-defaults.conf`` if
    present."""
    if conf_file:
        return Path(conf_file)
    return REPO_SPARK_DEFAULTS if REPO_SPARK_DEFAULTS.is_file() else None


def is_connect(master: str) -> bool:
    """A Spark Connect client: ``sc://`` or Sail (``sail``, ``sail://``), which speaks the same protocol."""
    return master.startswith(("sc://", "sail://")) or master == "sail"


def is_local(master: str) -> bool:
    return master == "local" or master.startswith("local[")


def session_conf(
    master: str,
    defaults: Mapping[str, str],
    jars: Mapping[str, str] | None = None,
    s3a: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Every setting the session is built with (pure: no environment, no I/O). ``jars``: how the JVM gets the
    extra jars (:func:`jars_conf`); ``s3a``: the lake's ``spark.hadoop.fs.s3a.*`` settings
    (:meth:`~etl_pipeline.resources.lake.LakeResource.s3a_conf`)."""
    conf = {**BASE_CONF, **(LOCAL_CONF if is_local(master) else {}), **defaults, **(jars or {}), **(s3a or {})}
    if is_local(master):
        conf["spark.driver.host"] = LOOPBACK
        conf["spark.driver.bindAddress"] = LOOPBACK
    if is_connect(master):
        return {k: v for k, v in conf.items() if k.startswith("spark.sql.")}
    return conf


def jars_conf(master: str, packages: Sequence[str], ivy: str | Path) -> dict[str, str]:
    """How the JVM gets ``packages``: the jars ``covid-etl fetch-jars`` cached, on the class path (a cluster driver
    puts them on its executors' class path instead of shipping them to every executor, see
    :mod:`etl_pipeline.spark_jars`); a local driver whose cache lacks them resolves them itself
    (``spark.jars.packages``, fetched on first use; from the class path a local JVM starts without Ivy's
    resolution report and with Delta's classes in its class-data-sharing archive); a Connect client needs none
    (the server holds them)."""
    if not packages or is_connect(master):
        return {}
    try:
        return classpath_conf(packages, ivy)
    except JarsUnavailable:
        if not is_local(master):
            raise
        return packages_conf(packages, ivy)


def redacted(conf: Mapping[str, str]) -> dict[str, str]:
    """``conf`` with secret values replaced by ``***`` (for logs)."""
    return {k: "***" if SECRET_KEY.search(k) else v for k, v in conf.items()}


def redact_master(master: str) -> str:
    """Hide a Spark Connect ``;token=...`` parameter."""
    return re.sub(r"(?i)(token=)[^;]*", r"\1***", master)


