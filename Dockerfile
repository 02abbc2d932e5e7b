# syntax=docker/dockerfile:1
#
# One image for every Python/JVM service in docker-compose.yml (Spark master, workers and Connect server, the
# Dagster code location, webserver and daemon, the dashboard, the seed job), so that Python, PySpark and the
# jars are the same in the driver, on the executors and in the UI.
#
#   docker compose build            (or: docker build -t covid19-etl:0.1.0 .)
#
# Spark is the pip-installed pyspark: SPARK_HOME is its package directory. The only jars added are Delta Lake
# (at the pip-installed delta-spark's version) and the S3A connector matching the Hadoop that pyspark bundles,
# fetched by Spark itself (etl_pipeline/spark_jars.py).

# Debian 12 (bookworm) packages OpenJDK 17, the JRE this project runs Spark 4 with (Debian 13 moved to 21).
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# JRE for Spark; tini as PID 1 (forwards signals, reaps the JVMs' children); curl for the health checks.
# The runtime user owns the writable state only (/opt/etl, /opt/dagster); named volumes mounted there
# inherit that ownership.
# The man1 directory: slim images leave out man pages, but the JRE's postinst links into it.
RUN mkdir -p /usr/share/man/man1 \
    && apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless tini curl \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 etl \
    && useradd --system --uid 10001 --gid etl --create-home --home-dir /home/etl --shell /usr/sbin/nologin etl \
    && mkdir -p /opt/etl/data /opt/etl/spark-work /opt/dagster/home /opt/dagster/storage \
    && chown -R etl:etl /opt/etl /opt/dagster \
    && python -m venv "$VIRTUAL_ENV"

# Third-party packages first, at the exact versions the test suite ran with: this layer is rebuilt only when
# the dependencies change, not when the code does.
COPY pyproject.toml deploy/constraints.txt deploy/requirements-image.txt /tmp/build/
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('/tmp/build/pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/build/requirements-project.txt \
    && pip install -c /tmp/build/constraints.txt -r /tmp/build/requirements-project.txt -r /tmp/build/requirements-image.txt \
    && rm -rf /tmp/build

ENV SPARK_HOME=/opt/venv/lib/python3.11/site-packages/pyspark
ENV SPARK_JARS_IVY=/opt/spark-ivy
# Spark reads $SPARK_HOME/conf/spark-defaults.conf when it starts a JVM (driver, Connect server); the session
# provider reads the same file through SPARK_DEFAULTS_CONF.
COPY spark-defaults.conf $SPARK_HOME/conf/spark-defaults.conf
# The JVM jars (Delta Lake for Spark at delta-spark's version; the S3A connector: hadoop-aws at pyspark's Hadoop
# version and the AWS SDK v2 bundle its POM declares), resolved by Spark's own Ivy into the cache every driver and the Connect server read through
# spark.jars.ivy (etl_pipeline/spark_jars.py, the same code as `covid-etl fetch-jars`), and put on the driver
# and executor class path in the image's spark-defaults.conf with Delta's SQL extension and catalog: the Connect
# server, the dagster-code driver and every executor load them from this cache, so no application ships ~700 MB
# to its executors. It runs on its own, before the project is installed, so these layers depend only on the
# pyspark and delta-spark versions. The runtime user
# owns the cache: a local driver's Ivy writes its resolution files there.
COPY etl_pipeline/spark_jars.py /tmp/spark_jars.py
RUN test -x "$SPARK_HOME/bin/spark-class" \
    && python /tmp/spark_jars.py --ivy "$SPARK_JARS_IVY" --append-to "$SPARK_HOME/conf/spark-defaults.conf" \
    && chown -R etl:etl "$SPARK_JARS_IVY" \
    && rm /tmp/spark_jars.py

COPY deploy/dagster.yaml deploy/workspace.yaml /opt/dagster/home/

# The project itself, without touching the pinned dependencies; `pip check` proves the set is consistent.
COPY pyproject.toml README.md /tmp/src/
COPY etl_pipeline /tmp/src/etl_pipeline
COPY dashboard /tmp/src/dashboard
RUN pip install --no-deps /tmp/src \
    && pip check \
    && rm -rf /tmp/src

ENV ETL_HOME=/opt/etl \
    COVID_DATA_DIR=/opt/etl/data \
    DAGSTER_HOME=/opt/dagster/home \
    SPARK_DEFAULTS_CONF=${SPARK_HOME}/conf/spark-defaults.conf \
    PYSPARK_PYTHON=/opt/venv/bin/python

USER 10001:10001
WORKDIR /opt/etl
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["covid-etl", "--help"]
