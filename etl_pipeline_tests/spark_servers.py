"""Spark servers for tests, run from the pip-installed pyspark on 127.0.0.1 with free ports.

- :class:`ConnectServer`: a Spark Connect server started by ``sbin/start-connect-server.sh`` and stopped by
  ``sbin/stop-connect-server.sh``, falling back to its pid.
- :class:`StandaloneCluster`: a standalone master and N workers. The pip package ships no
  ``start-master.sh``/``start-worker.sh``, so each is launched with ``bin/spark-class`` (which ``exec``\\ s
  the JVM, so the child's pid is the JVM's) and stopped by that pid.

Every process gets its own ``SPARK_CONF_DIR`` (holding :data:`TEST_SPARK_CONF`), log and pid directories
under a caller-provided directory, and is stopped by its own pid, never by process name.
"""

from __future__ import annotations

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


def spark_environment(base_dir: Path) -> dict[str, str]:
    """Environment for Spark scripts: isolated conf/log/pid dirs, bound to 127.0.0.1.

    ``SPARK_MASTER`` (this project's setting) is removed: ``spark-daemon.sh`` would ``rsync`` from it.
    Master and worker JVMs do little work, so they skip the optimizing JIT: they start several seconds
    faster on a 2-core machine.
    """
    env = {k: v for k, v in os.environ.items() if k not in ("SPARK_MASTER", "SPARK_REMOTE")}
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
    """A Spark Connect server (``--master local[N]``) on ``sc://127.0.0.1:<free port>``."""

    def __init__(self, base_dir: Path, master: str = "local[2]") -> None:
        self.base_dir = base_dir
        self.master = master
        self.port = free_port()
        self.env = spark_environment(base_dir)
        self.pid: int | None = None

    @property
    def url(self) -> str:
        return f"sc://{HOST}:{self.port}"

    def start(self) -> None:
        subprocess.run(
            [
                str(SPARK_HOME / "sbin" / "start-connect-server.sh"),
                "--master", self.master,
                "--conf", f"spark.connect.grpc.binding.address={HOST}",
                "--conf", f"spark.connect.grpc.binding.port={self.port}",
                "--conf", f"spark.driver.host={HOST}",
                "--conf", f"spark.driver.bindAddress={HOST}",
            ],
            env=self.env,
            check=True,
            capture_output=True,
        )
        pid_file = next(Path(self.env["SPARK_PID_DIR"]).glob("*.pid"), None)
        if pid_file is None:
            raise RuntimeError(f"start-connect-server.sh started nothing\n{_log_tail(self.env)}")
        pid = self.pid = int(pid_file.read_text().strip())
        if not _wait_serving(self.port, lambda: _pid_alive(pid)):
            self.stop()
            raise RuntimeError(f"Spark Connect server did not open port {self.port}\n"
                               f"{_log_tail(self.env)}")

    def stop(self) -> None:
        subprocess.run(
            [str(SPARK_HOME / "sbin" / "stop-connect-server.sh")], env=self.env, check=False, capture_output=True
        )
        if self.pid is not None and not _wait_gone(self.pid, STOP_TIMEOUT_S):
            os.kill(self.pid, signal.SIGKILL)
            _wait_gone(self.pid, STOP_TIMEOUT_S)
        self.pid = None


class StandaloneCluster:
    """A standalone master and ``workers`` workers on 127.0.0.1; ``master_url`` is ``spark://127.0.0.1:<port>``."""

    def __init__(self, base_dir: Path, workers: int = 2, cores_per_worker: int = 1, memory_per_worker: str = "1g"):
        self.base_dir = base_dir
        self.workers = workers
        self.cores_per_worker = cores_per_worker
        self.memory_per_worker = memory_per_worker
        self.port = free_port()
        self.webui_port = free_port()
        self.env = spark_environment(base_dir)
        self.processes: list[subprocess.Popen] = []

    @property
    def master_url(self) -> str:
        return f"spark://{HOST}:{self.port}"

    def _launch(self, name: str, *args: str) -> None:
        log_dir = Path(self.env["SPARK_LOG_DIR"])
        log_dir.mkdir(parents=True, exist_ok=True)
        with open(log_dir / f"{name}.log", "ab") as log:
            self.processes.append(
                subprocess.Popen(
                    [str(SPARK_HOME / "bin" / "spark-class"), *args],
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            )

    def alive_workers(self) -> int:
        with urllib.request.urlopen(f"http://{HOST}:{self.webui_port}/json/", timeout=2) as response:
            return int(json.load(response).get("aliveworkers", 0))

    def start(self) -> None:
        self._launch(
            "master", "org.apache.spark.deploy.master.Master",
            "--host", HOST, "--port", str(self.port), "--webui-port", str(self.webui_port),
        )
        for i in range(self.workers):
            self._launch(
                f"worker-{i}", "org.apache.spark.deploy.worker.Worker",
                "--host", HOST, "--webui-port", str(free_port()),
                "--cores", str(self.cores_per_worker), "--memory", self.memory_per_worker,
                "--work-dir", str(self.base_dir / f"work-{i}"),
                self.master_url,
            )
        if not self._wait_ready():
            self.stop()
            raise RuntimeError(f"standalone cluster not ready with {self.workers} workers\n"
                               f"{_log_tail(self.env)}")

    def _wait_ready(self) -> bool:
        if not _wait_serving(self.webui_port, lambda: all(p.poll() is None for p in self.processes)):
            return False
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                if self.alive_workers() >= self.workers:
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def stop(self) -> None:
        for process in reversed(self.processes):  # workers first, then the master
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=STOP_TIMEOUT_S)
        self.processes = []
