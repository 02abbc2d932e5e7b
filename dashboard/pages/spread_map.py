"""Spread map: a measure of the outbreak by location or country on one day, a date slider with play/pause, a
trend chart comparing countries, the continent totals and a sortable, filterable country table; each view's data
downloads as CSV, and the page's state lives in its URL (:mod:`dashboard.view_state`), so a link reopens it.

Only what a view shows reaches the browser: the slider's value (a ``dim_date.day_index``) and the measure go to
a callback that queries that day, the trend queries the chosen countries, the table one day; the page's first
payload stays small however many days the warehouse holds.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, callback_context, dash_table, dcc, html, no_update

from dashboard.components import graph, loading, page_header
from dashboard.context import DashboardContext
from dashboard.country_table import COLUMNS as TABLE_COLUMNS
from dashboard.country_table import table_rows
from dashboard.figures import continent_figure, map_rows, spread_map_figure, trend_figure, trend_rows
from dashboard.formatting import date_range, long_date
from dashboard.measures import MAP_MEASURES, MAX_TREND_COUNTRIES
from dashboard.view_state import TREND_CHOICES, SpreadView, parse, search_string, trend_view

PATH = "/"
TITLE = "Spread map"
DEFAULT_TREND_COUNTRY = "Vietnam"
#: Milliseconds between frames while playing.
PLAY_INTERVAL_MS = 1200
#: The trend chart's choices: (component id, the view's field, options).
_TREND_CHOICES = tuple((f"trend-{name}", name, options) for name, options in TREND_CHOICES.items())


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


def _radio(id: str, options: dict[str, str], value: str) -> dcc.RadioItems:
    return dcc.RadioItems(id=id, options=[{"label": label, "value": key} for key, label in options.items()],
                          value=value, inline=True, className="choice")


def _download_button(id: str) -> html.Button:
    return html.Button("Download CSV", id=id, n_clicks=0, className="download-button")


def _view(context: DashboardContext, search: str | None) -> tuple[SpreadView, pd.DataFrame, list[str]]:
    dates = context.warehouse.dates()
    countries = context.warehouse.countries()["country_region"].tolist()
    default = [DEFAULT_TREND_COUNTRY if DEFAULT_TREND_COUNTRY in countries else countries[0]]
    iso = [f"{d:%Y-%m-%d}" for d in dates["date"]]
    return parse(search, dates=iso, countries=countries, default_countries=default), dates, countries


def layout(context: DashboardContext, search: str | None = None) -> html.Div:
    warehouse = context.warehouse
    view, dates, countries = _view(context, search)
    last_day = int(dates["day_index"].max())
    day = int(dates.loc[dates["date"] == pd.Timestamp(view.date), "day_index"].iat[0])
    span = date_range(dates["date"].min(), dates["date"].max())
    trend_controls = [
        html.Label("Countries (up to 8)", htmlFor="trend-countries", className="control-label"),
        dcc.Dropdown(id="trend-countries", options=countries, value=list(view.trend.countries), multi=True,
                     clearable=False),
        html.Div(id="trend-note", className="note"),
        *(_radio(id, options, getattr(view.trend, field)) for id, field, options in _TREND_CHOICES),
    ]
    return html.Div(
        [
            dcc.Location(id="spread-url", refresh=False),
            dcc.Download(id="spread-download"),
            page_header(
                "How COVID-19 spread",
                f"Cases and deaths by province or country, one day at a time ({span}); JHU CSSE counts, "
                "worldometer populations. Choose a measure; hover a hot spot for its values.",
            ),
            html.Div(
                [
                    html.Section(
                        [
                            _radio("map-measure", {k: m.label for k, m in MAP_MEASURES.items()}, view.measure),
                            html.Div(
                                [
                                    html.Button("Play", id="map-play", n_clicks=0, className="play-button"),
                                    html.Div(id="map-date", className="map-date", **{"aria-live": "polite"}),
                                    _download_button("map-download"),
                                ],
                                className="map-controls",
                            ),
                            dcc.Slider(
                                id="map-day",
                                min=0,
                                max=last_day,
                                step=1,
                                value=day,
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
                            *trend_controls,
                            loading(graph("trend-graph", height="40vh"), id="trend-loading"),
                            _download_button("trend-download"),
                            graph(
                                "continent-graph", height="34vh", figure=continent_figure(warehouse.continent_totals())
                            ),
                        ],
                        className="panel side-panel",
                    ),
                ],
                className="two-columns",
            ),
            html.Section(
                [
                    html.Div([html.H2(id="table-heading"), _download_button("table-download")],
                             className="table-header"),
                    dash_table.DataTable(
                        id="country-table",
                        columns=[{"name": header, "id": column,
                                  **({"type": "numeric", "format": {"specifier": fmt}} if fmt else {})}
                                 for column, header, fmt in TABLE_COLUMNS],
                        sort_action="native",
                        filter_action="native",
                        sort_by=[{"column_id": "confirmed_per_100k", "direction": "desc"}],
                        page_size=20,
                        style_table={"overflowX": "auto"},
                        style_cell={"fontFamily": "inherit", "fontSize": "0.85rem", "padding": "4px 8px"},
                        style_header={"whiteSpace": "normal", "height": "auto", "fontWeight": 600},
                        style_cell_conditional=[{"if": {"column_id": c}, "textAlign": "left"}
                                                for c in ("country_region", "continent")],
                    ),
                ],
                className="panel table-panel",
            ),
        ]
    )


def register_callbacks(app: Dash, context: DashboardContext) -> None:
    warehouse = context.warehouse
    trend_inputs = [Input("trend-countries", "value"), *(Input(id, "value") for id, _, _ in _TREND_CHOICES)]

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

    def shown_on_map(day: int, measure: str) -> pd.DataFrame:
        spec = MAP_MEASURES[measure]
        rows = warehouse.locations_on(day) if spec.level == "location" else warehouse.countries_on(day)
        return map_rows(rows, spec)

    def day_date(day: int) -> pd.Timestamp:
        """The date of a slider value (a ``dim_date.day_index``)."""
        return warehouse.dates().set_index("day_index")["date"][day]

    def day_label(day: int) -> str:
        return long_date(day_date(day))

    @app.callback(
        Output("spread-map", "figure"),
        Output("map-date", "children"),
        Input("map-day", "value"),
        Input("map-measure", "value"),
    )
    def show_day(day: int, measure: str):
        spec, label = MAP_MEASURES[measure], day_label(day)
        figure = spread_map_figure(
            shown_on_map(day, measure),
            spec,
            max_value=warehouse.measure_max(measure),
            map_style=context.map_style,
            outlines_url=context.outlines_url,
            title=f"{spec.label} on {label}",
        )
        return figure, label

    @app.callback(Output("trend-countries", "value"), Input("trend-countries", "value"), prevent_initial_call=True)
    def cap_countries(countries: list[str] | None):
        """At most MAX_TREND_COUNTRIES stay chosen (the dropdown's "Select all" would choose every country)."""
        return countries[:MAX_TREND_COUNTRIES] if len(countries or []) > MAX_TREND_COUNTRIES else no_update

    @app.callback(Output("trend-graph", "figure"), Output("trend-note", "children"), *trend_inputs)
    def show_trend(countries: list[str] | None, *choices: str):
        view = trend_view(countries, *choices)
        note = (f"Showing the first {MAX_TREND_COUNTRIES} countries." if len(countries or []) > MAX_TREND_COUNTRIES
                else "" if view.countries else "Choose a country.")
        return trend_figure(trend_rows(warehouse.country_trends(view.countries), view), view), note

    @app.callback(
        Output("country-table", "data"),
        Output("table-heading", "children"),
        Input("map-day", "value"),
    )
    def show_table(day: int):
        rows = table_rows(warehouse.country_table(day))
        return rows.astype(object).where(rows.notna(), None).to_dict("records"), f"Countries on {day_label(day)}"

    @app.callback(
        Output("spread-url", "search"),
        Input("map-measure", "value"),
        Input("map-day", "value"),
        *trend_inputs,
        prevent_initial_call=True,
    )
    def remember(measure: str, day: int, countries: list[str] | None, *choices: str) -> str:
        date = f"{day_date(day):%Y-%m-%d}"
        return search_string(SpreadView(measure, date, trend_view(countries, *choices)))

    @app.callback(
        Output("spread-download", "data"),
        Input("map-download", "n_clicks"),
        Input("trend-download", "n_clicks"),
        Input("table-download", "n_clicks"),
        State("map-day", "value"),
        State("map-measure", "value"),
        *(State(i.component_id, i.component_property) for i in trend_inputs),
        State("country-table", "derived_virtual_data"),
        prevent_initial_call=True,
    )
    def download(_map: int, _trend: int, _table: int, day: int, measure: str, countries: list[str] | None,
                 *rest):
        *choices, table_shown = rest
        date = f"{day_date(day):%Y-%m-%d}"
        trigger = callback_context.triggered_id
        if trigger == "map-download":
            frame, name = shown_on_map(day, measure).rename(columns={"value": measure}), f"map_{measure}_{date}"
        elif trigger == "trend-download":
            view = trend_view(countries, *choices)
            frame, name = trend_rows(warehouse.country_trends(view.countries), view), "trend_" + "_".join(choices)
        else:
            frame = pd.DataFrame(table_shown or [], columns=[c for c, _, _ in TABLE_COLUMNS])
            name = f"countries_{date}"
        return dcc.send_data_frame(frame.to_csv, f"{name}.csv", index=False)
