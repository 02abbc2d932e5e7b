"""Warehouse queries for the dashboard, behind a short-lived cache.

The dashboard reads only the warehouse (``WAREHOUSE_DB_URL``: SQLite or PostgreSQL), never creates it (a SQLite
file is opened read-only), and only through the queries below: fixed table and column names from
``etl_pipeline.core.warehouse_model``, values as bound parameters. Why a read failed is told apart (no warehouse
yet, or a server that is not reachable) so that the page can say what to do. Results are cached for
:data:`CACHE_TTL_S` seconds so that the spread map's play button, which asks for one date per tick, does not hit
the database for frames it has just shown, while a reload of the warehouse becomes visible within a minute.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import pandas as pd
import sqlalchemy as sa

from dashboard.measures import MAP_MEASURES
from etl_pipeline.core.engines import describe_url, get_read_only_engine, sqlite_file
from etl_pipeline.core.errors import WarehouseError
from etl_pipeline.core.redaction import redact

#: Seconds a query result is reused.
CACHE_TTL_S = 60.0
#: Query results kept at most (one per map date, country trend, study panel, ...).
CACHE_MAX_ENTRIES = 512

_DATES = sa.text("SELECT date, day_index FROM dim_date ORDER BY day_index")

# One date of the map: join on dim_date so that a date is addressed by its integer day_index, whatever
# representation the warehouse gives the date column (DATE on PostgreSQL, ISO text on SQLite).
_LOCATIONS_ON_DAY = sa.text(
    """
    SELECT f.country_region, f.province_state, f.latitude, f.longitude, f.confirmed, f.deaths, f.new_cases_7d_avg,
           c.who_region, c.continent
    FROM fact_location_daily f
    JOIN dim_date d ON d.date = f.date
    LEFT JOIN dim_country c ON c.country_region = f.country_region
    WHERE d.day_index = :day_index
    ORDER BY f.country_region, f.province_state
    """
)

_COUNTRIES_ON_DAY = sa.text(
    """
    SELECT s.country_region, s.latitude, s.longitude, s.population, s.confirmed, s.deaths, s.confirmed_per_100k,
           s.deaths_per_million, s.case_fatality_ratio, s.new_cases_7d_avg, s.who_region, s.continent
    FROM covid19_daily_stats s
    JOIN dim_date d ON d.date = s.date
    WHERE d.day_index = :day_index
    ORDER BY s.country_region
    """
)

#: The largest value of each map measure on any day (fixes the colour scale across frames); column and table
#: names come from ``dashboard.measures.MAP_MEASURES`` only.
_MEASURE_MAX = {
    key: sa.text(f"SELECT MAX({m.column}) AS value FROM "
                 f"{'fact_location_daily' if m.level == 'location' else 'covid19_daily_stats'} "
                 f"WHERE confirmed >= {int(m.min_confirmed)}")
    for key, m in MAP_MEASURES.items()
}

_COUNTRIES = sa.text(
    "SELECT country_region, continent, who_region, population FROM dim_country ORDER BY country_region"
)

_COUNTRY_TRENDS = sa.text(
    """
    SELECT country_region, date, confirmed, deaths, recovered, active, new_cases, new_deaths, new_cases_7d_avg,
           new_deaths_7d_avg, confirmed_per_million, deaths_per_million, new_cases_per_million,
           new_deaths_per_million, new_cases_7d_avg_per_million, new_deaths_7d_avg_per_million,
           days_since_100_cases, population
    FROM covid19_daily_stats
    WHERE country_region IN :countries
    ORDER BY country_region, date
    """
).bindparams(sa.bindparam("countries", expanding=True))

# Each country on one day and 7 days before it (for the 7-day change and the doubling time).
_COUNTRY_TABLE = sa.text(
    """
    SELECT s.country_region, s.continent, s.population, s.confirmed, s.deaths, s.confirmed_per_100k,
           s.deaths_per_million, s.new_cases_7d_avg, s.new_cases_7d_avg_per_million, s.case_fatality_ratio,
           w.confirmed AS confirmed_7_days_before
    FROM covid19_daily_stats s
    JOIN dim_date d ON d.date = s.date
    LEFT JOIN dim_date d7 ON d7.day_index = d.day_index - 7
    LEFT JOIN covid19_daily_stats w ON w.country_region = s.country_region AND w.date = d7.date
    WHERE d.day_index = :day_index
    ORDER BY s.country_region
    """
)

_CONTINENT_TOTALS = sa.text(
    """
    SELECT continent, total_confirmed, total_deaths, total_recovered, total_active, number_of_countries, population
    FROM covid19_continent_stats
    ORDER BY total_confirmed DESC, continent
    """
)

_STUDY_PANEL = sa.text(
    """
    SELECT s.country_region, s.date, s.confirmed, c.population
    FROM covid19_daily_stats s
    LEFT JOIN dim_country c ON c.country_region = s.country_region
    WHERE s.country_region IN :countries
    ORDER BY s.country_region, s.date
    """
).bindparams(sa.bindparam("countries", expanding=True))


#: What a reader is told to do about a warehouse that is not there yet.
BUILD_HINT = "build it with `covid-etl run`"
#: PostgreSQL's SQLSTATE for a table that does not exist (undefined_table).
_UNDEFINED_TABLE = "42P01"


class WarehouseNotBuilt(WarehouseError):
    """No warehouse to read yet (no SQLite file, or not its tables): ``covid-etl run`` builds it."""


class WarehouseUnreachable(WarehouseError):
    """The warehouse server did not accept a connection: building again would not help, starting it (or fixing
    ``WAREHOUSE_DB_URL``) would."""


def _driver_message(error: BaseException, *, first_line: bool = False) -> str:
    """The driver's message as one sentence, passwords redacted: psycopg2 spreads a message over several lines
    (the first one says what failed; a query error goes on with the statement, a connection error with a hint)."""
    text = redact(str(error)).strip()
    text = " ".join((text.splitlines()[0] if first_line and text else text).split())
    return text if text.endswith((".", "?", "!")) else f"{text}."


def connection_error(url: str, error: BaseException) -> WarehouseError:
    """The error to show when no connection to the warehouse at ``url`` could be opened."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        return WarehouseNotBuilt(f"No warehouse at {path}: {BUILD_HINT} (or set ETL_HOME or WAREHOUSE_DB_URL).")
    if path is not None:
        return WarehouseError(f"Cannot open the warehouse {path}: {_driver_message(error)}")
    return WarehouseUnreachable(
        f"The warehouse server {describe_url(url)} is not reachable: {_driver_message(error)} "
        "Check that it runs and that WAREHOUSE_DB_URL names it (host, port, user, password)."
    )


