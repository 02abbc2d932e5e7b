"""The app over HTTP (Flask's test client, no browser): first-payload size, routing, what the page says when
there is no warehouse or its server is not reachable, the outlines asset, callbacks, play/pause logic."""

from __future__ import annotations

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
from etl_pipeline_tests.conftest import free_port
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
    page, page_bytes = call(app, ROUTER, "/")
    assert "map-day" in json.dumps(page["page-content"]["children"])
    _, map_bytes = call(app, MAP, 187)
    _, trend_bytes = call(app, "trend-graph.figure", "Vietnam")
    assert layout + page_bytes + map_bytes + trend_bytes < MAX_FIRST_PAYLOAD


def test_the_map_callback_sends_one_day(app: Dash, sources):
    response, _ = call(app, MAP, 70)
    positions = sources["positions"]
    day = positions[(positions["date"] == "2020-04-01") & (positions["confirmed"] > 0)]
    (trace,) = response["spread-map"]["figure"]["data"]
    assert response["map-date"]["children"] == "1 April 2020"
    assert len(trace["customdata"]) == len(day) == 251
    assert sum(row[2] for row in trace["customdata"]) == int(day["confirmed"].sum())
    assert response["spread-map"]["figure"]["layout"]["map"]["style"] == "white-bg"


def test_router_titles_pages_marks_the_active_link_and_reports_unknown_paths(app: Dash):
    page, _ = call(app, ROUTER, "/synthetic-control")
    assert page["page-title"]["data"] == "Synthetic control · COVID-19 warehouse"
    assert [page[f"nav-{p}"]["className"] for p in ("spread_map", "synthetic_control")] == [
        "nav-link",
        "nav-link active",
    ]
    assert "scm-treated" in json.dumps(page["page-content"]["children"])
    missing, _ = call(app, ROUTER, "/nope")
    assert "No page at /nope." in json.dumps(missing["page-content"]["children"])


def page_text(app: Dash, pathname: str = "/") -> str:
    page, _ = call(app, ROUTER, pathname)
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
    response, _ = call(app, MAP, 70)
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
    response, _ = call(create_app(), MAP, 0)
    assert response["spread-map"]["figure"]["layout"]["map"]["style"] == DEFAULT_MAP_STYLE == "carto-positron"
    monkeypatch.setenv("DASH_MAP_STYLE", "open-street-map")
    response, _ = call(create_app(), MAP, 0)
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
