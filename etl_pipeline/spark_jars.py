"""The JVM jars Spark needs beyond pyspark's own, named as Maven coordinates and fetched by Spark itself.

Spark resolves ``spark.jars.packages`` with its bundled Ivy (transitive dependencies, checksums) into the cache
directory ``spark.jars.ivy``, and reuses that cache on every later start. So this module only derives the
coordinates; nothing here downloads or parses a POM:

- Delta Lake for Spark, ``io.delta:delta-spark_<Scala version>:<version>``, at the version of the installed
  ``delta-spark`` Python package: pip already holds that package to the pyspark it supports (its
  ``Requires-Dist``), so the jar always matches the pinned pyspark, as Delta's own
  ``configure_spark_with_delta_pip`` does it;
- the S3A connector ``org.apache.hadoop:hadoop-aws`` at exactly the Hadoop version pyspark bundles (read from
  its ``jars/hadoop-client-api-<version>.jar``). hadoop-aws only works with the Hadoop release it was built
  with (https://hadoop.apache.org/docs/current/hadoop-aws/tools/hadoop-aws/troubleshooting_s3a.html); its POM
  declares the AWS SDK v2 ``bundle`` that release was tested with, so Ivy takes that too.

The cache directory is ``SPARK_JARS_IVY`` (default ``$XDG_CACHE_HOME/covid-etl/ivy``, i.e.
``~/.cache/covid-etl/ivy``): ``covid-etl fetch-jars`` fills it ahead of time (the Dockerfile and CI do) and
writes a class-path manifest of what it resolved.

How a JVM gets the jars depends on where its executors run:

- a local driver (``local[*]``) takes ``spark.jars.packages`` (:func:`packages_conf`): Spark resolves them from
  the cache, or fetches them on first use when Maven Central is reachable;
- a cluster driver (``spark://``) and a Spark Connect server put the cached jars on the driver's and the
  executors' class path (:func:`classpath_conf`). ``spark.jars.packages`` there would make every executor of
  every application download the ~700 MB from its driver, twice (work and fetch directories: 1.3 GB per worker
  after two runs, measured by the stack test); the workers read the same cache instead (the same image in
  docker-compose.yml, the same machine in the tests).

Standard library, pyspark and delta-spark's package metadata only, so that the Dockerfile runs this file on its
own (``python spark_jars.py``) before the project is installed, and the jar layer is not rebuilt when the code
changes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

HADOOP_GROUP = "org.apache.hadoop"
_HADOOP_CLIENT_API = re.compile(r"^hadoop-client-api-(?P<version>\d[\w.\-]*)\.jar$")
_SCALA_LIBRARY = re.compile(r"^scala-library-(?P<binary>\d+\.\d+)\.\d+\.jar$")

#: What makes a session use Delta Lake: its SQL extension and catalog (https://docs.delta.io/latest/quick-start.html).
DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


#: Dependencies of the packages that pyspark already ships (``$SPARK_HOME/jars``, at newer versions): resolved
#: too, a second Hadoop, Parquet, Jackson or log4j would sit on the class path beside Spark's own (Delta 4.4.0's
#: POM brings hadoop-client 3.4.2 and parquet 1.16 into a Spark built on 3.5.0 and 1.17). ``spark.jars.excludes``
#: drops them with everything they would bring. A test checks that nothing resolved is also in pyspark's jars.
PROVIDED_BY_SPARK = (
    "com.fasterxml.jackson.core:jackson-annotations", "com.fasterxml.jackson.core:jackson-core",
    "com.fasterxml.jackson.core:jackson-databind", "com.github.luben:zstd-jni", "com.google.code.findbugs:jsr305",
    "commons-logging:commons-logging", "commons-pool:commons-pool", "io.airlift:aircompressor",
    "org.apache.hadoop:hadoop-client-api", "org.apache.hadoop:hadoop-client-runtime",
    "org.apache.logging.log4j:log4j-api", "org.apache.logging.log4j:log4j-core",
    "org.apache.logging.log4j:log4j-slf4j2-impl", "org.apache.parquet:parquet-column",
    "org.apache.parquet:parquet-common", "org.apache.parquet:parquet-encoding",
    "org.apache.parquet:parquet-format-structures", "org.apache.parquet:parquet-hadoop",
    "org.apache.parquet:parquet-jackson", "org.locationtech.jts:jts-core", "org.roaringbitmap:RoaringBitmap",
    "org.slf4j:slf4j-api", "org.xerial.snappy:snappy-java",
)

#: How to fill the cache: the last line of every "jars unavailable" message.
FETCH_HINT = ("Fetch them once while Maven Central is reachable: covid-etl fetch-jars "
              "(SPARK_JARS_IVY names the cache directory)")


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


def scala_binary_version(jars_dir: Path | None = None) -> str:
    """The Scala binary version of pyspark's ``scala-library-<2.13.x>.jar``, e.g. ``"2.13"``."""
    jars_dir = jars_dir or spark_home() / "jars"
    versions = {m.group("binary") for p in jars_dir.glob("scala-library-*.jar") if (m := _SCALA_LIBRARY.match(p.name))}
    if len(versions) != 1:
        raise FileNotFoundError(f"expected one scala-library-<version>.jar in {jars_dir}, found {sorted(versions)}")
    return versions.pop()


