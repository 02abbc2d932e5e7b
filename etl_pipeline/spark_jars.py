"""The JVM jars Spark needs beyond pyspark's own, named as Maven coordinates and fetched by Spark itself.

Spark resolves ``spark.jars.packages`` with its bundled Ivy (transitive dependencies, checksums) into the cache
directory ``spark.jars.ivy``, and reuses that cache on every later start. So this module only derives the
coordinates; nothing here downloads or parses a POM:

- the S3A connector ``org.apache.hadoop:hadoop-aws`` at exactly the Hadoop version pyspark bundles (read from
  its ``jars/hadoop-client-api-<version>.jar``). hadoop-aws only works with the Hadoop release it was built
  with (https://hadoop.apache.org/docs/current/hadoop-aws/tools/hadoop-aws/troubleshooting_s3a.html); its POM
  declares the AWS SDK v2 ``bundle`` that release was tested with, so Ivy takes that too.

The cache directory is ``SPARK_JARS_IVY`` (default ``$XDG_CACHE_HOME/covid-etl/ivy``, i.e.
``~/.cache/covid-etl/ivy``): ``covid-etl fetch-jars`` fills it ahead of time (the Dockerfile and CI do), and a
session that needs the jars fills it on first use when Maven Central is reachable.

Standard library and pyspark only, so that the Dockerfile runs this file on its own (``python spark_jars.py``)
before the project is installed, and the jar layer is not rebuilt when the code changes.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HADOOP_GROUP = "org.apache.hadoop"
_HADOOP_CLIENT_API = re.compile(r"^hadoop-client-api-(?P<version>\d[\w.\-]*)\.jar$")


class JarsUnavailable(RuntimeError):
    """Spark could not resolve the packages (no network and nothing cached); names the command that fetches them."""


def spark_home() -> Path:
    """pyspark's package directory, which is ``SPARK_HOME`` for a pip-installed Spark."""
    from pyspark.find_spark_home import _find_spark_home

    return Path(_find_spark_home())


def bundled_hadoop_version(jars_dir: Path | None = None) -> str:
    """The Hadoop version of ``hadoop-client-api-<version>.jar`` in ``jars_dir`` (default ``$SPARK_HOME/jars``).

    Raises ``FileNotFoundError`` when there is none, ``ValueError`` when there are several versions.
    """
    jars_dir = jars_dir or spark_home() / "jars"
    versions = {m.group("version") for p in jars_dir.glob("hadoop-client-api-*.jar")
                if (m := _HADOOP_CLIENT_API.match(p.name))}
    if not versions:
        raise FileNotFoundError(f"no hadoop-client-api-<version>.jar in {jars_dir}: is pyspark installed?")
    if len(versions) > 1:
        raise ValueError(f"several Hadoop versions in {jars_dir}: {sorted(versions)}")
    return versions.pop()


def s3a_packages(jars_dir: Path | None = None) -> list[str]:
    """Maven coordinates of the S3A connector matching pyspark's Hadoop, e.g. ``org.apache.hadoop:hadoop-aws:3.5.0``."""
    return [f"{HADOOP_GROUP}:hadoop-aws:{bundled_hadoop_version(jars_dir)}"]


def ivy_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``SPARK_JARS_IVY``, else ``$XDG_CACHE_HOME/covid-etl/ivy`` (default ``~/.cache/covid-etl/ivy``)."""
    env = os.environ if environ is None else environ
    if env.get("SPARK_JARS_IVY", "").strip():
        return Path(env["SPARK_JARS_IVY"].strip()).expanduser().absolute()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covid-etl" / "ivy"


def packages_conf(packages: Sequence[str], ivy: Path | str) -> dict[str, str]:
    """The Spark settings that make a JVM resolve ``packages`` through the Ivy cache ``ivy`` (empty for none)."""
    if not packages:
        return {}
    return {"spark.jars.packages": ",".join(packages), "spark.jars.ivy": str(ivy)}


def fetch_jars(packages: Sequence[str], ivy: Path) -> list[Path]:
    """Resolve ``packages`` into the cache ``ivy`` the way a session would (Spark's Ivy, in a short-lived local
    JVM) and return the jar files Spark put on its class path (``<ivy>/jars``).

    Raises :class:`JarsUnavailable` with Spark's own resolution error when a package cannot be resolved.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark.sql import SparkSession

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    ivy.mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder.master("local[1]").appName("covid-etl-fetch-jars")
    try:
        session = builder.config(map={**packages_conf(packages, ivy), "spark.ui.enabled": "false"}).getOrCreate()
    except (Py4JJavaError, RuntimeError) as exc:
        raise JarsUnavailable(unavailable_message(packages, ivy, exc)) from exc
    try:
        loaded = session.sparkContext.getConf().get("spark.jars", "")
    finally:
        session.stop()
    return sorted(Path(p.removeprefix("file://").removeprefix("file:")) for p in loaded.split(",") if p)


def unavailable_message(packages: Sequence[str], ivy: Path | str, cause: BaseException) -> str:
    return (f"Spark could not resolve {', '.join(packages)} (cache {ivy}): {str(cause).strip().splitlines()[0]}\n"
            "Fetch them once while Maven Central is reachable: covid-etl fetch-jars "
            "(SPARK_JARS_IVY names the cache directory)")


def fetch_report(ivy: Path) -> str:
    """Fetch every package this project may need into ``ivy``; a few lines saying what is cached where."""
    packages = s3a_packages()
    jars = fetch_jars(packages, ivy)
    total = sum(j.stat().st_size for j in jars if j.exists())
    lines = [f"{', '.join(packages)}: {len(jars)} jar(s), {total / 1e6:,.1f} MB, cached in {ivy}"]
    return "\n".join(lines + [f"  {jar.name}" for jar in jars])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the JVM jars Spark needs into their Ivy cache")
    parser.add_argument("--ivy", type=Path, help="cache directory (default: $SPARK_JARS_IVY, else "
                        "~/.cache/covid-etl/ivy)")
    parser.add_argument("--append-to", type=Path, metavar="SPARK_DEFAULTS_CONF",
                        help="then append spark.jars.packages and spark.jars.ivy to this spark-defaults.conf, so "
                        "that every spark-submit of an image (the Connect server) resolves them from the cache")
    args = parser.parse_args(argv)
    ivy = args.ivy or ivy_dir()
    try:
        print(fetch_report(ivy))
    except (JarsUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"fetch-jars: error: {exc}", file=sys.stderr)
        return 1
    if args.append_to:
        with args.append_to.open("a") as conf:
            conf.write("\n# --- JVM packages, resolved from the image's Ivy cache (etl_pipeline/spark_jars.py) ---\n")
            conf.writelines(f"{key} {value}\n" for key, value in packages_conf(s3a_packages(), ivy).items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
