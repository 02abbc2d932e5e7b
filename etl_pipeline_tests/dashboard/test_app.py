"""The app over HTTP (Flask's test client, no browser): first-payload size, routing, what the page says when
there is no warehouse or its server is not reachable, the outlines asset, callbacks, play/pause logic."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from dash import Dash

from dashboard.app import DEFAULT_MAP_STYLE, create_app
from dashboard.formatting import date_range
from dashboard.pages.spread_map import next_frame
from etl_pipeline_tests.conftest import WORLDOMETER_NAMES, free_port
from etl_pipeline_tests.dashboard.conftest import load_warehouse

MAX_FIRST_PAYLOAD = 1_000_000


@pytest.fixture(scope="module")
def app(sqlite_warehouse_url: str) -> Dash:
    return create_app(sqlite_warehouse_url, map_style="white-bg")


def call(app: Dash, output: str, *values, state: tuple = ()) -> tuple[dict, int]:
    """Run the callback registered for ``output`` the way the browser does (POST /_dash-update-component) with
    ``values`` for its inputs and ``state`` for its states; return the response's outputs and byte size."""
    spec = app.callback_map[output]
    outputs = [
        dict(zip(("id", "property"), part.rsplit(".", 1), strict=True)) for part in output.strip(".").split("...")
    ]
    body = {
        "output": output,
        "outputs": outputs if output.startswith("..") else outputs[0],
        "inputs": [{**i, "value": v} for i, v in zip(spec["inputs"], values, strict=True)],
        "state": [{**s, "value": v} for s, v in zip(spec["state"], state, strict=True)],
        "changedPropIds": [f"{spec['inputs'][0]['id']}.{spec['inputs'][0]['property']}"],
    }
    response = app.server.test_client().post("/_dash-update-component", json=body)
    assert response.status_code == 200, response.get_data(as_text=True)[-2000:]
    return response.get_json()["response"], len(response.get_data())


ROUTER = "..page-content.children...page-title.data...nav-spread_map.className...nav-synthetic_control.className.."
MAP = "..spread-map.figure...map-date.children.."
TREND = "..trend-graph.figure...trend-note.children.."
TABLE = "..country-table.data...table-heading.children.."
DOWNLOAD = "spread-download.data"
URL = "spread-url.search"
#: The trend callback's inputs as the page opens: countries, count, mode, scale, axis, align.
DEFAULT_TREND = (["Vietnam"], "cases", "cumulative", "absolute", "linear", "date")


def test_first_layout_payload_is_small_and_holds_no_map_data(app: Dash):
    response = app.server.test_client().get("/_dash-layout")
    assert response.status_code == 200
    payload = response.get_data()
    assert len(payload) < MAX_FIRST_PAYLOAD
    assert b"densitymap" not in payload and b"page-content" in payload


