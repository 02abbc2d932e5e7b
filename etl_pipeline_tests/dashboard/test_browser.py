"""Both pages in headless Chromium against ``dashboard.app.serve`` over the CSV-built warehouse: they render
without console errors, the slider and play button move the map through the days, and changing the treated
country refits the study. Screenshots of each page go to ``test-artifacts/``."""

from __future__ import annotations

import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from dashboard.formatting import format_value
from dashboard.study import DEFAULT_DONORS
from etl_pipeline.analytics.synthetic_control import fit_synthetic_control, placebo_test

pytestmark = pytest.mark.browser

TIMEOUT_S = 60
MAP_POINTS = (
    "var g = document.querySelector('#spread-map .js-plotly-plot');"
    "return g && g._fullData && g._fullData[0] ? g._fullData[0].customdata : null;"
)


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(browser, condition, message: str):
    return WebDriverWait(browser, TIMEOUT_S).until(lambda _: condition(), message=message)


def text_of(browser, element_id: str) -> str:
    found = browser.find_elements(By.ID, element_id)
    return found[0].text if found else ""


def open_page(browser, url: str) -> None:
    console_errors(browser)  # drop what earlier tests left in the log
    browser.get(url)


def save_full_page(browser, path) -> None:
    """Screenshot of the whole page, not just the window (the window grows to the page's height meanwhile)."""
    width, height = browser.get_window_size()["width"], browser.get_window_size()["height"]
    page_height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(width, max(height, page_height + 100))
    try:
        browser.save_screenshot(str(path))
    finally:
        browser.set_window_size(width, height)


def expected_map_points(sources, day: str) -> list[list]:
    """[label, WHO region, confirmed, deaths] of every location with cases that day, from the position CSV."""
    positions = sources["positions"]
    rows = positions[(positions["date"] == day) & (positions["confirmed"] > 0)]
    labels = [f"{p}, {c}" if p else c for p, c in zip(rows["province_state"], rows["country_region"], strict=True)]
    return sorted(
        [label, who, int(confirmed), int(deaths)]
        for label, who, confirmed, deaths in zip(
            labels, rows["who_region"], rows["confirmed"], rows["deaths"], strict=True
        )
    )


def map_points(browser) -> list[list] | None:
    points = browser.execute_script(MAP_POINTS)
    return sorted(points) if points is not None else None


def test_spread_map_page_renders_the_last_day(browser, dashboard_url, sources, artifacts):
    open_page(browser, dashboard_url + "/")
    expected = expected_map_points(sources, "2020-07-27")
    wait_for(browser, lambda: map_points(browser) == expected, "map shows the locations of 27 July 2020")
    assert text_of(browser, "map-date") == "27 July 2020"
    assert browser.title == "Spread map · COVID-19 warehouse"
    assert sum(point[2] for point in expected) == 16_480_485
    trend = "return document.querySelector('#trend-graph .js-plotly-plot').data.map(t => t.name)"
    wait_for(browser, lambda: browser.execute_script(trend) == ["Confirmed", "Deaths", "Recovered", "Active"], "trend")
    continents = "return document.querySelector('#continent-graph .js-plotly-plot').data[0].y"
    assert browser.execute_script(continents)[-1] == "North America"
    assert browser.find_elements(By.CSS_SELECTOR, "#spread-map canvas"), "the map was drawn"
    save_full_page(browser, artifacts / "dashboard-spread-map.png")
    assert console_errors(browser) == []


def test_moving_the_slider_loads_that_days_map_data(browser, dashboard_url, sources):
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "map-date") == "27 July 2020", "page loaded")
    handle = browser.find_element(By.CSS_SELECTOR, "#map-day [role=slider]")
    handle.send_keys(Keys.HOME)
    first_day = expected_map_points(sources, "2020-01-22")
    wait_for(browser, lambda: map_points(browser) == first_day, "map shows 22 January 2020")
    assert text_of(browser, "map-date") == "22 January 2020"
    assert handle.get_attribute("aria-valuenow") == "0"
    handle.send_keys(Keys.ARROW_RIGHT)
    wait_for(browser, lambda: map_points(browser) == expected_map_points(sources, "2020-01-23"), "map shows day 1")
    assert len(first_day) < len(map_points(browser))
    assert console_errors(browser) == []


