"""``covid-etl run`` as a bench child: the same ``run_pipeline`` call, plus a JSON record of when each step ran.

``python -m etl_pipeline.bench.pipeline_child DATA_DIR RECORD_JSON [--history]`` prints the run summary as
``covid-etl run`` does and writes ``{"success", "wall_s", "steps": [{"key", "layer", "start", "end"}],
"spark_start_s"}``; the parent combines the step windows with its memory samples to report time and peak RSS per
layer. The run's Dagster instance is ephemeral (nothing of it is kept), unless ``--history``: then it is the
``ETL_HOME``'s, as for ``covid-etl run``, so that a later run over the same home knows what is up to date (the
incremental benchmark).
"""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path

LAYERS = ("source", "bronze", "silver", "gold", "warehouse")
_SESSION_READY = re.compile(r"Spark session ready in ([0-9.]+) s")


class _SessionStart(logging.Handler):
    """Catches the session provider's "Spark session ready in X s" line."""

    seconds: float | None = None

    def emit(self, record: logging.LogRecord) -> None:
        match = _SESSION_READY.match(record.getMessage())
        if match:
            self.seconds = float(match.group(1))


def step_layer(step_key: str) -> str:
    """Asset and check steps are named ``<layer>__medical__<table>[_<check>]``."""
    layer = step_key.split("__", 1)[0]
    return layer if layer in LAYERS else "other"


def main(argv: list[str]) -> int:
    data_dir, record, history = Path(argv[0]), Path(argv[1]), "--history" in argv[2:]
    import dagster as dg

    from etl_pipeline.run import run_history, run_pipeline
    from etl_pipeline.settings import Settings

    spark_log = logging.getLogger("etl_pipeline.resources.spark")
    session = _SessionStart()
    spark_log.addHandler(session)
    spark_log.setLevel(logging.INFO)
    settings = Settings.from_env()
    with run_history(settings) if history else dg.DagsterInstance.ephemeral() as instance:
        summary = run_pipeline(settings, data_dir, instance=instance)
        [run] = instance.get_runs(limit=1)
        steps = [{"key": s.step_key, "layer": step_layer(s.step_key), "start": s.start_time, "end": s.end_time}
                 for s in instance.get_run_step_stats(run.run_id) if s.start_time and s.end_time]
    print(summary.format())
    record.write_text(json.dumps({"success": summary.success, "wall_s": summary.wall_seconds,
                                  "steps": sorted(steps, key=lambda s: s["start"]), "spark_start_s": session.seconds,
                                  "rows": {name: layer.rows for name, layer in summary.layers.items()}}))
    return 0 if summary.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
