"""The measures the pages offer, as the warehouse publishes them (``etl_pipeline/transforms/measures.py`` computes
them in the pipeline; the dashboard only picks and draws them): the spread map's, and the trend view's.

Column names here are the only ones the dashboard's measure queries take, from these fixed tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class MapMeasure:
    """One choice of the spread map."""

    label: str
    #: The warehouse column.
    column: str
    #: ``location``: ``fact_location_daily`` (provinces and countries); ``country``: ``covid19_daily_stats``.
    level: Literal["location", "country"]
    #: What one unit of the value is, as the hover and colour bar say it.
    unit: str
    #: A logarithmic colour scale (counts and rates spanning orders of magnitude) or a linear one.
    log: bool
    #: Python format of a value in the hover (d3 format in Plotly's hover template).
    hover_format: str
    #: The Plotly colour scale.
    colorscale: str = "YlOrRd"
    #: Rows with fewer confirmed cases are neither drawn nor used for the colour scale (a fatality ratio over a
    #: handful of cases, e.g. 2 deaths of 2 cases, says nothing and would stretch the scale to 100 %).
    min_confirmed: int = 0


MAP_MEASURES: dict[str, MapMeasure] = {
    "confirmed": MapMeasure("Cumulative confirmed cases", "confirmed", "location", "cases", log=True,
                            hover_format=",d"),
    "new_cases_7d_avg": MapMeasure("New cases per day, 7-day average", "new_cases_7d_avg", "location",
                                   "cases per day", log=True, hover_format=",.1f"),
    "confirmed_per_100k": MapMeasure("Confirmed cases per 100,000 people", "confirmed_per_100k", "country",
                                     "cases per 100k", log=True, hover_format=",.1f"),
    "deaths_per_million": MapMeasure("Deaths per million people", "deaths_per_million", "country",
                                     "deaths per million", log=True, hover_format=",.1f", colorscale="Reds"),
    "case_fatality_ratio": MapMeasure("Case fatality ratio (deaths / confirmed)", "case_fatality_ratio", "country",
                                      "", log=False, hover_format=".2%", colorscale="Purples", min_confirmed=100),
}
DEFAULT_MAP_MEASURE = "confirmed"

#: Trend view: what is counted, and how.
TREND_COUNTS = {"cases": "Confirmed cases", "deaths": "Deaths"}
TREND_MODES = {"cumulative": "Cumulative", "daily": "Daily (7-day average)"}
TREND_SCALES = {"absolute": "Absolute", "per_million": "Per million people"}
TREND_AXES = {"linear": "Linear", "log": "Log"}
TREND_ALIGNMENTS = {"date": "By date", "days_since_100": "Days since the 100th case"}
#: Countries one trend chart compares at most (more lines are unreadable).
MAX_TREND_COUNTRIES = 8


def trend_column(count: str, mode: str, scale: str, *, smoothed: bool) -> str:
    """The ``covid19_daily_stats`` column of a trend choice, e.g. ``("cases", "daily", "per_million")`` ->
    ``new_cases_7d_avg_per_million`` (``smoothed``) or ``new_cases_per_million`` (the daily bars)."""
    if mode == "cumulative":
        column = "confirmed" if count == "cases" else "deaths"
    else:
        column = f"new_{count}" + ("_7d_avg" if smoothed else "")
    return column if scale == "absolute" else f"{column}_{scale}"


def trend_unit(count: str, mode: str, scale: str) -> str:
    """'cases', 'deaths per million people per day', ..."""
    unit = "cases" if count == "cases" else "deaths"
    if scale == "per_million":
        unit += " per million people"
    return unit + (" per day" if mode == "daily" else "")
