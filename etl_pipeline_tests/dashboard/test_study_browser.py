"""The study page's predictors and robustness checks in headless Chromium, against ``dashboard.app.serve`` over the
CSV-built warehouse: tick predictors, see V and the balance table, run the in-time placebo and leave-one-out and
see them plotted; the numbers shown are those of the study computed here from the CSVs. A screenshot of the page
goes to ``test-artifacts/dashboard-study-predictors.png``."""

from __future__ import annotations

import pandas as pd
import pytest
from selenium.common.exceptions import ElementClickInterceptedException, ElementNotInteractableException
from selenium.webdriver.common.by import By

from dashboard.formatting import format_value
from dashboard.study import DEFAULT_DONORS, balance_table, leave_one_out_table, run_robustness, run_study
from etl_pipeline_tests.conftest import WORLDOMETER_NAMES
from etl_pipeline_tests.dashboard.test_browser import (
    console_errors,
    layout_problems,
    open_page,
    save_full_page,
    text_of,
    wait_for,
    weights_shown,
)

pytestmark = pytest.mark.browser

CHOSEN = ["population", "case_growth", "outcome_lags"]
STUDY = dict(
    treated="Vietnam", donors=list(DEFAULT_DONORS), intervention="2020-04-01", outcome="confirmed", method="scm"
)


@pytest.fixture(scope="module")
def panel(sources) -> pd.DataFrame:
    """The warehouse's study panel, rebuilt from the CSVs: confirmed per day plus worldometer's population."""
    series = sources["series"]
    population = sources["worldometer"].set_index("Country/Region")["Population"]
    chosen = series["country_region"].isin(["Vietnam", *DEFAULT_DONORS])
    frame = series.loc[chosen, ["country_region", "date", "confirmed"]]
    return frame.assign(population=frame["country_region"].map(lambda c: population.get(WORLDOMETER_NAMES.get(c, c))))


def clicked(browser, xpath: str) -> bool:
    """Click the element; False while the page's loading overlay (shown during a refit) hides or covers it."""
    try:
        browser.find_element(By.XPATH, xpath).click()
    except (ElementClickInterceptedException, ElementNotInteractableException):
        return False
    return True


def predictor_option(key: str) -> str:
    """The option's label: Dash draws its own box over the checkbox input."""
    return f"//*[@id='scm-predictors']//input[@value='{key}']/ancestor::label[1]"


def rows_of(browser, table_id: str) -> list[list[str]]:
    rows = browser.find_elements(By.CSS_SELECTOR, f"#{table_id} tbody tr")
    return [[cell.text for cell in row.find_elements(By.TAG_NAME, "td")] for row in rows]


def trace_names(browser, graph_id: str) -> list[str] | None:
    return browser.execute_script(
        f"var g = document.querySelector('#{graph_id} .js-plotly-plot');"
        "return g && g.data ? g.data.map(t => t.name) : null;"
    )


def test_predictors_v_balance_and_robustness_checks(browser, dashboard_url, panel, artifacts):
    open_page(browser, dashboard_url + "/synthetic-control")
    wait_for(browser, lambda: len(weights_shown(browser)) == 10, "the default study is shown")
    disabled = browser.find_elements(By.CSS_SELECTOR, "#scm-predictors input[disabled]")
    assert {box.get_attribute("value") for box in disabled} == {"tests_per_million", "population_density"}
    assert "not in the warehouse" in text_of(browser, "scm-predictors")
    for key in CHOSEN:  # each click refits
        wait_for(browser, lambda key=key: clicked(browser, predictor_option(key)), f"predictor {key} ticked")

    study = run_study(panel, **STUDY, predictors=CHOSEN)
    balance = balance_table(study)
    expected_rows = [
        [row.predictor, f"{row.v:.3f}", *map(format_value, (row.treated, row.synthetic, row.donor_mean))]
        for row in balance.itertuples()
    ]
    wait_for(browser, lambda: rows_of(browser, "scm-balance") == expected_rows, "balance table of the three predictors")
    assert weights_shown(browser) == {donor: f"{w:.3f}" for donor, w in study.fit.weights.items()}
    assert text_of(browser, "scm-pre-rmspe") == format_value(study.fit.pre_rmspe, "cases")
    v_bars = "return document.querySelector('#scm-v-graph .js-plotly-plot').data[0].y"
    assert browser.execute_script(v_bars) == list(balance["predictor"][::-1])
    assert "importance V" in text_of(browser, "scm-caption")

    wait_for(browser, lambda: clicked(browser, "//*[@id='scm-robustness-run']"), "robustness checks started")
    robustness = run_robustness(panel, **STUDY, predictors=CHOSEN, placebo_date="2020-03-11")
    loo = leave_one_out_table(robustness)
    wait_for(browser, lambda: [r[0] for r in rows_of(browser, "scm-loo-table")] == list(loo["left_out"]),
             "leave-one-out table")  # fmt: skip
    assert [r[3] for r in rows_of(browser, "scm-loo-table")] == [format_value(g) for g in loo["last_gap"]]
    assert trace_names(browser, "scm-in-time-graph") == ["Vietnam", "Synthetic Vietnam (placebo fit)"]
    positive = list(loo["left_out"][1:])
    expected_traces = [*(f"without {d}" for d in positive), "Vietnam", "Synthetic Vietnam"]
    assert trace_names(browser, "scm-loo-graph") == expected_traces
    assert "as if Vietnam had acted on 11 March 2020" in text_of(browser, "scm-robustness-caption")
    save_full_page(browser, artifacts / "dashboard-study-predictors.png")
    graphs = ("scm-v-graph", "scm-in-time-graph", "scm-loo-graph")
    assert [p for g in graphs for p in layout_problems(browser, g)] == []
    assert console_errors(browser) == []