def test_play_steps_through_the_days_and_pause_stops(browser, dashboard_url):
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "map-date") == "27 July 2020", "page loaded")
    play = browser.find_element(By.ID, "map-play")
    play.click()  # at the last day, play starts over from the first
    wait_for(browser, lambda: text_of(browser, "map-date") == "23 January 2020", "played to the second day")
    assert play.text == "Pause"
    play.click()
    wait_for(browser, lambda: play.text == "Play", "paused")
    paused_at = text_of(browser, "map-date")
    slider = browser.find_element(By.CSS_SELECTOR, "#map-day [role=slider]")
    assert pd.Timestamp(paused_at) - pd.Timestamp("2020-01-22") == pd.Timedelta(
        days=int(slider.get_attribute("aria-valuenow"))
    )
    assert console_errors(browser) == []


@pytest.fixture(scope="module")
def study_panel(sources) -> pd.DataFrame:
    series = sources["series"]
    return series.loc[
        series["country_region"].isin(["Vietnam", *DEFAULT_DONORS]), ["country_region", "date", "confirmed"]
    ]


def expected_fit(panel: pd.DataFrame, treated: str):
    options = dict(
        unit="country_region",
        time="date",
        outcome="confirmed",
        treated=treated,
        intervention=pd.Timestamp("2020-04-01"),
        donors=[d for d in DEFAULT_DONORS if d != treated],
    )
    return fit_synthetic_control(panel, **options), placebo_test(panel, **options)


def weights_shown(browser) -> dict[str, str]:
    rows = browser.find_elements(By.CSS_SELECTOR, "#scm-weights tbody tr")
    return dict(tuple(cell.text for cell in row.find_elements(By.TAG_NAME, "td")) for row in rows)


def test_synthetic_control_page_shows_the_vietnam_study(browser, dashboard_url, study_panel, artifacts):
    open_page(browser, dashboard_url + "/synthetic-control")
    fit, placebo = expected_fit(study_panel, "Vietnam")
    wait_for(browser, lambda: text_of(browser, "scm-pre-rmspe") == format_value(fit.pre_rmspe, "cases"), "fit shown")
    assert text_of(browser, "scm-title") == "What if Vietnam had not applied Directive 16?"
    assert text_of(browser, "scm-ratio") == format_value(fit.ratio)
    rank = int(placebo.units.at["Vietnam", "rank"])
    assert text_of(browser, "scm-p-value") == f"{placebo.p_value:.2f} (rank {rank} of 11)"
    assert weights_shown(browser) == {donor: f"{w:.3f}" for donor, w in fit.weights.items()}
    assert len(browser.find_elements(By.CSS_SELECTOR, "#scm-placebo-table tbody tr")) == 11
    assert "Limits:" in text_of(browser, "scm-caption")
    synthetic = "return document.querySelector('#scm-synthetic-graph .js-plotly-plot').data.map(t => t.name)"
    assert browser.execute_script(synthetic) == ["Vietnam", "Synthetic Vietnam"]
    assert browser.title == "Synthetic control · COVID-19 warehouse"
    save_full_page(browser, artifacts / "dashboard-synthetic-control.png")
    assert console_errors(browser) == []


def test_changing_the_treated_country_refits(browser, dashboard_url, study_panel):
    open_page(browser, dashboard_url + "/synthetic-control")
    wait_for(browser, lambda: text_of(browser, "scm-title").startswith("What if Vietnam"), "Vietnam study shown")
    browser.find_element(By.ID, "scm-treated").click()
    search = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, ".dash-dropdown-search"), "dropdown open")
    search.send_keys("Thailand")
    option = wait_for(
        browser,
        lambda: browser.find_element(By.XPATH, "//*[@role='option'][normalize-space()='Thailand']"),
        "Thailand offered",
    )
    option.click()

    fit, _ = expected_fit(study_panel, "Thailand")
    wait_for(browser, lambda: text_of(browser, "scm-title").startswith("What if Thailand"), "Thailand study shown")
    assert text_of(browser, "scm-pre-rmspe") == format_value(fit.pre_rmspe, "cases")
    assert weights_shown(browser) == {donor: f"{w:.3f}" for donor, w in fit.weights.items()}
    assert "Thailand" not in weights_shown(browser) and len(weights_shown(browser)) == 9
    assert "Thailand: it is the treated country" in text_of(browser, "scm-caption")
    assert console_errors(browser) == []
