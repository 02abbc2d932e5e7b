"""Spark servers for tests, run from the pip-installed pyspark on 127.0.0.1 with free ports.

- :class:`ConnectServer`: a Spark Connect server, and
- :class:`StandaloneCluster`: a standalone master and N workers. The pip package ships no
  ``start-master.sh``/``start-worker.sh`` (and pyspark 4.2 no ``start-connect-server.sh``), so each is started
  and stopped with the ``sbin/spark-daemon.sh`` those scripts wrap (``submit`` for the Connect server, as
  ``start-connect-server.sh`` does), which keeps each JVM's pid in a file.

Every process gets its own ``SPARK_CONF_DIR`` (holding :data:`TEST_SPARK_CONF`), log and pid directories
under a caller-provided directory, and is stopped by its own pid file, never by process name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import pyspark

from etl_pipeline_tests.conftest import free_port, wait_for_port

SPARK_HOME = Path(pyspark.__file__).resolve().parent
SPARK_DAEMON = SPARK_HOME / "sbin" / "spark-daemon.sh"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
HOST = "127.0.0.1"
START_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 30.0

#: Small-data settings shared by test sessions and test servers: no web UI, few shuffle partitions.
TEST_SPARK_CONF: Mapping[str, str] = {
    "spark.ui.enabled": "false",
    "spark.sql.shuffle.partitions": "4",
}


def write_spark_defaults(path: Path, conf: Mapping[str, str]) -> Path:
    """Write ``conf`` as a spark-defaults.conf file (``key value`` lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{key} {value}\n" for key, value in conf.items()))
    return path


def spark_environment(base_dir: Path, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for Spark scripts: isolated conf/log/pid dirs, bound to 127.0.0.1, plus ``extra`` (e.g. the
    lake's ``AWS_*`` keys, which a deployment gives the workers and the Connect server in their environment).

    ``SPARK_MASTER`` (this project's setting) is removed: ``spark-daemon.sh`` would ``rsync`` from it.
    Master and worker JVMs do little work, so they skip the optimizing JIT: they start several seconds
    faster on a 2-core machine.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_REMOTE")}
    env.update(extra or {})
    conf_dir = base_dir / "conf"
    write_spark_defaults(conf_dir / "spark-defaults.conf", TEST_SPARK_CONF)
    env.setdefault("SPARK_DAEMON_JAVA_OPTS", "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC")
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_CONF_DIR=str(conf_dir),
        SPARK_LOCAL_IP=HOST,
        SPARK_LOG_DIR=str(base_dir / "logs"),
        SPARK_PID_DIR=str(base_dir / "pids"),
    )
    return env


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.1)
    return not _pid_alive(pid)


def _wait_serving(port: int, alive: Callable[[], bool]) -> bool:
    """Wait until ``port`` accepts connections; give up early once the process has died."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if wait_for_port(port, timeout=1.0):
            return True
        if not alive():
            return False
    return False


def _log_tail(env: Mapping[str, str], lines: int = 30) -> str:
    """The end of the newest log under ``SPARK_LOG_DIR``, for start-up errors."""
    log_dir = Path(env["SPARK_LOG_DIR"])
    logs = sorted(log_dir.glob("*"), key=lambda p: p.stat().st_mtime) if log_dir.is_dir() else []
    if not logs:
        return "(no log)"
    return f"{logs[-1]}:\n" + "\n".join(logs[-1].read_text(errors="replace").splitlines()[-lines:])


class ConnectServer:
    """A Spark Connect server on ``sc://127.0.0.1:<free port>``, its driver on ``master`` (``local[N]`` or a
    standalone cluster) with the extra Spark settings ``conf`` (``--conf``; ``spark.jars.packages`` among them
    is resolved by ``spark-submit`` before the server starts) and the extra environment ``environment``."""

    def __init__(
        self,
        base_dir: Path,
        master: str = "local[2]",
        conf: Mapping[str, str] | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> None:
        self.base_dir = base_dir
        self.master = master
        self.conf = dict(conf or {})
        self.port = free_port()
        self.env = spark_environment(base_dir, environment)
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"sc://{HOST}:{self.port}"

    def start(self) -> None:
        subprocess.run(
            [
                str(SPARK_DAEMON), "submit", CONNECT_CLASS, "1", "--name", "Spark Connect server",
                "--master", self.master,
                "--conf", f"spark.connect.grpc.binding.address={HOST}",
                "--conf", f"spark.connect.grpc.binding.port={self.port}",
                "--conf", f"spark.driver.host={HOST}",
                "--conf", f"spark.driver.bindAddress={HOST}",
                *(arg for key, value in self.conf.items() for arg in ("--conf", f"{key}={value}")),
            ],
            env=self.env,
            check=True,
            capture_output=True,
        )
        pid_file = next(Path(self.env["SPARK_PID_DIR"]).glob(f"*-{CONNECT_CLASS}-*.pid"), None)
        if pid_file is None:
            raise RuntimeError(f"spark-daemon.sh submit started nothing\n{_log_tail(self.env)}")
        pid = self.pid = int(pid_file.read_text().strip())
        if not _wait_serving(self.port, lambda: _pid_alive(pid)):
            self.stop()
            raise RuntimeError(f"Spark Connect server did not open port {self.port}\n"
                               f"{_log_tail(self.env)}")

    def stop(self) -> None:
        subprocess.run(
            [str(SPARK_DAEMON), "stop", CONNECT_CLASS, "1"], env=self.env, check=False, capture_output=True
        )
        if self.pid is not None and not _wait_gone(self.pid, STOP_TIMEOUT_S):
            os.kill(self.pid, signal.SIGKILL)
            _wait_gone(self.pid, STOP_TIMEOUT_S)
        self.pid = None


class StandaloneCluster:
    """A standalone master and ``workers`` workers on 127.0.0.1; ``master_url`` is ``spark://127.0.0.1:<port>``.

    Started and stopped like a deployment's ``sbin`` scripts do: ``spark-daemon.sh start|stop`` with the master as
    instance 1 and the workers as instances ``1..workers``, each JVM's pid in a file under ``SPARK_PID_DIR``.
    Worker ``n`` keeps its executors' directories (``<app id>/<executor id>/stderr``) in :meth:`worker_dir`.
    ``environment`` is added to every daemon's environment, which the workers pass on to their executors.
    """

    def __init__(
        self,
        base_dir: Path,
        workers: int = 2,
        cores_per_worker: int = 1,
        memory_per_worker: str = "1g",
        environment: Mapping[str, str] | None = None,
    ):
        self.base_dir = base_dir
        self.cores_per_worker = cores_per_worker
        self.memory_per_worker = memory_per_worker
        self.port = free_port()
        self.webui_port = free_port()
        self.worker_numbers = range(1, workers + 1)
        self.worker_webui_ports = {n: free_port() for n in self.worker_numbers}
        self.env = spark_environment(base_dir, environment)

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    def worker_dir(self, number: int) -> Path:
        return self.base_dir / f"work-{number}"

    def _daemon(self, action: str, daemon_class: str, instance: int, *args: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(SPARK_DAEMON), action, daemon_class, str(instance), *args],
            env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )

    def _run_daemons(self, action: str, daemons: list[tuple[str, int, list[str]]]) -> None:
        """Run ``spark-daemon.sh`` for several daemons at once (``start`` waits ~2.5 s per daemon)."""
        for script in [self._daemon(action, name, instance, *args) for name, instance, args in daemons]:
            script.wait(timeout=START_TIMEOUT_S)

    def pid_files(self) -> list[Path]:
        pid_dir = Path(self.env["SPARK_PID_DIR"])
        return sorted(pid_dir.glob("*.pid")) if pid_dir.is_dir() else []

    def pids(self) -> list[int]:
        return [int(path.read_text().strip()) for path in self.pid_files()]

    def _json(self, port: int) -> dict:
        with urllib.request.urlopen(f"http://{HOST}:{port}/json/", timeout=5) as response:
            return json.load(response)

    def master_state(self) -> dict:
        """The master UI's ``/json/``: workers, ``activeapps``, ``completedapps``."""
        return self._json(self.webui_port)

    def worker_state(self, number: int) -> dict:
        """Worker ``number``'s UI ``/json/``: ``executors`` and ``finishedexecutors`` with ``appid`` and ``id``."""
        return self._json(self.worker_webui_ports[number])

    def alive_workers(self) -> int:
        return int(self.master_state().get("aliveworkers", 0))

    def start(self) -> None:
        self._run_daemons("start", [(
            MASTER_CLASS, 1, ["--host", HOST, "--port", str(self.port), "--webui-port", str(self.webui_port)],
        )])
        # Workers started before the master listens retry only after 5-15 s, so wait for it first.
        master_up = _wait_serving(self.port, lambda: all(_pid_alive(pid) for pid in self.pids()))
        if master_up:
            self._run_daemons("start", [
                (WORKER_CLASS, n, [
                    "--host", HOST, "--webui-port", str(self.worker_webui_ports[n]),
                    "--cores", str(self.cores_per_worker), "--memory", self.memory_per_worker,
                    "--work-dir", str(self.worker_dir(n)),
                    self.master_url,
                ])
                for n in self.worker_numbers
            ])
        if not (master_up and self._wait_ready()):
            tail = _log_tail(self.env)
            self.stop()
            raise RuntimeError(f"standalone cluster not ready with {len(self.worker_numbers)} workers\n{tail}")

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.alive_workers() >= len(self.worker_numbers):
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        """``spark-daemon.sh stop`` the workers, then the master; kill what outlives :data:`STOP_TIMEOUT_S`.

        Idempotent. Afterwards no pid file is left: a file whose process had already died is removed too.
        """
        started = {path: int(path.read_text().strip()) for path in self.pid_files()}
        self._run_daemons("stop", [(WORKER_CLASS, n, []) for n in self.worker_numbers])
        self._run_daemons("stop", [(MASTER_CLASS, 1, [])])
        for path, pid in started.items():
            if not _wait_gone(pid, STOP_TIMEOUT_S):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                _wait_gone(pid, STOP_TIMEOUT_S)
            path.unlink(missing_ok=True)
