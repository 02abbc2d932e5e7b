"""Interleaved repetitions: ours, baseline, ours, baseline, ... and the median of each.

Alternating the two in one run exposes both to the same machine state; the ratio of medians is then
meaningful on a shared machine where absolute times drift with the load of other work.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

#: A measured callable returns the seconds to report, or None to report its own wall time.
Measured = Callable[[], float | None]


@dataclass(frozen=True)
class Pair:
    ours: list[float]
    baseline: list[float]

    @property
    def ours_s(self) -> float:
        return statistics.median(self.ours)

    @property
    def baseline_s(self) -> float:
        return statistics.median(self.baseline)


def timed(run: Measured) -> float:
    started = time.perf_counter()
    reported = run()
    return time.perf_counter() - started if reported is None else reported


def interleaved(ours: Measured, baseline: Measured, repeat: int,
                before_each: Callable[[], None] = lambda: None) -> Pair:
    """``repeat`` runs of each, alternating (ours first); ``before_each`` runs untimed before every run."""
    if repeat < 1:
        raise ValueError("repeat must be at least 1")
    pair = Pair([], [])
    for _ in range(repeat):
        for run, times in ((ours, pair.ours), (baseline, pair.baseline)):
            before_each()
            times.append(timed(run))
    return pair
