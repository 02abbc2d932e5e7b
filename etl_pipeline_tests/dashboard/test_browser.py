"""Both pages in headless Chromium against ``dashboard.app.serve`` over the CSV-built warehouse: they render
without console errors, the slider and play button move the map through the days, changing the treated
country refits the study, and no chart has its title under the mode bar, its legend on its axis title or an
axis title cut off. Without a warehouse, or with its server unreachable, the page says which and what to do.
Screenshots of each page go to ``test-artifacts/``."""

from __future__ import annotations

import os

import pandas as pd
import pytest
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from dashboard.formatting import format_value
from dashboard.study import DEFAULT_DONORS
from etl_pipeline.analytics.synthetic_control import fit_synthetic_control, placebo_test
from etl_pipeline_tests.conftest import free_port
from etl_pipeline_tests.dashboard.conftest import served_dashboard

pytestmark = pytest.mark.browser

TIMEOUT_S = 120  # an upper bound for refits and page loads on a loaded 2-core machine, not a speed check
MAP_POINTS = (
    "var g = document.querySelector('#spread-map .js-plotly-plot');"
    "return g && g._fullData && g._fullData[0] ? g._fullData[0].customdata : null;"
)


# The boxes, as drawn, of a graph's parts: [left, top, right, bottom] in pixels, null where the part is absent.
# The mode bar is laid out (and measured) even while hidden; it shows when the mouse is over the graph.
_GRAPH_BOXES = """
var root = document.querySelector('#' + arguments[0] + ' .js-plotly-plot');
if (!root || !root._fullLayout) { return null; }
function rect(e) { var r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; }
function box(selector) { var e = root.querySelector(selector); return e ? rect(e) : null; }
return {
  figure: box('.main-svg'), modebar: box('.modebar'), title: box('.gtitle'), subtitle: box('.gtitle-subtitle'),
  plot: box('.nsewdrag'), xtitle: box('.xtitle'), legend: box('.legend'),
  xticks: Array.from(root.querySelectorAll('.xtick text')).map(rect)
};
"""


def _overlap(a: list[float] | None, b: list[float] | None) -> bool:
    return bool(a and b) and a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


#: Pixels a box may pass an edge by without being cut: sub-pixel layout rounding (seen: 0.0005 px).
_ROUNDING_PX = 0.5


def _inside(inner: list[float] | None, outer: list[float]) -> bool:
    slack = _ROUNDING_PX
    return inner is None or (
        inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack
        and inner[2] <= outer[2] + slack and inner[3] <= outer[3] + slack
    )


def layout_problems(browser, graph_id: str) -> list[str]:
    """What a reader would see wrong in the graph: the mode bar over the title, the title over the plot, the
    legend over the x-axis title or tick labels, a title or axis title cut by the graph's edge."""
    boxes = browser.execute_script(_GRAPH_BOXES, graph_id)
    assert boxes is not None and boxes["title"] is not None, f"{graph_id} is drawn with a title"
    problems = []
    for part in ("title", "subtitle"):
        if _overlap(boxes["modebar"], boxes[part]):
            problems.append(f"{graph_id}: the mode bar {boxes['modebar']} covers the {part} {boxes[part]}")
        if boxes[part] and boxes["plot"] and boxes[part][3] > boxes["plot"][1]:
            problems.append(f"{graph_id}: the {part} {boxes[part]} reaches into the plot {boxes['plot']}")
    for part in ("xtitle", "legend", "title", "subtitle"):
        if not _inside(boxes[part], boxes["figure"]):
            problems.append(f"{graph_id}: the {part} {boxes[part]} is cut by the edge {boxes['figure']}")
    for part in (boxes["xtitle"], *boxes["xticks"]):
        if _overlap(boxes["legend"], part):
            problems.append(f"{graph_id}: the legend {boxes['legend']} covers {part}")
    return problems


