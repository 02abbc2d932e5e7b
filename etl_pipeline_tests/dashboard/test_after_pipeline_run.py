"""``covid-etl dashboard`` after ``covid-etl run``: both pages served from the warehouse the pipeline filled,
in a real (headless) browser, with a first payload under 1 MB."""

from __future__ import annotations

import subprocess
import sys
import urllib.request

import pytest

from etl_pipeline_tests.conftest import REPO_ROOT, embedded_env, free_port, wait_for_port
from etl_pipeline_tests.dashboard.test_browser import (
    console_errors,
    expected_map_points,
    map_points,
    open_page,
    save_full_page,
    text_of,
    wait_for,
    weights_shown,
)

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def served_after_run(embedded_run, tmp_path_factory):
    home, _ = embedded_run
    port = free_port()
    log_path = tmp_path_factory.mktemp("dashboard_after_run") / "server.log"
    env = embedded_env(home, DASH_MAP_STYLE="white-bg")
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "-m", "etl_pipeline.cli", "dashboard", "--port", str(port)],
                                   cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        if not wait_for_port(port, timeout=60):
            pytest.fail(f"covid-etl dashboard did not start:\n{log_path.read_text()}")
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_first_payload_is_small(served_after_run):
    with urllib.request.urlopen(served_after_run + "/_dash-layout", timeout=30) as response:
        assert len(response.read()) < 1_000_000


def test_spread_map_shows_the_pipelines_warehouse(browser, served_after_run, sources, artifacts):
    open_page(browser, served_after_run + "/")
    expected = expected_map_points(sources, "2020-07-27")
    wait_for(browser, lambda: map_points(browser) == expected, "map shows the locations of 27 July 2020")
    assert sum(point[2] for point in expected) == 16_480_485
    save_full_page(browser, artifacts / "after-run-spread-map.png")
    assert console_errors(browser) == []


def test_synthetic_control_page_fits_vietnam_from_the_warehouse(browser, served_after_run, artifacts):
    open_page(browser, served_after_run + "/synthetic-control")
    wait_for(browser, lambda: text_of(browser, "scm-title") == "What if Vietnam had not applied Directive 16?",
             "Vietnam study shown")
    wait_for(browser, lambda: len(weights_shown(browser)) == 10, "weights of the ten donors shown")
    weights = {donor: float(w) for donor, w in weights_shown(browser).items()}
    assert abs(sum(weights.values()) - 1) < 0.01 and min(weights.values()) >= 0
    save_full_page(browser, artifacts / "after-run-synthetic-control.png")
    assert console_errors(browser) == []
