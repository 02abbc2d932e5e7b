"""The spread-map page's state in its URL's query string, so that a link reopens the same view.

``?measure=deaths_per_million&date=2020-05-01&country=Italy&country=Spain&count=deaths&mode=daily
&scale=per_million&axis=log&align=days_since_100`` — a country per ``country`` parameter (names may hold commas).
A value the page does not know (a typo, a country the warehouse lacks) falls back to the default: a shared link
never breaks the page.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode

from dashboard.measures import (
    DEFAULT_MAP_MEASURE,
    MAP_MEASURES,
    MAX_TREND_COUNTRIES,
    TREND_ALIGNMENTS,
    TREND_AXES,
    TREND_COUNTS,
    TREND_MODES,
    TREND_SCALES,
)


@dataclass(frozen=True)
class TrendView:
    """What the trend chart shows: the countries, and a key of each ``TREND_*`` choice of ``dashboard.measures``."""

    countries: tuple[str, ...]
    count: str = "cases"
    mode: str = "cumulative"
    scale: str = "absolute"
    axis: str = "linear"
    align: str = "date"


@dataclass(frozen=True)
class SpreadView:
    """The spread page: the map's measure and ISO date (YYYY-MM-DD; the table's too) and the trend chart."""

    measure: str
    date: str
    trend: TrendView


#: The trend's choices, by URL parameter (= ``TrendView`` field).
TREND_CHOICES = {"count": TREND_COUNTS, "mode": TREND_MODES, "scale": TREND_SCALES, "axis": TREND_AXES,
                 "align": TREND_ALIGNMENTS}


def trend_view(countries: list[str] | None, *choices: str) -> TrendView:
    """The chart's view of the chosen countries (the first :data:`MAX_TREND_COUNTRIES`) and the choices, in the
    order of :data:`TREND_CHOICES`."""
    return TrendView(tuple((countries or [])[:MAX_TREND_COUNTRIES]), *choices)


def parse(search: str | None, *, dates: list[str], countries: list[str], default_countries: list[str]) -> SpreadView:
    """The view a query string asks for, against the warehouse's ``dates`` (ISO, in order) and ``countries``."""
    query = parse_qs((search or "").lstrip("?"))

    def one(name: str, allowed, default: str) -> str:
        value = query.get(name, [default])[-1]
        return value if value in allowed else default

    known = set(countries)
    chosen = [c for c in dict.fromkeys(query.get("country", [])) if c in known]
    trend = trend_view(chosen or default_countries, *(
        one(name, allowed, TrendView.__dataclass_fields__[name].default) for name, allowed in TREND_CHOICES.items()))
    return SpreadView(one("measure", MAP_MEASURES, DEFAULT_MAP_MEASURE), one("date", set(dates), dates[-1]), trend)


def search_string(view: SpreadView) -> str:
    """``?measure=...&date=...&country=...&...``: the query string of ``view``."""
    pairs = [("measure", view.measure), ("date", view.date), *(("country", c) for c in view.trend.countries),
             *((name, getattr(view.trend, name)) for name in TREND_CHOICES)]
    return "?" + urlencode(pairs)