def console_errors(browser) -> list[dict]:
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def wait_for(browser, condition, message: str):
    """Poll ``condition`` until true; an element Dash re-rendered while it was read counts as "not yet"."""
    waiting = WebDriverWait(browser, TIMEOUT_S, ignored_exceptions=(StaleElementReferenceException,))
    return waiting.until(lambda _: condition(), message=message)


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
    """[label, WHO region, value, confirmed, deaths, population] of every location with cases that day (the value
    is the confirmed count; no population per location), from the position CSV."""
    positions = sources["positions"]
    rows = positions[(positions["date"] == day) & (positions["confirmed"] > 0)]
    labels = [f"{p}, {c}" if p else c for p, c in zip(rows["province_state"], rows["country_region"], strict=True)]
    return sorted(
        [label, who, int(confirmed), int(confirmed), int(deaths), "n/a"]
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
    wait_for(browser, lambda: browser.execute_script(trend) == ["Vietnam"], "trend")
    continents = "return document.querySelector('#continent-graph .js-plotly-plot').data[0].y"
    assert browser.execute_script(continents)[-1] == "North America"
    assert browser.find_elements(By.CSS_SELECTOR, "#spread-map canvas"), "the map was drawn"
    save_full_page(browser, artifacts / "dashboard-spread-map.png")
    assert [p for g in ("spread-map", "trend-graph", "continent-graph") for p in layout_problems(browser, g)] == []
    assert text_of(browser, "table-heading") == "Countries on 27 July 2020"
    assert console_errors(browser) == []


def test_the_offline_map_draws_the_country_outlines(browser, dashboard_url):
    """The GeoJSON line layer is loaded by MapLibre from the dashboard itself (no internet) under the density."""
    open_page(browser, dashboard_url + "/")
    wait_for(browser, lambda: text_of(browser, "map-date") == "27 July 2020", "page loaded")
    layers = (
        "var g = document.querySelector('#spread-map .js-plotly-plot');"
        "var map = g && g._fullLayout.map && g._fullLayout.map._subplot && g._fullLayout.map._subplot.map;"
        "if (!map || !map.isStyleLoaded()) { return null; }"
        "var ids = map.getStyle().layers.map(l => l.id);"
        "var line = map.getStyle().layers.filter(l => l.type === 'line').map(l => l.id);"
        "var heat = map.getStyle().layers.filter(l => l.type === 'heatmap').map(l => l.id);"
        "if (line.length !== 1 || heat.length !== 1) { return null; }"
        "var features = map.querySourceFeatures(map.getLayer(line[0]).source);"
        "return {below: ids.indexOf(line[0]) < ids.indexOf(heat[0]), features: features.length};"
    )
    drawn = wait_for(browser, lambda: (browser.execute_script(layers) or {}).get("features"), "outlines drawn")
    assert drawn > 0
    assert browser.execute_script(layers)["below"], "the outlines are under the density layer"
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
    graphs = ("scm-synthetic-graph", "scm-gap-graph", "scm-placebo-graph")
    assert [p for g in graphs for p in layout_problems(browser, g)] == []
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


def _environment_without_a_warehouse() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("ETL_HOME", "WAREHOUSE_DB_URL")}
    return {**env, "DASH_MAP_STYLE": "white-bg"}


def test_started_where_no_warehouse_is_the_page_says_so_and_creates_none(browser, tmp_path_factory, artifacts):
    """Started from a directory without ``.etl/`` (the default ETL_HOME), the page names the missing file; the
    directory stays empty: the dashboard never creates the database it reads."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with served_dashboard(_environment_without_a_warehouse(), elsewhere, log) as url:
        open_page(browser, url + "/")
        wait_for(browser, lambda: text_of(browser, "page-error"), "the error is shown")
        assert text_of(browser, "page-error") == (
            f"No warehouse at {elsewhere / '.etl' / 'warehouse.db'}: build it with `covid-etl run` "
            "(or set ETL_HOME or WAREHOUSE_DB_URL)."
        )
        wait_for(browser, lambda: text_of(browser, "footer").endswith("(not built yet)."), "footer")
        save_full_page(browser, artifacts / "dashboard-no-warehouse.png")
        assert console_errors(browser) == []
    assert list(elsewhere.iterdir()) == []


def test_an_unreachable_warehouse_server_is_named_on_the_page(browser, tmp_path_factory, artifacts):
    port = free_port()  # nothing listens there: the connection is refused
    env = {
        **_environment_without_a_warehouse(),
        "WAREHOUSE_DB_URL": f"postgresql+psycopg2://etl_admin:s3cret-pw@127.0.0.1:{port}/warehouse",
    }
    log = tmp_path_factory.mktemp("logs") / "server.log"
    with served_dashboard(env, tmp_path_factory.mktemp("cwd"), log) as url:
        open_page(browser, url + "/synthetic-control")
        wait_for(browser, lambda: text_of(browser, "page-error"), "the error is shown")
        text = text_of(browser, "page-error")
        assert text.startswith(
            f"The warehouse server postgresql+psycopg2://etl_admin:***@127.0.0.1:{port}/warehouse is not reachable: "
        )
        assert "Connection refused" in text and "WAREHOUSE_DB_URL" in text
        assert "covid-etl run" not in text and "s3cret" not in browser.page_source
        assert "Traceback" not in browser.page_source
        wait_for(browser, lambda: text_of(browser, "footer").endswith("(warehouse unavailable)."), "footer")
        save_full_page(browser, artifacts / "dashboard-unreachable-warehouse.png")
        assert console_errors(browser) == []
