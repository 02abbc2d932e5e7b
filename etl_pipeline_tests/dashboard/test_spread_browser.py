"""The spread page's measures, comparisons, table, downloads and shareable URL in headless Chromium, against
``dashboard.app.serve`` over the CSV-built warehouse, with real clicks: choose a measure, add countries, switch to
log and per capita, align on the 100th case, reopen the URL, filter the table and download it. The numbers shown
are computed here from the CSVs (per-100k with worldometer's population, 7-day averages). The page's weight and
each interaction's payload are measured from the browser's resource timings and written to
``test-artifacts/dashboard-payloads.json``; screenshots of each view go to ``test-artifacts/``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pandas as pd
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys

from etl_pipeline_tests.conftest import WORLDOMETER_NAMES
from etl_pipeline_tests.dashboard.test_browser import (
    console_errors,
    layout_problems,
    open_page,
    save_full_page,
    text_of,
    wait_for,
)

pytestmark = pytest.mark.browser

_FIGURE = "var g = document.querySelector('#' + arguments[0] + ' .js-plotly-plot'); return g && g.data ? %s : null;"
#: Bytes of the callback responses (``_dash-update-component``) the page has received so far, and of everything.
_PAYLOAD = """
var all = performance.getEntriesByType('resource');
var updates = all.filter(e => e.name.indexOf('_dash-update-component') >= 0);
var size = es => es.reduce((n, e) => n + e.encodedBodySize, 0);
return {updates: updates.length, update_bytes: size(updates), all_bytes: size(all),
        layout_bytes: size(all.filter(e => e.name.indexOf('_dash-layout') >= 0))};
