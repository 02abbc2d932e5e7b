"""Bench results: one record per benchmark, the machine they ran on, a printed table and the JSON file.

``ratio`` always reads in the direction of the benchmark's target: a *speed-up* (``baseline_s / ours_s``,
higher is better) for the loaders, a *cost* (``ours_s / baseline_s``, lower is better) where the baseline is
a floor (the pandas pipeline) or a smaller run (scale growth).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal

import psutil

from etl_pipeline.bench.timing import Pair

RatioKind = Literal["speedup", "cost"]


@dataclass(frozen=True)
class Target:
    op: Literal[">=", "<="]
    value: float

    def met(self, ratio: float) -> bool:
        return ratio >= self.value if self.op == ">=" else ratio <= self.value

    def __str__(self) -> str:
        return f"{self.op} {self.value:g}"


@dataclass
class Result:
    name: str
    ours: str  # what was measured as ours
    baseline: str  # and as the baseline
    ratio_kind: RatioKind
    ours_s: float | None = None
    baseline_s: float | None = None
    ratio: float | None = None
    rows: int | None = None
    target: str | None = None
    met: bool | None = None
    repetitions: int = 0
    interleaved: bool = True  # ours and baseline alternated in the same run
    ours_runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def measured(self, pair: Pair, *, rows: int | None, target: Target | None = None) -> Result:
        """Fill in the medians of ``pair`` and the ratio between them."""
        self.ours_runs, self.baseline_runs = [round(t, 6) for t in pair.ours], [round(t, 6) for t in pair.baseline]
        self.ours_s, self.baseline_s = statistics.median(self.ours_runs), statistics.median(self.baseline_runs)
        self.repetitions, self.rows = len(pair.ours), rows
        self.ratio = round(ratio(self.ratio_kind, self.ours_s, self.baseline_s), 4)  # from the figures shown
        if target is not None:
            self.target, self.met = str(target), target.met(self.ratio)
        return self

    def skip(self, reason: str) -> Result:
        self.skipped = reason
        return self


def ratio(kind: RatioKind, ours_s: float, baseline_s: float) -> float:
    return baseline_s / ours_s if kind == "speedup" else ours_s / baseline_s


def machine() -> dict[str, Any]:
    """What the figures depend on: hardware, load, software versions."""
    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cores": psutil.cpu_count(logical=True),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "python": sys.version.split()[0],
        "java": _java_version(),
        **{package: version(package) for package in ("pyspark", "dagster", "pandas", "pyarrow")},
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _java_version() -> str:
    try:
        out = subprocess.run(["java", "-version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return (out.stderr or out.stdout).splitlines()[0] if (out.stderr or out.stdout) else "unknown"


#: Characters of the table's first column (the longest name, ``scale_100x_floor``, and a space).
NAME_WIDTH = 18


def format_table(results: list[Result]) -> str:
    header = f"{'benchmark':<{NAME_WIDTH}}{'ours s':>10}{'baseline s':>12}{'ratio':>9}  {'kind':<8}{'target':<8}{'met':<5}{'rows':>11}"
    lines = [header, "-" * len(header)]
    for r in results:
        if r.skipped:
            lines.append(f"{r.name:<{NAME_WIDTH}}{'skipped: ' + r.skipped}")
            continue
        met = "" if r.met is None else ("yes" if r.met else "NO")
        rows = "" if r.rows is None else f"{r.rows:,}"
        lines.append(f"{r.name:<{NAME_WIDTH}}{r.ours_s:>10.3f}{r.baseline_s:>12.3f}{r.ratio:>8.2f}x  {r.ratio_kind:<8}"
                     f"{r.target or '':<8}{met:<5}{rows:>11}")
    lines.append("")
    for r in results:
        how = "" if r.skipped else f"; median of {r.repetitions}" + (", interleaved" if r.interleaved else "")
        lines.append(f"{r.name}: ours = {r.ours}; baseline = {r.baseline}{how}")
        lines += [f"  {note}" for note in r.notes]
    return "\n".join(lines)


def write_json(path: Path, results: list[Result], machine_info: dict[str, Any]) -> None:
    machine_info = {**machine_info, "load_average_at_end": [round(x, 2) for x in os.getloadavg()]}
    path.write_text(json.dumps({"results": [asdict(r) for r in results], "machine": machine_info}, indent=2) + "\n")