def delta_packages(jars_dir: Path | None = None) -> list[str]:
    """Maven coordinates of Delta Lake for Spark matching the installed ``delta-spark``, e.g.
    ``io.delta:delta-spark_2.13:4.4.0``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        delta = version("delta-spark")
    except PackageNotFoundError as exc:
        raise FileNotFoundError("the delta-spark Python package is not installed (pip install delta-spark)") from exc
    return [f"io.delta:delta-spark_{scala_binary_version(jars_dir)}:{delta}"]


def s3a_packages(jars_dir: Path | None = None) -> list[str]:
    """Maven coordinates of the S3A connector matching pyspark's Hadoop, e.g. ``org.apache.hadoop:hadoop-aws:3.5.0``."""
    return [f"{HADOOP_GROUP}:hadoop-aws:{bundled_hadoop_version(jars_dir)}"]


def project_packages(jars_dir: Path | None = None) -> list[str]:
    """Every JVM package this project's sessions may load: Delta Lake, then the S3A connector."""
    return delta_packages(jars_dir) + s3a_packages(jars_dir)


def ivy_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``SPARK_JARS_IVY``, else ``$XDG_CACHE_HOME/covid-etl/ivy`` (default ``~/.cache/covid-etl/ivy``)."""
    env = os.environ if environ is None else environ
    if env.get("SPARK_JARS_IVY", "").strip():
        return Path(env["SPARK_JARS_IVY"].strip()).expanduser().absolute()
    return Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "covid-etl" / "ivy"


def packages_conf(packages: Sequence[str], ivy: Path | str) -> dict[str, str]:
    """The Spark settings that make a JVM resolve ``packages`` through the Ivy cache ``ivy`` (empty for none),
    plus Delta's extension and catalog when Delta is among them."""
    if not packages:
        return {}
    return {"spark.jars.packages": ",".join(packages), "spark.jars.excludes": ",".join(PROVIDED_BY_SPARK),
            "spark.jars.ivy": str(ivy), **delta_conf(packages)}


def delta_conf(packages: Sequence[str]) -> dict[str, str]:
    """:data:`DELTA_CONF` when Delta Lake is among ``packages``, else nothing."""
    return dict(DELTA_CONF) if any(p.startswith("io.delta:") for p in packages) else {}


def manifest_path(packages: Sequence[str], ivy: Path | str) -> Path:
    """Where :func:`fetch_jars` lists the jars it resolved for exactly these ``packages`` (and exclusions): a
    ``# <packages>`` line, then one jar path per line."""
    digest = hashlib.sha256(",".join([*sorted(packages), *PROVIDED_BY_SPARK]).encode()).hexdigest()[:16]
    return Path(ivy) / f"classpath-{digest}.txt"


def classpath_conf(packages: Sequence[str], ivy: Path | str) -> dict[str, str]:
    """Driver and executor class path holding the jars :func:`fetch_jars` resolved for ``packages`` or for a set
    of packages that includes them (``covid-etl fetch-jars`` resolves every package this project may load, which
    covers a Delta-only session too), plus Delta's extension and catalog when Delta is among them (empty for no
    package). Raises :class:`JarsUnavailable` naming ``covid-etl fetch-jars`` when they were not fetched."""
    if not packages:
        return {}
    covering = []
    for manifest in sorted(Path(ivy).glob("classpath-*.txt")):
        header, *jars = manifest.read_text().splitlines() or [""]
        if set(packages) <= set(header.removeprefix("# ").split(",")) and jars and all(Path(j).is_file() for j in jars):
            covering.append(jars)
    if covering:  # the fewest jars: a Delta-only session does without the S3 connector's 655 MB SDK
        classpath = ":".join(min(covering, key=len))
        return {"spark.driver.extraClassPath": classpath, "spark.executor.extraClassPath": classpath,
                **delta_conf(packages)}
    raise JarsUnavailable(f"the jars of {', '.join(packages)} are not in the cache {ivy} (no classpath-*.txt "
                          "lists them all).\nThe cache must be the same directory on the driver and the workers.\n"
                          + FETCH_HINT)