"""
#: Callback responses may stay under this: a view change moves the data it shows, not the warehouse.
MAX_INTERACTION_BYTES = 150_000


def figure(browser, graph_id: str, expression: str):
    return browser.execute_script(_FIGURE % expression, graph_id)


def trace_names(browser) -> list[str] | None:
    return figure(browser, "trend-graph", "g.data.map(t => t.name)")


def click_choice(browser, group_id: str, label: str) -> None:
    browser.find_element(By.XPATH, f"//*[@id='{group_id}']//label[normalize-space()='{label}']").click()


def add_country(browser, country: str) -> None:
    browser.find_element(By.CSS_SELECTOR, "#trend-countries").click()
    search = wait_for(browser, lambda: browser.find_element(By.CSS_SELECTOR, ".dash-dropdown-search"), "opened")
    search.send_keys(country)
    option = wait_for(browser, lambda: browser.find_element(
        By.XPATH, f"//*[@role='option'][normalize-space()='{country}']"), f"{country} offered")
    option.click()
    search.send_keys(Keys.ESCAPE)


def payload(browser) -> dict:
    return browser.execute_script(_PAYLOAD)


def interaction_bytes(browser, before: dict) -> int:
    """Bytes of the callback responses since ``before`` (a :func:`payload`), once they have stopped arriving."""
    settled = payload(browser)
    while True:
        time.sleep(1.0)
        now = payload(browser)
        if now["updates"] == settled["updates"]:
            return now["update_bytes"] - before["update_bytes"]
        settled = now


@pytest.fixture(scope="module")
def rates(sources) -> pd.DataFrame:
    """Per country and day, from the CSVs: confirmed, deaths, worldometer population, the rates and the 7-day
    average of new cases (the 7 rows up to the day; the series have every day)."""
    series = sources["series"].sort_values(["country_region", "date"]).copy()
    world = sources["worldometer"].set_index("Country/Region")["Population"]
    series["population"] = series["country_region"].map(lambda c: world.get(WORLDOMETER_NAMES.get(c, c)))
    series["deaths_per_million"] = series["deaths"] * 1e6 / series["population"]
    series["confirmed_per_100k"] = series["confirmed"] * 1e5 / series["population"]
    series["new_cases_7d_avg"] = series.groupby("country_region")["new_cases"].transform(lambda s: s.rolling(7).mean())
    return series


def test_choosing_a_measure_redraws_the_map_by_country(browser, dashboard_url, rates, artifacts):
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "map-date") == "27 July 2020", "page loaded")
    before = payload(browser)
    click_choice(browser, "map-measure", "Deaths per million people")
    title = "Deaths per million people on 27 July 2020"
    wait_for(browser, lambda: figure(browser, "spread-map", "g.layout.title.text") == title, "measure drawn")
    points = {row[0]: row for row in figure(browser, "spread-map", "g.data[0].customdata")}
    last = rates[(rates["date"] == "2020-07-27") & (rates["deaths"] > 0) & rates["population"].notna()]
    assert set(points) == set(last["country_region"])
    for country in ("US", "Italy", "Brazil", "South Korea"):
        row = last[last["country_region"] == country].iloc[0]
        assert points[country][2] == pytest.approx(row["deaths_per_million"], rel=1e-9), country
        assert points[country][5] == f"{int(row['population']):,}", country
    assert interaction_bytes(browser, before) < MAX_INTERACTION_BYTES
    assert "deaths_per_million" in parse_qs(urlparse(browser.current_url).query)["measure"]
    save_full_page(browser, artifacts / "dashboard-map-deaths-per-million.png")
    assert layout_problems(browser, "spread-map") == []
    assert console_errors(browser) == []


def test_comparing_countries_on_a_log_scale_and_reopening_the_url(browser, dashboard_url, rates, artifacts):
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: trace_names(browser) == ["Vietnam"], "trend loaded")
    for country in ("Italy", "South Korea"):
        add_country(browser, country)
    wait_for(browser, lambda: trace_names(browser) == ["Vietnam", "Italy", "South Korea"], "countries added")
    click_choice(browser, "trend-mode", "Daily (7-day average)")
    click_choice(browser, "trend-axis", "Log")
    click_choice(browser, "trend-align", "Days since the 100th case")
    wait_for(browser, lambda: figure(browser, "trend-graph", "g.layout.yaxis.type") == "log", "log axis")
    wait_for(browser, lambda: figure(browser, "trend-graph", "g.layout.xaxis.title.text")
             == "days since the 100th confirmed case", "aligned")
    italy = rates[(rates["country_region"] == "Italy")]
    first_100 = italy.loc[italy["confirmed"] >= 100, "date"].min()
    aligned = italy[italy["date"] >= first_100]
    drawn = figure(browser, "trend-graph", "{x: Array.from(g._fullData[1].x), y: Array.from(g._fullData[1].y)}")
    assert drawn["x"][:3] == [0, 1, 2] and len(drawn["x"]) == len(aligned)
    assert drawn["y"][10] == pytest.approx(aligned["new_cases_7d_avg"].iloc[10], rel=1e-9)
    save_full_page(browser, artifacts / "dashboard-trend-compare-log.png")
    assert layout_problems(browser, "trend-graph") == []

    shared = browser.current_url
    query = parse_qs(urlparse(shared).query)
    assert query["country"] == ["Vietnam", "Italy", "South Korea"]
    assert (query["mode"], query["axis"], query["align"]) == (["daily"], ["log"], ["days_since_100"])
    open_page(browser, "about:blank")
    open_page(browser, shared)
    wait_for(browser, lambda: trace_names(browser) == ["Vietnam", "Italy", "South Korea"], "the shared view")
    assert figure(browser, "trend-graph", "g.layout.yaxis.type") == "log"
    checked = browser.find_element(By.CSS_SELECTOR, "#trend-align input:checked").get_attribute("value")
    assert checked == "days_since_100"
    assert console_errors(browser) == []


def test_per_capita_trend_and_the_date_in_the_url(browser, dashboard_url, rates):
    open_page(browser, dashboard_url + "/?date=2020-05-01&country=US&scale=per_million")
    wait_for(browser, lambda: text_of(browser, "map-date") == "1 May 2020", "the date of the URL")
    wait_for(browser, lambda: trace_names(browser) == ["US"], "trend loaded")
    us = rates[rates["country_region"] == "US"]
    drawn = figure(browser, "trend-graph", "Array.from(g._fullData[0].y)")
    assert drawn[-1] == pytest.approx(us["confirmed"].iloc[-1] * 1e6 / us["population"].iloc[-1], rel=1e-9)
    assert text_of(browser, "table-heading") == "Countries on 1 May 2020"
    assert console_errors(browser) == []


def test_the_filtered_table_downloads_as_shown(browser, dashboard_url, sources, rates, tmp_path, artifacts):
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(tmp_path)})
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "table-heading") == "Countries on 27 July 2020", "table loaded")
    continent_filter = browser.find_element(
        By.CSS_SELECTOR, "#country-table th.dash-filter[data-dash-column='continent'] input")
    continent_filter.send_keys("Oceania" + Keys.ENTER)
    countries = "#country-table td[data-dash-column='country_region']"
    wait_for(browser, lambda: len(browser.find_elements(By.CSS_SELECTOR, countries)) == 4,
             "filtered: the four countries of Australia/Oceania")
    save_full_page(browser, artifacts / "dashboard-country-table.png")
    browser.find_element(By.ID, "table-download").click()
    path = wait_for(browser, lambda: next(iter(Path(tmp_path).glob("countries_2020-07-27.csv")), None), "downloaded")
    frame = pd.read_csv(path)
    last = rates[rates["date"] == "2020-07-27"].set_index("country_region")
    assert sorted(frame["country_region"]) == ["Australia", "Fiji", "New Zealand", "Papua New Guinea"]
    for _, row in frame.iterrows():
        expected = last.loc[row["country_region"]]
        assert row["confirmed"] == expected["confirmed"]
        assert row["confirmed_per_100k"] == pytest.approx(expected["confirmed_per_100k"], rel=1e-9)
        assert row["new_cases_7d_avg"] == pytest.approx(expected["new_cases_7d_avg"], rel=1e-9)
    assert console_errors(browser) == []


def test_page_weight_and_payload_per_interaction(browser, dashboard_url, artifacts):
    """Measured, recorded and bounded: the first load's callbacks, and one slider step."""
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "map-date") == "27 July 2020", "page loaded")
    wait_for(browser, lambda: text_of(browser, "table-heading"), "table loaded")
    first = payload(browser)
    first_callbacks = interaction_bytes(browser, {"update_bytes": 0})
    handle = browser.find_element(By.CSS_SELECTOR, "#map-day [role=slider]")
    before = payload(browser)
    handle.send_keys(Keys.ARROW_LEFT)
    wait_for(browser, lambda: text_of(browser, "map-date") == "26 July 2020", "moved a day")
    slider_step = interaction_bytes(browser, before)
    figures = {"page_bytes_all_resources": first["all_bytes"], "layout_bytes": first["layout_bytes"],
               "first_load_callback_bytes": first_callbacks, "slider_step_bytes": slider_step}
    (artifacts / "dashboard-payloads.json").write_text(json.dumps(figures, indent=2))
    print(figures)
    assert first_callbacks < 1_000_000 and slider_step < MAX_INTERACTION_BYTES
    assert slider_step < first_callbacks
