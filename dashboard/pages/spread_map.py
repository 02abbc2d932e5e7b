"""Spread map: confirmed cases by location on one day, a date slider with play/pause, one country's trend and
the continent totals.

Only the chosen day's rows reach the browser: the slider's value (a ``dim_date.day_index``) goes to a callback
that queries that day, so the page's first payload stays small however many days the warehouse holds.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, callback_context, dcc, html

from dashboard.components import graph, loading, page_header
from dashboard.context import DashboardContext
from dashboard.figures import continent_figure, spread_map_figure, trend_figure
from dashboard.formatting import long_date

PATH = "/"
TITLE = "Spread map"
DEFAULT_TREND_COUNTRY = "Vietnam"
#: Milliseconds between frames while playing.
PLAY_INTERVAL_MS = 1200


def next_frame(trigger: str | None, day: int, playing: bool, last_day: int) -> tuple[int, bool]:
    """The slider day and play state after a click on play/pause (``trigger == "play"``) or a timer tick.

    Play from the last day starts again at day 0; a tick past the last day stops playing.
    """
    if trigger == "play":
        return (0 if day >= last_day and not playing else day), not playing
    if not playing:
        return day, False
    if day + 1 >= last_day:
        return last_day, False
    return day + 1, True


def _month_marks(dates: pd.DataFrame) -> dict[int, str]:
    """A slider mark on the first day of each month."""
    firsts = dates[dates["date"].dt.day == 1]
    return {int(day): f"{date:%b %Y}" for day, date in zip(firsts["day_index"], firsts["date"], strict=True)}


def layout(context: DashboardContext) -> html.Div:
    warehouse = context.warehouse
    dates = warehouse.dates()
    countries = warehouse.countries()["country_region"].tolist()
    last_day = int(dates["day_index"].max())
    chosen = DEFAULT_TREND_COUNTRY if DEFAULT_TREND_COUNTRY in countries else countries[0]
    return html.Div(
        [
            page_header(
                "How COVID-19 spread",
                "Cumulative confirmed cases per province or country, one day at a time "
                f"({dates['date'].min():%d %b %Y} – {dates['date'].max():%d %b %Y}). "
                "Colour intensity is logarithmic; hover a hot spot for its counts.",
            ),
            html.Div(
                [
                    html.Section(
                        [
                            html.Div(
                                [
                                    html.Button("Play", id="map-play", n_clicks=0, className="play-button"),
                                    html.Div(id="map-date", className="map-date", **{"aria-live": "polite"}),
                                ],
                                className="map-controls",
                            ),
                            dcc.Slider(
                                id="map-day",
                                min=0,
                                max=last_day,
                                step=1,
                                value=last_day,
                                marks=_month_marks(dates),
                                allow_direct_input=False,
                                updatemode="mouseup",
                            ),
                            dcc.Interval(id="map-timer", interval=PLAY_INTERVAL_MS, disabled=True),
                            loading(graph("spread-map", height="62vh"), id="spread-map-loading"),
                        ],
                        className="panel map-panel",
                    ),
                    html.Aside(
                        [
                            html.Label("Country", htmlFor="trend-country", className="control-label"),
                            dcc.Dropdown(id="trend-country", options=countries, value=chosen, clearable=False),
                            loading(graph("trend-graph", height="34vh"), id="trend-loading"),
                            graph(
                                "continent-graph", height="34vh", figure=continent_figure(warehouse.continent_totals())
                            ),
                        ],
                        className="panel side-panel",
                    ),
                ],
                className="two-columns",
            ),
        ]
    )


def register_callbacks(app: Dash, context: DashboardContext) -> None:
    warehouse = context.warehouse

    @app.callback(
        Output("map-day", "value"),
        Output("map-timer", "disabled"),
        Output("map-play", "children"),
        Input("map-play", "n_clicks"),
        Input("map-timer", "n_intervals"),
        State("map-day", "value"),
        State("map-timer", "disabled"),
        State("map-day", "max"),
        prevent_initial_call=True,
    )
    def play(_clicks: int, _ticks: int, day: int, timer_disabled: bool, last_day: int):
        trigger = "play" if callback_context.triggered_id == "map-play" else "tick"
        day, playing = next_frame(trigger, day, not timer_disabled, last_day)
        return day, not playing, "Pause" if playing else "Play"

    @app.callback(
        Output("spread-map", "figure"),
        Output("map-date", "children"),
        Input("map-day", "value"),
    )
    def show_day(day: int):
        dates = warehouse.dates().set_index("day_index")["date"]
        label = long_date(dates[day])
        figure = spread_map_figure(
            warehouse.locations_on(day),
            max_confirmed=warehouse.max_location_confirmed(),
            map_style=context.map_style,
            outlines_url=context.outlines_url,
            title=f"Confirmed cases on {label}",
        )
        return figure, label

    @app.callback(Output("trend-graph", "figure"), Input("trend-country", "value"))
    def show_trend(country: str):
        return trend_figure(warehouse.country_trend(country), country)
