"""The warehouse model: every table the warehouse holds, with column types, primary keys and comments.

Each gold asset ``[gold, medical, <table>]`` is loaded 1:1 into the warehouse table ``<table>``:
the two tables users know (``covid19_daily_stats``, ``covid19_continent_stats``) and a star schema for
analysis (``dim_country``, ``dim_date``, ``fact_daily_cases``, ``fact_location_daily``). This module is
also the allow-list of SQL identifiers: no table or column name reaches SQL unless it is declared here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SqlType = Literal["text", "bigint", "integer", "double", "date", "boolean"]


@dataclass(frozen=True)
class WarehouseColumn:
    name: str
    type: SqlType
    comment: str
    nullable: bool = False


@dataclass(frozen=True)
class WarehouseTable:
    name: str
    comment: str
    columns: tuple[WarehouseColumn, ...]
    primary_key: tuple[str, ...]
    #: Secondary indexes (each a tuple of columns) for the dashboard's queries.
    indexes: tuple[tuple[str, ...], ...] = ()

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def _c(name: str, type_: SqlType, comment: str, nullable: bool = False) -> WarehouseColumn:
    return WarehouseColumn(name, type_, comment, nullable)


_DATE = _c("date", "date", "Day of the report (UTC)")
_COUNTRY = _c("country_region", "text", "Country name as spelled by JHU CSSE (e.g. 'US', 'Burma')")
_COUNTS = (
    _c("confirmed", "bigint", "Cumulative confirmed cases"),
    _c("deaths", "bigint", "Cumulative deaths"),
    _c("recovered", "bigint", "Cumulative recovered"),
    _c("active", "bigint", "Active cases = confirmed - deaths - recovered (as reported; may be negative)"),
)
_NEW = (
    _c("new_cases", "bigint", "New confirmed cases that day (as reported; may be negative after corrections)"),
    _c("new_deaths", "bigint", "New deaths that day (as reported; may be negative)"),
    _c("new_recovered", "bigint", "New recovered that day (as reported; may be negative)"),
)
_COORDS = (
    _c("latitude", "double", "Latitude (WGS84)", nullable=True),
    _c("longitude", "double", "Longitude (WGS84)", nullable=True),
)
_POPULATION = _c("population", "bigint", "Population (worldometer), persons; NULL when worldometer lacks the country",
                 nullable=True)
_LOCATION_NEW = (
    _c("new_cases", "bigint", "New confirmed cases: confirmed minus the previous day's (may be negative after "
       "corrections); NULL on the location's first day", nullable=True),
    _c("new_deaths", "bigint", "New deaths: deaths minus the previous day's (may be negative); NULL on the "
       "location's first day", nullable=True),
)
_ROLLING = tuple(
    _c(f"new_{m}_7d_avg", "double", f"New {w} per day, trailing 7-day mean (the day and the 6 before it, as OWID's "
       "'smoothed' series); NULL until 7 days have a value", nullable=True)
    for m, w in (("cases", "confirmed cases"), ("deaths", "deaths"))
)
_PER_CAPITA = tuple(
    _c(f"{m}_{suffix}", "double", f"{what} {unit} (worldometer population); NULL without a known population",
       nullable=True)
    for m, what in (("confirmed", "Cumulative confirmed cases"), ("deaths", "Cumulative deaths"),
                    ("new_cases", "New confirmed cases that day"), ("new_deaths", "New deaths that day"),
                    ("new_cases_7d_avg", "New confirmed cases per day, trailing 7-day mean,"),
                    ("new_deaths_7d_avg", "New deaths per day, trailing 7-day mean,"))
    for suffix, unit in (("per_100k", "per 100,000 people"), ("per_million", "per million people"))
)
_RATIOS = (
    _c("case_fatality_ratio", "double", "Case fatality ratio: deaths / confirmed, a ratio 0-1 (not a percentage); "
       "NULL unless confirmed > 0", nullable=True),
    _c("days_since_100_cases", "integer", "Days since the first day with 100 or more confirmed cases (0 on it); NULL "
       "before it", nullable=True),
    _c("downward_revision", "boolean", "True when the source revised a count down that day: a daily count is "
       "negative or a cumulative count (confirmed, deaths, recovered) is lower than the day before; counts are kept "
       "as reported"),
)
_REGIONS = (
    _c("who_region", "text", "WHO region", nullable=True),
    _c("continent", "text", "Continent from the reviewed country reference"),
)

WAREHOUSE_TABLES: dict[str, WarehouseTable] = {
    t.name: t
    for t in (
        WarehouseTable(
            "covid19_daily_stats",
            "One row per day and country: cumulative and new counts with the country's coordinates and regions, "
            "population, 7-day averages, per-capita rates and the case fatality ratio.",
            (_DATE, _COUNTRY, *_COUNTS, *_NEW, *_COORDS, *_REGIONS, _POPULATION, *_ROLLING, *_PER_CAPITA,
             *_RATIOS),
            ("date", "country_region"),
            indexes=(("country_region", "date"),),
        ),
        WarehouseTable(
            "covid19_continent_stats",
            "One row per continent: totals on each country's last reported day.",
            (
                _c("continent", "text", "Continent"),
                _c("total_confirmed", "bigint", "Confirmed cases, summed over the continent's countries"),
                _c("total_deaths", "bigint", "Deaths, summed over the continent's countries"),
                _c("total_recovered", "bigint", "Recovered, summed over the continent's countries"),
                _c("total_active", "bigint", "Active cases, summed over the continent's countries"),
                _c("number_of_countries", "integer", "Countries (JHU names) on the continent"),
                _c("population", "bigint", "Population of the countries with a known population (worldometer)",
                   nullable=True),
            ),
            ("continent",),
        ),
        WarehouseTable(
            "dim_country",
            "Country dimension: one row per JHU country, conformed with worldometer.",
            (
                _COUNTRY,
                _c("continent", "text", "Continent from the reviewed country reference"),
                _c("who_region", "text", "WHO region", nullable=True),
                _POPULATION,
                *_COORDS,
            ),
            ("country_region",),
            indexes=(("continent",),),
        ),
        WarehouseTable(
            "dim_date",
            "Date dimension: one row per reported day.",
            (
                _DATE,
                _c("year", "integer", "Calendar year"),
                _c("month", "integer", "Month 1-12"),
                _c("day", "integer", "Day of month"),
                _c("iso_week", "integer", "ISO 8601 week number"),
                _c("day_of_week", "integer", "ISO day of week, 1 = Monday"),
                _c("day_index", "integer", "Days since the first reported day (0-based)"),
            ),
            ("date",),
        ),
        WarehouseTable(
            "fact_daily_cases",
            "Fact: counts per day and country (join dim_date on date, dim_country on country_region).",
            (_DATE, _COUNTRY, *_COUNTS, *_NEW, *_ROLLING, *_PER_CAPITA, *_RATIOS),
            ("date", "country_region"),
            indexes=(("country_region", "date"),),
        ),
        WarehouseTable(
            "fact_location_daily",
            "Fact: counts per day and location (province, or the whole country when province_state = ''), with "
            "daily counts, 7-day averages and the case fatality ratio (no population per province).",
            (
                _DATE,
                _COUNTRY,
                _c("province_state", "text", "Province or state; '' for a country-level row"),
                *_COORDS,
                *_COUNTS,
                *_LOCATION_NEW,
                *_ROLLING,
                *_RATIOS,
            ),
            ("date", "country_region", "province_state"),
        ),
    )
}


def warehouse_table(name: str) -> WarehouseTable:
    """The declared table, refusing any name outside the allow-list."""
    try:
        return WAREHOUSE_TABLES[name]
    except KeyError:
        raise ValueError(f"{name!r} is not a warehouse table (expected one of {sorted(WAREHOUSE_TABLES)})") from None
