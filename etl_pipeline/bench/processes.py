"""Child processes measured from outside: wall time, CPU time and resident memory of the whole process tree.

A pipeline run is a Python process (Dagster, pandas, Arrow) plus, once Spark starts, a JVM it launches. A
thread samples both every ``interval`` seconds with psutil: the resident set of the Python process and of the
tree (Python + JVM and anything else it started), and the CPU seconds each process has used. CPU seconds are
reported beside wall time because this machine is shared: wall time swings with the load of other work, CPU
time much less.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SAMPLE_INTERVAL_S = 0.1


@dataclass(frozen=True)
class Sample:
    at: float  # epoch seconds (Dagster step statistics use the same clock)
    python_rss: int  # bytes, the child process itself
    tree_rss: int  # bytes, the child and every process below it (the Spark JVM)


@dataclass
class ChildRun:
    argv: list[str]
    returncode: int
    seconds: float
    cpu_seconds: float
    started_at: float
    stdout: str
    stderr: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def peak_python_rss(self) -> int:
        return max((s.python_rss for s in self.samples), default=0)

    @property
    def peak_tree_rss(self) -> int:
        return max((s.tree_rss for s in self.samples), default=0)

    def peaks_between(self, start: float, end: float) -> tuple[int, int]:
        """Peak (Python, tree) resident bytes among the samples taken in ``[start, end]``."""
        inside = [s for s in self.samples if start <= s.at <= end]
        return max((s.python_rss for s in inside), default=0), max((s.tree_rss for s in inside), default=0)

    def check(self) -> ChildRun:
        if self.returncode != 0:
            tail = "\n".join((self.stdout + "\n" + self.stderr).strip().splitlines()[-30:])
            raise RuntimeError(f"{' '.join(self.argv)} exited with {self.returncode}:\n{tail}")
        return self


class _Sampler(threading.Thread):
    def __init__(self, pid: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = psutil.Process(pid)
        self.interval = interval
        self.samples: list[Sample] = []
        self.cpu: dict[tuple[int, float], float] = {}  # (pid, create time) -> last CPU seconds seen
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.sample()
            self.done.wait(self.interval)

    def sample(self) -> None:
        try:
            processes = [self.root, *self.root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        python_rss = tree_rss = 0
        for process in processes:
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                    self.cpu[(process.pid, process.create_time())] = times.user + times.system
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            tree_rss += rss
            if process.pid == self.root.pid:
                python_rss = rss
        self.samples.append(Sample(time.time(), python_rss, tree_rss))


def run_child(
    argv: Sequence[str],
    env: Mapping[str, str],
    *,
    cwd: Path | None = None,
    timeout: float | None = None,
    interval: float = SAMPLE_INTERVAL_S,
) -> ChildRun:
    """Run ``argv`` to completion, sampling its process tree; output is captured, not shown."""
    argv = list(argv)
    started_at, started = time.time(), time.perf_counter()
    with subprocess.Popen(argv, env=dict(env), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as process:
        sampler = _Sampler(process.pid, interval)
        sampler.start()
        try:
            stdout, stderr = process.communicate(timeout=timeout)
        except BaseException:
            process.kill()
            raise
        finally:
            sampler.done.set()
            sampler.join()
        seconds = time.perf_counter() - started
    return ChildRun(argv, process.returncode, seconds, sum(sampler.cpu.values()), started_at, stdout, stderr,
                    sampler.samples)


def python_module(module: str, *args: str) -> list[str]:
    """``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def child_env(etl_home: Path, **overrides: str) -> dict[str, str]:
    """The environment of a pipeline child: embedded defaults under ``etl_home`` (nothing outside it is
    written) unless ``overrides`` point elsewhere."""
    deployment = ("SOURCE_DB_URL", "WAREHOUSE_DB_URL", "LAKE_URL", "S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID",
                  "AWS_SECRET_ACCESS_KEY", "SPARK_MASTER", "COVID_DATA_DIR", "DAGSTER_HOME")
    env = {k: v for k, v in os.environ.items() if k not in deployment}
    env.update(ETL_HOME=str(etl_home), SPARK_LOCAL_IP=env.get("SPARK_LOCAL_IP", "127.0.0.1"),
               PYSPARK_PYTHON=sys.executable)
    env.update(overrides)
    return env
