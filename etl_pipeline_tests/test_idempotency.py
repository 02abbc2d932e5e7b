"""Repeated and concurrent ``covid-etl run`` on one ETL_HOME: the second of two runs started at once waits for the
first and says why, both succeed, and the warehouse and the lake then hold exactly what one undisturbed run
(``embedded_run``) stores. Lake tables are compared as rows (Spark names its part files at random).
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from etl_pipeline_tests.conftest import REPO_ROOT, embedded_env
from etl_pipeline_tests.test_warehouse_end_to_end import content_digest

LAYERS = ("bronze", "silver", "gold")


# -- what a home holds -------------------------------------------------------------------------------------
def lake_tables(home: Path) -> dict[str, pa.Table]:
    """Every Delta table of the lake (``<layer>/medical/<table>``) at its latest version, read by the deltalake
    library, its rows sorted on every column, by path relative to the lake."""
    lake = home / "lake"
    tables = {}
    for layer in LAYERS:
        for log in sorted((lake / layer / "medical").glob("*/_delta_log")):
            table = DeltaTable(str(log.parent)).to_pyarrow_table()
            tables[str(log.parent.relative_to(lake))] = table.sort_by([(c, "ascending") for c in table.column_names])
    return tables


def consecutive_versions(home: Path) -> dict[str, list[int]]:
    """Each lake table's versions, newest first: consecutive whenever no commit was lost or overwritten."""
    lake = home / "lake"
    return {str(log.parent.relative_to(lake)): [h["version"] for h in DeltaTable(str(log.parent)).history()]
            for layer in LAYERS for log in sorted((lake / layer / "medical").glob("*/_delta_log"))}


def warehouse_digest(home: Path) -> dict[str, str]:
    return content_digest(f"sqlite:///{home / 'warehouse.db'}")


def assert_same_content(home: Path, reference: Path) -> None:
    """``home`` holds exactly the warehouse rows and lake rows of ``reference``."""
    assert warehouse_digest(home) == warehouse_digest(reference)
    mine, theirs = lake_tables(home), lake_tables(reference)
    assert sorted(mine) == sorted(theirs)
    assert len(mine) == 4 + 5 + 6  # bronze, silver, gold tables
    for path, table in theirs.items():
        assert mine[path].schema == table.schema, path
        assert mine[path].equals(table), path


# -- two runs started at once --------------------------------------------------------------------------------
@dataclass
class Finished:
    pid: int
    status: int
    out: str
    err: str


@pytest.fixture(scope="module")
def runs_at_once(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> tuple[Path, list[Finished]]:
    home = tmp_path_factory.mktemp("two_runs_at_once")
    # --full-refresh: both runs write every table (without it the second finds nothing stale and writes nothing)
    command = [sys.executable, "-m", "etl_pipeline.cli", "run", "--full-refresh", "--data-dir", str(data_dir)]
    processes = [subprocess.Popen(command, env=embedded_env(home), cwd=REPO_ROOT, text=True,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    finished = []
    for process in processes:
        out, err = process.communicate(timeout=1800)
        finished.append(Finished(process.pid, process.returncode, out, err))
    return home, finished


def waiting_message(run: Finished) -> str | None:
    found = re.search(r"another covid-etl run holds .*run\.lock \(pid \w+\); waiting for it to finish[^\n]*", run.err)
    return found[0] if found else None


def test_both_runs_succeed_and_the_second_says_it_waits_for_the_first(runs_at_once) -> None:
    home, runs = runs_at_once
    for run in runs:
        assert run.status == 0, f"{run.out}\n{run.err}"
        assert "SUCCESS" in run.out
    [waiter] = [run for run in runs if waiting_message(run)]
    [holder] = [run for run in runs if run is not waiter]
    assert waiting_message(waiter) == (
        f"another covid-etl run holds {home / 'run.lock'} (pid {holder.pid}); waiting for it to finish so that "
        "the two runs do not write the same lake and databases at once")
    # the holder seeded the source database; the waiter, run after it, found it seeded from the same files
    assert holder.out.startswith("seeded the source database: ")
    assert waiter.out.startswith("source database already seeded from these files; not reloaded")


def test_two_runs_at_once_leave_what_one_undisturbed_run_leaves(runs_at_once, embedded_run) -> None:
    home, _ = runs_at_once
    reference, _ = embedded_run
    assert_same_content(home, reference)
    for table, versions in consecutive_versions(home).items():
        assert versions == [1, 0], table  # each run's write was its own commit