def test_serve_runs_waitress_without_dev_tools_and_a_small_first_payload(dashboard_url: str):
    """``serve()`` in its own process (from WAREHOUSE_DB_URL, default host and debug settings)."""
    with urllib.request.urlopen(f"{dashboard_url}/_dash-layout", timeout=30) as response:
        assert response.headers["Server"] == "waitress"
        assert len(response.read()) < MAX_FIRST_PAYLOAD
    with urllib.request.urlopen(f"{dashboard_url}/", timeout=30) as response:
        index = response.read().decode()
    config = json.loads(re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', index)[1])
    assert (config["ui"], config["props_check"]) == (False, False)


def test_whole_first_load_of_the_spread_map_is_under_one_megabyte(app: Dash):
    """Layout, the routed page, the map's last day and the default country's trend: what the browser loads
    before the page is complete."""
    layout = len(app.server.test_client().get("/_dash-layout").get_data())
    page, page_bytes = call(app, ROUTER, "/", state=(None,))
    assert "map-day" in json.dumps(page["page-content"]["children"])
    _, map_bytes = call(app, MAP, 187, "confirmed")
    _, trend_bytes = call(app, TREND, *DEFAULT_TREND)
    _, table_bytes = call(app, TABLE, 187)
    assert layout + page_bytes + map_bytes + trend_bytes + table_bytes < MAX_FIRST_PAYLOAD


def test_the_map_callback_sends_one_day(app: Dash, sources):
    response, _ = call(app, MAP, 70, "confirmed")
    positions = sources["positions"]
    day = positions[(positions["date"] == "2020-04-01") & (positions["confirmed"] > 0)]
    (trace,) = response["spread-map"]["figure"]["data"]
    assert response["map-date"]["children"] == "1 April 2020"
    assert len(trace["customdata"]) == len(day) == 251
    assert sum(row[2] for row in trace["customdata"]) == int(day["confirmed"].sum())
    assert response["spread-map"]["figure"]["layout"]["map"]["style"] == "white-bg"


def test_router_titles_pages_marks_the_active_link_and_reports_unknown_paths(app: Dash):
    page, _ = call(app, ROUTER, "/synthetic-control", state=(None,))
    assert page["page-title"]["data"] == "Synthetic control · COVID-19 warehouse"
    assert [page[f"nav-{p}"]["className"] for p in ("spread_map", "synthetic_control")] == [
        "nav-link",
        "nav-link active",
    ]
    assert "scm-treated" in json.dumps(page["page-content"]["children"])
    missing, _ = call(app, ROUTER, "/nope", state=(None,))
    assert "No page at /nope." in json.dumps(missing["page-content"]["children"])


def page_text(app: Dash, pathname: str = "/") -> str:
    page, _ = call(app, ROUTER, pathname, state=(None,))
    return json.dumps(page["page-content"]["children"])


def test_a_warehouse_without_its_tables_is_explained_on_the_page(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'warehouse.db'}"
    load_warehouse(url, {})  # the tables' database exists, without the tables
    with sa.create_engine(url).begin() as conn:
        conn.execute(sa.text("DROP TABLE dim_date"))
    text = page_text(create_app(url))
    assert "is not built yet (no such table: dim_date): build it with `covid-etl run`." in text


def test_started_from_another_directory_it_reports_the_missing_warehouse_and_creates_nothing(
    tmp_path: Path, monkeypatch
):
    """The default warehouse is ``./.etl/warehouse.db``: started elsewhere, the dashboard says there is none
    there instead of creating an empty one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ETL_HOME", raising=False)
    monkeypatch.delenv("WAREHOUSE_DB_URL", raising=False)
    app = create_app(map_style="white-bg")
    for pathname in ("/", "/synthetic-control"):
        assert f"No warehouse at {tmp_path / '.etl' / 'warehouse.db'}: build it with `covid-etl run`" in page_text(
            app, pathname
        )
    footer, _ = call(app, "footer.children", "/")
    assert footer["footer"]["children"].endswith("(not built yet).")
    assert list(tmp_path.iterdir()) == []


def test_an_unreachable_warehouse_server_is_explained_on_the_page():
    port = free_port()
    app = create_app(f"postgresql+psycopg2://etl_admin:s3cret-pw@127.0.0.1:{port}/warehouse")
    text = page_text(app)
    server = f"postgresql+psycopg2://etl_admin:***@127.0.0.1:{port}/warehouse"
    assert f"The warehouse server {server} is not reachable: " in text
    assert "Connection refused" in text
    assert "covid-etl run" not in text and "s3cret" not in text and "Traceback" not in text
    footer, _ = call(app, "footer.children", "/")
    assert footer["footer"]["children"].endswith("(warehouse unavailable).")


def test_the_app_serves_the_country_outlines_the_map_draws(app: Dash):
    response, _ = call(app, MAP, 70, "confirmed")
    (layer,) = response["spread-map"]["figure"]["layout"]["map"]["layers"]
    assert (layer["sourcetype"], layer["type"]) == ("geojson", "line")
    served = app.server.test_client().get(layer["source"])
    assert served.status_code == 200
    assert len(json.loads(served.get_data())["features"]) == 177


def test_the_footer_states_the_dates_the_warehouse_holds(app: Dash, sources, warehouse_tables, tmp_path: Path):
    days = sources["series"]["date"]
    assert (days.min(), days.max()) == (pd.Timestamp("2020-01-22"), pd.Timestamp("2020-07-27"))
    footer, _ = call(app, "footer.children", "/")
    assert footer["footer"]["children"] == (
        "Source: JHU CSSE and worldometers via the covid19 warehouse (22 Jan – 27 Jul 2020).")

    snapshot = f"sqlite:///{tmp_path / 'snapshot.db'}"  # another snapshot: the footer follows the data
    load_warehouse(snapshot, {"dim_date": warehouse_tables["dim_date"].iloc[40:75]})
    footer, _ = call(create_app(snapshot), "footer.children", "/synthetic-control")
    assert footer["footer"]["children"] == (
        "Source: JHU CSSE and worldometers via the covid19 warehouse (2 Mar – 5 Apr 2020).")
    footer, _ = call(create_app(f"sqlite:///{tmp_path / 'none.db'}"), "footer.children", "/")
    assert footer["footer"]["children"] == (
        "Source: JHU CSSE and worldometers via the covid19 warehouse (not built yet).")


def test_date_range_names_the_year_once_unless_it_changes():
    assert date_range(pd.Timestamp("2020-01-22"), pd.Timestamp("2020-07-27")) == "22 Jan – 27 Jul 2020"
    assert date_range(pd.Timestamp("2020-12-30"), pd.Timestamp("2021-01-02")) == "30 Dec 2020 – 2 Jan 2021"


def test_warehouse_and_map_style_come_from_the_environment(monkeypatch, sqlite_warehouse_url: str):
    monkeypatch.setenv("WAREHOUSE_DB_URL", sqlite_warehouse_url)
    monkeypatch.delenv("DASH_MAP_STYLE", raising=False)
    response, _ = call(create_app(), MAP, 0, "confirmed")
    assert response["spread-map"]["figure"]["layout"]["map"]["style"] == DEFAULT_MAP_STYLE == "carto-positron"
    monkeypatch.setenv("DASH_MAP_STYLE", "open-street-map")
    response, _ = call(create_app(), MAP, 0, "confirmed")
    assert response["spread-map"]["figure"]["layout"]["map"]["style"] == "open-street-map"
    assert response["map-date"]["children"] == "22 January 2020"


@pytest.mark.parametrize(
    ("trigger", "day", "playing", "expected"),
    [
        ("play", 10, False, (10, True)),  # play
        ("play", 10, True, (10, False)),  # pause
        ("play", 187, False, (0, True)),  # play at the end starts over
        ("tick", 10, True, (11, True)),
        ("tick", 186, True, (187, False)),  # the last frame stops playing
        ("tick", 10, False, (10, False)),  # a stray tick while paused changes nothing
    ],
)
def test_next_frame(trigger: str, day: int, playing: bool, expected: tuple[int, bool]):
    assert next_frame(trigger, day, playing, 187) == expected


def test_play_callback_advances_the_slider(app: Dash):
    response, _ = call(app, "..map-day.value...map-timer.disabled...map-play.children..", 1, None, state=(5, True, 187))
    assert response == {
        "map-day": {"value": 5},
        "map-timer": {"disabled": False},
        "map-play": {"children": "Pause"},
    }


SHARED_VIEW = ("?measure=deaths_per_million&date=2020-05-01&country=Italy&country=Spain&count=deaths&mode=daily"
               "&scale=per_million&axis=log&align=days_since_100")


def _props(children) -> dict[str, dict]:
    """Every component of a layout (as JSON) with an id: {id: props}."""
    found = {}

    def walk(node) -> None:
        if isinstance(node, dict):
            props = node.get("props", {})
            if isinstance(props, dict) and "id" in props:
                found[props["id"]] = props
            for value in (props.values() if isinstance(props, dict) else []):
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(children)
    return found


def test_a_shared_url_opens_the_same_view(app: Dash):
    page, _ = call(app, ROUTER, "/", state=(SHARED_VIEW,))
    props = _props(page["page-content"]["children"])
    assert props["map-measure"]["value"] == "deaths_per_million"
    assert props["map-day"]["value"] == 100  # 2020-05-01
    assert props["trend-countries"]["value"] == ["Italy", "Spain"]
    assert [props[i]["value"] for i in ("trend-count", "trend-mode", "trend-scale", "trend-axis", "trend-align")] == [
        "deaths", "daily", "per_million", "log", "days_since_100"]


def test_every_change_of_the_view_is_written_to_the_url(app: Dash):
    response, _ = call(app, URL, "deaths_per_million", 100, ["Italy", "Spain"], "deaths", "daily", "per_million",
                       "log", "days_since_100")
    assert response["spread-url"]["search"] == SHARED_VIEW


def countries_with_a_rate(sources, day: str) -> set[str]:
    """Countries with cases and a worldometer population that day, from the CSVs."""
    series, world = sources["series"], set(sources["worldometer"]["Country/Region"])
    rows = series[(series["date"] == day) & (series["confirmed"] > 0)]
    return {c for c in rows["country_region"] if WORLDOMETER_NAMES.get(c, c) in world}


def test_a_view_change_moves_only_what_it_shows(app: Dash, sources):
    """One day of one measure, the chosen countries' rows, one day of the table: each far under the page."""
    response, map_bytes = call(app, MAP, 100, "confirmed_per_100k")
    (trace,) = response["spread-map"]["figure"]["data"]
    assert {row[0] for row in trace["customdata"]} == countries_with_a_rate(sources, "2020-05-01")
    assert len(trace["customdata"]) == 184
    _, trend_bytes = call(app, TREND, ["Italy", "Spain", "US"], "cases", "daily", "per_million", "log", "date")
    _, table_bytes = call(app, TABLE, 100)
    assert max(map_bytes, trend_bytes, table_bytes) < 100_000


def test_the_trend_shows_at_most_eight_countries(app: Dash):
    countries = ["Italy", "Spain", "US", "Brazil", "India", "Peru", "Chile", "Mexico", "Iran", "France"]
    response, _ = call(app, TREND, countries, "cases", "cumulative", "absolute", "linear", "date")
    assert [t["name"] for t in response["trend-graph"]["figure"]["data"]] == countries[:8]
    assert response["trend-note"]["children"] == "Showing the first 8 countries."


def _download(app: Dash, button: str, *, table_shown=None) -> pd.DataFrame:
    clicks = {"map-download": (1, 0, 0), "trend-download": (0, 1, 0), "table-download": (0, 0, 1)}[button]
    spec = app.callback_map[DOWNLOAD]
    body = {
        "output": DOWNLOAD, "outputs": {"id": "spread-download", "property": "data"},
        "inputs": [{**i, "value": v} for i, v in zip(spec["inputs"], clicks, strict=True)],
        "state": [{**s, "value": v} for s, v in zip(spec["state"], (
            100, "confirmed_per_100k", ["Italy", "Vietnam"], "cases", "daily", "per_million", "linear", "date",
            table_shown), strict=True)],
        "changedPropIds": [f"{button}.n_clicks"],
    }
    response = app.server.test_client().post("/_dash-update-component", json=body)
    data = response.get_json()["response"]["spread-download"]["data"]
    return data["filename"], pd.read_csv(io.StringIO(data["content"]), keep_default_na=False, na_values=[""])


def test_downloads_hold_exactly_what_is_shown(app: Dash, sources):
    name, frame = _download(app, "map-download")
    assert name == "map_confirmed_per_100k_2020-05-01.csv"
    assert set(frame["country_region"]) == countries_with_a_rate(sources, "2020-05-01")
    italy = frame.set_index("country_region").loc["Italy"]
    assert (italy["confirmed"], italy["population"]) == (207_428, 60_452_568)
    assert italy["confirmed_per_100k"] == pytest.approx(207_428 * 1e5 / 60_452_568)

    name, frame = _download(app, "trend-download")
    assert name == "trend_cases_daily_per_million_linear_date.csv"
    assert list(frame.columns) == ["country_region", "date", "days_since_100_cases", "new_cases_7d_avg_per_million",
                                   "new_cases_per_million"]
    assert len(frame) == 2 * 188 and set(frame["country_region"]) == {"Italy", "Vietnam"}

    shown = [{"country_region": "Italy", "confirmed": 207_428}, {"country_region": "Spain", "confirmed": 215_216}]
    name, frame = _download(app, "table-download", table_shown=shown)
    assert name == "countries_2020-05-01.csv"
    assert frame["country_region"].tolist() == ["Italy", "Spain"] and frame["confirmed"].tolist() == [207_428, 215_216]
