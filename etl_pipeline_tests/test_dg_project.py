"""The repository is a ``dg`` project ([tool.dg] in pyproject.toml): from its root, ``dg check defs`` validates and
``dg list defs`` lists the code location, the ``defs`` of etl_pipeline/definitions.py, as `dg dev` loads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from etl_pipeline_tests.conftest import REPO_ROOT

DG = Path(sys.executable).parent / "dg"


def dg(*args: str, etl_home: Path) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.endswith("_DB_URL")}  # embedded defaults
    env.update(ETL_HOME=str(etl_home), VIRTUAL_ENV=sys.prefix)
    return subprocess.run([str(DG), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_dg_check_defs_validates_the_code_location(tmp_path: Path) -> None:
    result = dg("check", "defs", etl_home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "All definitions loaded successfully." in result.stdout


def test_dg_list_defs_lists_the_code_location(tmp_path: Path) -> None:
    result = dg("list", "defs", "--json", etl_home=tmp_path)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assets = {asset["asset_key"]: asset for asset in listed["assets"]}
    assert len(assets) == 4 + 4 + 5 + 6 + 6  # source, bronze, silver, gold, warehouse
    assert set(assets["warehouse/medical/covid19_daily_stats"]["kinds"]) == {"sqlite"}  # the embedded warehouse
    assert [job["name"] for job in listed["jobs"]] == ["covid19_etl_job", "observe_sources_job"]
    assert listed["schedules"] == []  # the daily refresh is declarative automation (a sensor), not a schedule
    assert sorted(sensor["name"] for sensor in listed["sensors"]) == ["alert_on_run_failure", "daily_refresh"]
    assert len(listed["asset_checks"]) == 30