def forget_connect_mode() -> None:
    """Let this process build a classic (JVM) session after a Spark Connect one, and its children too.

    Building a Connect session sets ``SPARK_CONNECT_MODE_ENABLED`` in ``os.environ`` (pyspark's
    ``SparkSession.Builder.getOrCreate``); while it is set, a classic ``getOrCreate`` here or in any child process
    fails with ``CONNECT_URL_NOT_SET``. A classic master is chosen explicitly, so the mark is dropped before one
    is built."""
    os.environ.pop("SPARK_CONNECT_MODE_ENABLED", None)


def fetch_jars(packages: Sequence[str], ivy: Path) -> list[Path]:
    """Resolve ``packages`` into the cache ``ivy`` the way a session would (Spark's Ivy, in a short-lived local
    JVM), list the jar files Spark put on its class path in :func:`manifest_path`, and return them.

    Raises :class:`JarsUnavailable` with Spark's own resolution error when a package cannot be resolved.
    """
    from py4j.protocol import Py4JJavaError
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    if SparkContext._gateway is not None:  # its JVM resolved its packages when it started; it would list those
        raise RuntimeError("fetch_jars needs a process without a Spark JVM: one set of packages per process")

    forget_connect_mode()
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
    jars = sorted(Path(p.removeprefix("file://").removeprefix("file:")) for p in loaded.split(",") if p)
    manifest = manifest_path(packages, ivy)
    partial = manifest.with_name(f"{manifest.name}.partial-{os.getpid()}")
    partial.write_text(f"# {','.join(sorted(packages))}\n" + "".join(f"{jar}\n" for jar in jars))
    os.replace(partial, manifest)
    return jars


def unavailable_message(packages: Sequence[str], ivy: Path | str, cause: BaseException) -> str:
    return (f"Spark could not resolve {', '.join(packages)} (cache {ivy}): {str(cause).strip().splitlines()[0]}\n"
            f"{FETCH_HINT}")


def fetch_report(ivy: Path) -> str:
    """Fetch every package this project may need into ``ivy``, with a class-path manifest for a local lake's
    sessions (Delta Lake only) and one for an S3 lake's (plus the S3A connector); a few lines saying what is
    cached where."""
    lines = []
    for packages in (delta_packages(), project_packages()):
        # A JVM resolves packages only when it starts: each set in a JVM (and a process) of its own.
        done = subprocess.run([sys.executable, __file__, "--ivy", str(ivy), "--packages", ",".join(packages)],
                              capture_output=True, text=True, env={"SPARK_LOCAL_IP": "127.0.0.1", **os.environ})
        if done.returncode != 0:
            raise JarsUnavailable(done.stderr.strip().removeprefix("fetch-jars: error: "))
        jars = [Path(line) for line in manifest_path(packages, ivy).read_text().splitlines()[1:]]
        total = sum(j.stat().st_size for j in jars if j.exists())
        lines.append(f"{', '.join(packages)}: {len(jars)} jar(s), {total / 1e6:,.1f} MB, cached in {ivy}")
    return "\n".join(lines + [f"  {jar.name}" for jar in jars])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch the JVM jars Spark needs into their Ivy cache")
    parser.add_argument("--ivy", type=Path, help="cache directory (default: $SPARK_JARS_IVY, else "
                        "~/.cache/covid-etl/ivy)")
    parser.add_argument("--append-to", type=Path, metavar="SPARK_DEFAULTS_CONF",
                        help="then put the jars on the driver and executor class path in this spark-defaults.conf, "
                        "so that every spark-submit of an image (the Connect server) and its executors load them")
    parser.add_argument("--packages", help=argparse.SUPPRESS)  # fetch_report: one set of packages, this JVM
    args = parser.parse_args(argv)
    ivy = args.ivy or ivy_dir()
    try:
        if args.packages is None:
            print(fetch_report(ivy))
        else:
            fetch_jars(args.packages.split(","), ivy)
    except (JarsUnavailable, FileNotFoundError, ValueError) as exc:
        print(f"fetch-jars: error: {exc}", file=sys.stderr)
        return 1
    if args.append_to:
        with args.append_to.open("a") as conf:
            conf.write("\n# --- JVM jars from the image's Ivy cache (etl_pipeline/spark_jars.py, covid-etl fetch-jars) ---\n")
            conf.writelines(f"{key} {value}\n" for key, value in classpath_conf(project_packages(), ivy).items())
    return 0


if __name__ == "__main__":
    sys.exit(main())
