"""Figure builders on small hand-made frames and a study on a four-country toy panel; the bundled country
outlines; the layout rules that keep titles, axis titles and legends clear of each other (seen in a browser by
``test_browser.py``)."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dashboard
from dashboard.figures import (
    AXIS_TITLE_PX,
    COUNTRY_OUTLINES_ASSET,
    LEGEND_PX,
    MAP_CENTER,
    MODEBAR_PX,
    TICKS_PX,
    continent_figure,
    gap_figure,
    map_rows,
    placebo_ratio_figure,
    spread_map_figure,
    synthetic_figure,
    trend_figure,
    trend_rows,
)
from dashboard.measures import MAP_MEASURES
from dashboard.view_state import TrendView
from dashboard.study import comparable_placebos, placebo_table, run_study

OUTLINES_URL = "/assets/countries-110m.geojson"
OUTLINES_FILE = Path(dashboard.__file__).parent / "assets" / COUNTRY_OUTLINES_ASSET


LOCATIONS = pd.DataFrame(
    {
        "country_region": ["Australia", "Vietnam", "Laos", "Nowhere"],
        "province_state": ["Victoria", "", "", ""],
        "latitude": [-37.8, 14.06, 19.86, None],
        "longitude": [144.96, 108.28, 102.5, None],
        "confirmed": [999, 9, 0, 5],
        "deaths": [12, 0, 0, 0],
        "who_region": ["Western Pacific", "Western Pacific", "Western Pacific", None],
        "continent": ["Australia/Oceania", "Asia", "Asia", "Asia"],
    }
)


CONFIRMED, CFR, PER_100K = (MAP_MEASURES[k] for k in ("confirmed", "case_fatality_ratio", "confirmed_per_100k"))


def _map(rows: pd.DataFrame, measure=CONFIRMED, max_value: float = 99_999, title: str = "On 1 April 2020"):
    return spread_map_figure(map_rows(rows, measure), measure, max_value=max_value, map_style="white-bg",
                             outlines_url=OUTLINES_URL, title=title)


def test_spread_map_shows_locations_with_cases_on_a_log_scale():
    figure = _map(LOCATIONS)
    (trace,) = figure.data
    assert trace.type == "densitymap"
    assert list(trace.lat) == [-37.8, 14.06] and list(trace.lon) == [144.96, 108.28]
    assert list(trace.z) == pytest.approx([3.0, 1.0])
    assert (trace.zmin, trace.zmax) == (0, pytest.approx(5.0))
    assert trace.customdata.tolist() == [
        ["Victoria, Australia", "Western Pacific", 999.0, 999, 12, "n/a"],
        ["Vietnam", "Western Pacific", 9.0, 9, 0, "n/a"],
    ]
    assert "Cumulative confirmed cases: %{customdata[2]:,d} cases" in trace.hovertemplate
    assert "WHO region" in trace.hovertemplate and "Population" not in trace.hovertemplate
    assert list(trace.colorbar.ticktext) == ["1", "10", "100", "1,000", "10,000", "100,000"]
    assert figure.layout.map.style == "white-bg"
    assert (figure.layout.map.center.lat, figure.layout.map.center.lon) == (MAP_CENTER["lat"], MAP_CENTER["lon"])
    assert figure.layout.title.text == "On 1 April 2020"


COUNTRIES_ON_DAY = pd.DataFrame({
    "country_region": ["US", "Vietnam", "Atlantis", "Laos"],
    "latitude": [40.0, 14.06, 1.0, 19.86],
    "longitude": [-100.0, 108.28, 2.0, 102.5],
    "population": [331_198_130, 97_338_579, None, 7_275_560],
    "confirmed": [4_290_259, 416, 300, 0],
    "deaths": [148_011, 0, 100, 0],
    "confirmed_per_100k": [1295.37, 0.43, None, 0.0],
    "deaths_per_million": [446.9, 0.0, None, 0.0],
    "case_fatality_ratio": [0.0345, 0.0, 1 / 3, None],
    "new_cases_7d_avg": [65083.1, 2.1, 0.0, 0.0],
    "who_region": ["Americas", "Western Pacific", None, "Western Pacific"],
    "continent": ["North America", "Asia", "Unknown", "Asia"],
})


def test_a_country_rate_shows_its_value_unit_and_population():
    figure = _map(COUNTRIES_ON_DAY, PER_100K, max_value=1500.0)
    (trace,) = figure.data
    # Atlantis has no population (no rate), Laos no case (0 on a log scale): both left out
    assert trace.customdata.tolist() == [
        ["US", "Americas", 1295.37, 4_290_259, 148_011, "331,198,130"],
        ["Vietnam", "Western Pacific", 0.43, 416, 0, "97,338,579"],
    ]
    assert trace.type == "scattermap"  # one marker per country: a rate does not add up with its neighbours'
    assert list(trace.marker.color) == pytest.approx([math.log10(1 + 1295.37), math.log10(1.43)])
    assert "Confirmed cases per 100,000 people: %{customdata[2]:,.1f} cases per 100k" in trace.hovertemplate
    assert "Population (worldometer): %{customdata[5]}" in trace.hovertemplate


def test_the_case_fatality_ratio_has_a_linear_scale_in_percent():
    few_cases = COUNTRIES_ON_DAY.assign(confirmed=[4_290_259, 416, 99, 0])
    figure = _map(few_cases, CFR, max_value=0.5)
    (trace,) = figure.data
    assert [row[0] for row in trace.customdata.tolist()] == ["US", "Vietnam"]  # 0 is a value; under 100 cases is not
    assert list(trace.marker.color) == pytest.approx([0.0345, 0.0]) and trace.marker.cmax == 0.5
    assert trace.marker.colorbar.tickformat == ".2%" and "%{customdata[2]:.2%}" in trace.hovertemplate
    assert [row[0] for row in _map(COUNTRIES_ON_DAY, CFR, max_value=0.5).data[0].customdata] == [
        "US", "Vietnam", "Atlantis"]


def test_map_rows_are_what_the_download_holds():
    rows = map_rows(COUNTRIES_ON_DAY, PER_100K)
    assert list(rows.columns) == ["label", "country_region", "province_state", "latitude", "longitude",
                                  "who_region", "value", "confirmed", "deaths", "population"]
    assert rows["country_region"].tolist() == ["US", "Vietnam"] and set(rows["province_state"]) == {""}


def test_spread_map_draws_the_country_outlines_as_a_line_layer_under_the_density_layer():
    figure = _map(LOCATIONS, max_value=10)
    (layer,) = figure.layout.map.layers
    assert (layer.sourcetype, layer.type, layer.source) == ("geojson", "line", OUTLINES_URL)
    assert layer.below == "traces"  # plotly.js: before the first trace's map layer, i.e. under the density


def test_the_bundled_country_outlines_are_small_and_hold_every_country():
    """Natural Earth's 110m admin-0 countries as border lines: small enough to ship, no line running along or
    across the antimeridian (it would draw a stripe over the whole map), coordinates on the globe."""
    assert OUTLINES_FILE.stat().st_size < 400_000
    outlines = json.loads(OUTLINES_FILE.read_text())
    names = {feature["properties"]["name"] for feature in outlines["features"]}
    assert len(names) == len(outlines["features"]) == 177
    assert {"Vietnam", "Thailand", "France", "Brazil", "Australia", "Russia", "Fiji"} <= names
    for feature in outlines["features"]:
        assert feature["geometry"]["type"] == "MultiLineString"
        for line in feature["geometry"]["coordinates"]:
            assert all(-180 <= lon <= 180 and -90 <= lat <= 90 for lon, lat in line)
            assert all(abs(a[0] - b[0]) < 180 for a, b in zip(line, line[1:])), feature["properties"]["name"]
    assert (OUTLINES_FILE.parent / "README.md").read_text().count("public domain") >= 1


def test_spread_map_of_a_day_without_cases_is_empty_not_an_error():
    locations = pd.DataFrame(
        {
            "country_region": ["Vietnam"],
            "province_state": [""],
            "latitude": [14.06],
            "longitude": [108.28],
            "confirmed": [0],
            "deaths": [0],
            "who_region": ["Western Pacific"],
            "continent": ["Asia"],
        }
    )
    figure = _map(locations, max_value=0, title="")
    (trace,) = figure.data
    assert len(trace.lat) == 0 and trace.zmax == 1.0


TRENDS = pd.DataFrame({
    "country_region": ["Italy"] * 3 + ["Vietnam"] * 3,
    "date": pd.to_datetime(["2020-04-01", "2020-04-02", "2020-04-03"] * 2),
    "confirmed": [110_574, 115_242, 119_827, 218, 222, 233],
    "deaths": [13_155, 13_915, 14_681, 0, 0, 0],
    "new_cases": [4_782, 4_668, 4_585, 6, 4, 11],
    "new_cases_7d_avg": [5_180.4, 4_989.1, 4_850.0, 8.1, 7.4, 7.0],
    "new_cases_per_million": [79.1, 77.2, 75.8, 0.06, 0.04, 0.11],
    "new_cases_7d_avg_per_million": [85.7, 82.5, 80.2, 0.08, 0.08, 0.07],
    "days_since_100_cases": [37, 38, 39, None, 0, 1],
})


def test_trend_compares_countries_in_the_chosen_order():
    view = TrendView(("Vietnam", "Italy"))
    figure = trend_figure(trend_rows(TRENDS, view), view)
    assert [t.name for t in figure.data] == ["Vietnam", "Italy"]
    assert list(figure.data[1].y) == [110_574, 115_242, 119_827]
    assert figure.layout.title.text == "Cases, cumulative" and figure.layout.yaxis.type == "linear"


def test_daily_counts_of_one_country_are_bars_with_the_7_day_average():
    view = TrendView(("Italy",), mode="daily", scale="per_million", axis="log")
    figure = trend_figure(trend_rows(TRENDS, view), view)
    assert [(t.type, t.name) for t in figure.data] == [("bar", "Italy, daily"), ("scatter", "Italy, 7-day average")]
    assert list(figure.data[0].y) == [79.1, 77.2, 75.8] and list(figure.data[1].y) == [85.7, 82.5, 80.2]
    assert list(trend_rows(TRENDS, view).columns) == ["country_region", "date", "days_since_100_cases",
                                                      "new_cases_7d_avg_per_million", "new_cases_per_million"]
    assert figure.layout.yaxis.type == "log"
    assert figure.layout.yaxis.title.text == "cases per million people per day"
    assert figure.layout.title.text == "Cases per million, daily (7-day average)"


def test_on_a_log_axis_values_without_a_logarithm_are_blank():
    trends = TRENDS.assign(new_cases_7d_avg=[0.0, -1.5, 2.0, 8.1, 7.4, 7.0])
    view = TrendView(("Italy",), mode="daily", axis="log")
    assert trend_rows(trends, view)["new_cases_7d_avg"].isna().tolist() == [True, True, False]
    linear = trend_rows(trends, dataclasses.replace(view, axis="linear"))
    assert linear["new_cases_7d_avg"].tolist() == [0.0, -1.5, 2.0]


def test_aligned_on_the_100th_case_the_days_before_it_are_left_out():
    view = TrendView(("Italy", "Vietnam"), align="days_since_100")
    rows = trend_rows(TRENDS, view)
    figure = trend_figure(rows, view)
    assert list(figure.data[1].x) == [0, 1] and list(figure.data[0].x) == [37, 38, 39]
    assert figure.layout.xaxis.title.text == "days since the 100th confirmed case"
    assert list(rows.columns) == ["country_region", "date", "days_since_100_cases", "confirmed"]


def test_continent_figure_lists_continents_smallest_first_for_horizontal_bars():
    continents = pd.DataFrame(
        {
            "continent": ["Asia", "Europe"],
            "total_confirmed": [300, 200],
            "total_deaths": [3, 20],
            "total_recovered": [100, 50],
            "total_active": [197, 130],
            "number_of_countries": [2, 1],
            "population": [1000, None],
        }
    )
    figure = continent_figure(continents)
    assert [t.name for t in figure.data] == ["Confirmed", "Recovered", "Deaths"]
    assert list(figure.data[0].y) == ["Europe", "Asia"] and list(figure.data[0].x) == [200, 300]
    assert figure.data[2].customdata.tolist() == [[1, 0], [2, 1000]]


@pytest.fixture(scope="module")
def study():
    """Four countries over six days; the treated one is exactly half A plus half B before day 3."""
    days = pd.date_range("2020-03-01", periods=6)
    a = np.array([1, 2, 3, 4, 5, 6.0])
    b = np.array([3, 4, 6, 8, 9, 12.0])
    c = np.array([10, 10, 11, 11, 12, 12.0])
    treated = (a + b) / 2 - np.array([0, 0, 0, 1, 2, 3])
    rows = [
        (unit, day, value, 1e6)
        for unit, values in {"T": treated, "A": a, "B": b, "C": c}.items()
        for day, value in zip(days, values, strict=True)
    ]
    panel = pd.DataFrame(rows, columns=["country_region", "date", "confirmed", "population"])
    return run_study(
        panel, treated="T", donors=["A", "B", "C"], intervention="2020-03-04", outcome="confirmed", method="scm"
    )


def test_synthetic_figure_overlays_actual_and_synthetic(study):
    figure = synthetic_figure(study)
    actual, synthetic = figure.data
    assert (actual.name, synthetic.name) == ("T", "Synthetic T")
    assert list(synthetic.y) == pytest.approx([2, 3, 4.5, 6, 7, 9])
    assert list(actual.y) == pytest.approx([2, 3, 4.5, 5, 5, 6])
    assert figure.layout.yaxis.title.text == "Confirmed cases"
    assert [s.x0 for s in figure.layout.shapes] == [pd.Timestamp("2020-03-04")]


def test_gap_figure_puts_the_treated_gap_over_the_comparable_placebo_gaps(study):
    """Placebos fitting their pre-period more than 5x worse than the treated unit are left out: here T's
    pre-period error is made 1, so A (4.9) and B (5.0) are drawn and C (5.1) is not."""
    units = study.placebo.units.assign(pre_rmspe=pd.Series({"T": 1.0, "A": 4.9, "B": 5.0, "C": 5.1}))
    placebo = dataclasses.replace(study.placebo, units=units)
    assert comparable_placebos(dataclasses.replace(study, placebo=placebo)) == ["A", "B"]
    figure = gap_figure(dataclasses.replace(study, placebo=placebo))
    assert [t.name for t in figure.data] == ["A", "B", "T (gap)"]
    assert list(figure.data[0].y) == list(study.placebo.gaps["A"])
    assert list(figure.data[-1].y) == pytest.approx([0, 0, 0, -1, -2, -3])
    assert all(t.line.color == "#b8b8b8" for t in figure.data[:-1])
    assert "grey: 2 of 3 placebos" in figure.layout.title.subtitle.text


def test_placebo_ratio_figure_highlights_the_treated_unit(study):
    table = placebo_table(study)
    figure = placebo_ratio_figure(study, table)
    (bars,) = figure.data
    assert list(bars.y) == list(table["country"][::-1])
    ratios = dict(zip(bars.y, bars.x, strict=True))
    others = [r for c, r in study.placebo.units["ratio"].items() if c != "T"]
    assert math.isinf(study.placebo.units.at["T", "ratio"]) and all(map(math.isfinite, others))
    assert ratios["T"] == pytest.approx(1.1 * max(others))
    assert dict(zip(bars.y, bars.text, strict=True))["T"] == "∞"
    assert dict(zip(bars.y, bars.marker.color, strict=True))["T"] != "#b8b8b8"
    assert figure.layout.title.subtitle.text == f"p = {study.placebo.p_value:.2f}"


def _layout_cases(study) -> dict:
    counts = ("confirmed", "deaths", "recovered", "active")
    view = TrendView(("Italy", "Vietnam"))
    continents = pd.DataFrame(
        {"continent": ["Asia"], **{f"total_{c}": [1] for c in counts}, "number_of_countries": [1], "population": [1]}
    )
    return {
        "trend": trend_figure(trend_rows(TRENDS, view), view),
        "continents": continent_figure(continents),
        "synthetic": synthetic_figure(study),
        "gap": gap_figure(study),
        "ratio": placebo_ratio_figure(study, placebo_table(study)),
    }


def test_titles_sit_below_the_mode_bar_with_room_for_the_subtitle(study):
    """One-line titles anchored at the top, padded below the mode bar; second lines as Plotly subtitles (which
    Plotly places and measures), and a top margin holding both."""
    for name, figure in _layout_cases(study).items():
        title = figure.layout.title
        assert (title.yref, title.y, title.yanchor, title.pad.t) == ("container", 1, "top", MODEBAR_PX), name
        assert (title.xanchor, title.x) == ("left", 0), name  # away from the mode bar at the top right
        assert "<br>" not in title.text, name
        subtitle = 18 if title.subtitle.text else 0
        assert figure.layout.margin.t >= MODEBAR_PX + 20 + subtitle, name
    assert _layout_cases(study)["gap"].layout.margin.t > _layout_cases(study)["synthetic"].layout.margin.t
    spread_map = _map(LOCATIONS, max_value=10).layout
    assert spread_map.title.pad.t == MODEBAR_PX and spread_map.margin.t >= MODEBAR_PX + 20


def test_legends_sit_below_the_x_axis_and_its_title(study):
    """The legend is pinned to the figure's bottom edge (container coordinates), and the bottom margin holds
    the tick labels, the axis title (where there is one) and the legend's row."""
    for name, figure in _layout_cases(study).items():
        layout = figure.layout
        axis_title = AXIS_TITLE_PX if layout.xaxis.title.text else 0
        if layout.showlegend:
            assert (layout.legend.orientation, layout.legend.yref, layout.legend.y) == ("h", "container", 0), name
            assert layout.legend.yanchor == "bottom", name
            assert layout.margin.b >= TICKS_PX + axis_title + LEGEND_PX, name
        else:
            assert layout.margin.b >= TICKS_PX + axis_title, name
    figures = _layout_cases(study)
    assert figures["continents"].layout.showlegend and figures["continents"].layout.xaxis.title.text == "people"
    assert figures["ratio"].layout.yaxis.automargin  # country names push the margin, not the plot's width
