"""``covid-etl run`` does only the work that changed: on an ETL_HOME holding a complete run (a copy of
``embedded_run``), a run over unchanged files observes the sources and materializes nothing; a run after one
source table changed rewrites exactly that table's bronze and what depends on it; and a run back over the shared
files leaves the lake and the warehouse equal, row for row, to the from-scratch run over them.
"""

from __future__ import annotations

import contextlib
import shutil
import sqlite3
from pathlib import Path

import dagster as dg
import pytest
from deltalake import DeltaTable

from etl_pipeline_tests.conftest import covid_etl, embedded_env
from etl_pipeline_tests.test_idempotency import LAYERS, assert_same_content
from etl_pipeline_tests.test_warehouse_end_to_end import content_digest

#: The assets that read worldometer, directly or through another asset (the population reaches the country
#: dimension, and through it every gold table keyed by country; fact_location_daily keys locations, not countries).
READ_WORLDOMETER = [
    "bronze/medical/covid19_worldometer",
    "silver/medical/covid19_countries", "silver/medical/covid19_worldometer",
    "gold/medical/covid19_continent_stats", "gold/medical/covid19_daily_stats", "gold/medical/dim_country",
    "gold/medical/dim_date", "gold/medical/fact_daily_cases",
]
#: The six warehouse tables: published together, whichever gold table changed.
WAREHOUSE = [f"warehouse/medical/{t}" for t in ("covid19_continent_stats", "covid19_daily_stats", "dim_country",
                                                "dim_date", "fact_daily_cases", "fact_location_daily")]


def lake_versions(home: Path) -> dict[str, int]:
    lake = home / "lake"
    return {str(log.parent.relative_to(lake)): DeltaTable(str(log.parent)).version()
            for layer in LAYERS for log in sorted((lake / layer / "medical").glob("*/_delta_log"))}


def runs_of(home: Path) -> list[str]:
    """The job of every run in the home's Dagster instance, oldest first."""
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        return [run.job_name for run in reversed(instance.get_runs())]


def materialized_in_last_run(home: Path) -> list[str]:
    with dg.DagsterInstance.from_config(str(home / "dagster")) as instance:
        [run] = instance.get_runs(limit=1)
        return sorted(event.dagster_event.event_specific_data.materialization.asset_key.to_user_string()
                      for event in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION))


@pytest.fixture(scope="module")
def home(embedded_run, tmp_path_factory: pytest.TempPathFactory) -> Path:
    source, _ = embedded_run
    return Path(shutil.copytree(source, tmp_path_factory.mktemp("incremental") / "home",
                                ignore=shutil.ignore_patterns("run.lock")))


@pytest.fixture(scope="module")
def brazil_revised(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared files with one revision: Brazil's population in worldometer, 212,710,692 -> 212,710,700."""
    target = tmp_path_factory.mktemp("brazil_revised")
    for file in data_dir.iterdir():
        shutil.copyfile(file, target / file.name)
    worldometer = target / "covid19_worldometer.csv"
    text = worldometer.read_text()
    assert text.count("\nBrazil,South America,212710692,") == 1
    worldometer.write_text(text.replace("\nBrazil,South America,212710692,", "\nBrazil,South America,212710700,"))
    return target


def test_unchanged_files_materialize_nothing_and_change_nothing(home: Path, data_dir: Path) -> None:
    versions, warehouse, jobs = lake_versions(home), content_digest(f"sqlite:///{home / 'warehouse.db'}"), runs_of(home)
    result = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    out = result.stdout.splitlines()
    assert out[:3] == [
        "source database already seeded from these files; not reloaded",
        "up to date: no source table changed since the assets last read them and no blocking check failed; nothing "
        "materialized (covid-etl run --full-refresh rebuilds everything)",
        out[2]]
    assert out[2].startswith("SUCCESS in ")
    assert "layer" not in result.stdout  # no layer table: no run materialized anything
    assert (f"  DAGSTER_HOME={home / 'dagster'} dg dev -h 127.0.0.1 -p 3000   (the earlier runs, their checks and "
            "step logs at http://127.0.0.1:3000)") in out
    assert lake_versions(home) == versions
    assert content_digest(f"sqlite:///{home / 'warehouse.db'}") == warehouse
    assert runs_of(home) == [*jobs, "observe_sources_job"]  # the sources were observed; no Spark, no asset job


def test_one_changed_table_rewrites_exactly_what_reads_it(home: Path, brazil_revised: Path) -> None:
    versions = lake_versions(home)
    result = covid_etl("run", "--data-dir", str(brazil_revised), env=embedded_env(home))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert ("stale: bronze/medical/covid19_worldometer (source/medical/covid19_worldometer changed); these and "
            "everything downstream materialized") in result.stdout.splitlines()
    rewritten = sorted(path for path, version in lake_versions(home).items() if version != versions[path])
    assert rewritten == sorted(READ_WORLDOMETER)
    assert all(lake_versions(home)[path] == versions[path] + 1 for path in rewritten)  # one commit each
    assert materialized_in_last_run(home) == sorted(READ_WORLDOMETER + WAREHOUSE)  # published together
    with contextlib.closing(sqlite3.connect(home / "warehouse.db")) as db:
        assert db.execute("SELECT population FROM dim_country WHERE country_region = 'Brazil'").fetchall() == [
            (212_710_700,)]


def test_going_back_to_the_shared_files_equals_the_from_scratch_run(home: Path, data_dir: Path,
                                                                     embedded_run) -> None:
    result = covid_etl("run", "--data-dir", str(data_dir), env=embedded_env(home))
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert "stale: bronze/medical/covid19_worldometer (source/medical/covid19_worldometer changed)" in result.stdout
    reference, _ = embedded_run
    assert_same_content(home, reference)