def query_error(url: str, error: BaseException) -> WarehouseError:
    """The error to show when a query failed on an open connection: a missing table means not built yet."""
    if str(error).startswith("no such table") or getattr(error, "pgcode", None) == _UNDEFINED_TABLE:
        reason = _driver_message(error, first_line=True).rstrip(".")
        return WarehouseNotBuilt(f"The warehouse {describe_url(url)} is not built yet ({reason}): {BUILD_HINT}.")
    return WarehouseError(f"Cannot read the warehouse {describe_url(url)}: {_driver_message(error, first_line=True)}")


class TTLCache:
    """A small thread-safe least-recently-used cache whose entries expire ``ttl_s`` seconds after they were
    computed. Two threads missing the same key may both compute it; the last result is kept."""

    def __init__(self, ttl_s: float, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and now - hit[0] < self._ttl_s:
                self._entries.move_to_end(key)
                return hit[1]
        value = compute()
        with self._lock:
            self._entries[key] = (now, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_entries:
                self._entries.popitem(last=False)
        return value


class Warehouse:
    """Read-only access to the warehouse tables the dashboard shows. Every DataFrame returned is a fresh copy
    (callers may modify it), its ``date`` column as ``datetime64``."""

    def __init__(self, url: str, cache: TTLCache | None = None) -> None:
        self.url = url
        self._cache = cache or TTLCache(CACHE_TTL_S, CACHE_MAX_ENTRIES)

    def _read(self, key: Hashable, query: sa.TextClause, params: dict[str, Any] | None = None) -> pd.DataFrame:
        def run() -> pd.DataFrame:
            try:
                conn = get_read_only_engine(self.url).connect()
            except sa.exc.DBAPIError as exc:
                raise connection_error(self.url, exc.orig) from None
            try:
                with conn:
                    frame = pd.read_sql_query(query, conn, params=params)
            except sa.exc.DBAPIError as exc:
                raise query_error(self.url, exc.orig) from None
            if "date" in frame.columns:
                frame["date"] = pd.to_datetime(frame["date"])
            return frame

        return self._cache.get_or_compute(key, run).copy()

    def dates(self) -> pd.DataFrame:
        """Every reported day: ``date``, ``day_index`` (0 = first day), in order."""
        return self._read("dates", _DATES)

    def locations_on(self, day_index: int) -> pd.DataFrame:
        """The map's rows for one day: one per location with coordinates, counts, the 7-day average of new cases,
        WHO region and continent."""
        return self._read(("locations", day_index), _LOCATIONS_ON_DAY, {"day_index": int(day_index)})

    def countries_on(self, day_index: int) -> pd.DataFrame:
        """The map's rows for one day at country level: coordinates, population, counts and per-capita rates."""
        return self._read(("countries on", day_index), _COUNTRIES_ON_DAY, {"day_index": int(day_index)})

    def measure_max(self, measure: str) -> float:
        """The largest value of a map measure (a key of ``MAP_MEASURES``) on any day, over the rows with at least
        its ``min_confirmed`` cases; 0 when there is none."""
        value = self._read(("max", measure), _MEASURE_MAX[measure]).iat[0, 0]
        return 0.0 if pd.isna(value) else float(value)

    def countries(self) -> pd.DataFrame:
        """The country dimension: ``country_region``, ``continent``, ``who_region``, ``population``."""
        return self._read("countries", _COUNTRIES)

    def country_trends(self, countries: Sequence[str]) -> pd.DataFrame:
        """The daily rows of ``covid19_daily_stats`` the trend view draws, for the given countries only:
        counts, daily counts and their 7-day averages, per-million rates, days since the 100th case."""
        chosen = tuple(sorted(set(countries)))
        return self._read(("trends", chosen), _COUNTRY_TRENDS, {"countries": list(chosen)})

    def country_table(self, day_index: int) -> pd.DataFrame:
        """Every country on one day: counts, rates, 7-day average and ``confirmed_7_days_before`` (NULL in the
        first week)."""
        return self._read(("table", day_index), _COUNTRY_TABLE, {"day_index": int(day_index)})

    def continent_totals(self) -> pd.DataFrame:
        """``covid19_continent_stats``, largest confirmed total first."""
        return self._read("continents", _CONTINENT_TOTALS)

    def study_panel(self, countries: Sequence[str]) -> pd.DataFrame:
        """Long panel for the synthetic-control study: ``country_region``, ``date``, ``confirmed`` and the
        country's ``population`` (NULL when unknown), for the given countries only."""
        chosen = tuple(sorted(set(countries)))
        return self._read(("panel", chosen), _STUDY_PANEL, {"countries": list(chosen)})
