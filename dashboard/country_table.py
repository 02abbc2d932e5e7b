"""The country table: each country's values on one day, its 7-day change and the doubling time of its cases.

Pure pandas over :meth:`dashboard.data.Warehouse.country_table`; the rates themselves come from the warehouse.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: (column, header, Dash DataTable format specifier or None) in display order.
COLUMNS = (
    ("country_region", "Country", None),
    ("continent", "Continent", None),
    ("population", "Population", ",d"),
    ("confirmed", "Confirmed", ",d"),
    ("deaths", "Deaths", ",d"),
    ("confirmed_per_100k", "Confirmed per 100k", ",.1f"),
    ("deaths_per_million", "Deaths per million", ",.1f"),
    ("new_cases_7d_avg", "New cases/day (7-day avg)", ",.1f"),
    ("confirmed_7_day_change", "Confirmed, 7-day change", ",d"),
    ("confirmed_7_day_change_pct", "7-day change %", ",.1f"),
    ("doubling_time_days", "Doubling time (days)", ",.1f"),
    ("case_fatality_ratio", "Case fatality ratio", ".2%"),
)


def doubling_time_days(now: pd.Series, week_before: pd.Series) -> pd.Series:
    """Days for confirmed cases to double at the growth of the last 7 days, ``7 ln 2 / ln(now / week_before)``
    (exponential growth at a constant rate, as in Our World in Data's doubling-time series,
    https://ourworldindata.org/covid-cases); NaN when it is not defined: no cases a week before, or no growth."""
    now, before = now.astype(float), week_before.astype(float)
    defined = (before > 0) & (now > before)
    ratio = (now / before).where(defined)
    return (7 * np.log(2) / np.log(ratio)).where(defined)


def table_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """:data:`COLUMNS` for every country of ``frame`` (rows of ``Warehouse.country_table``): the 7-day change of
    confirmed cases (absolute; percent of the count a week before, NaN when that was 0) and the doubling time."""
    before = frame["confirmed_7_days_before"].astype(float)
    change = frame["confirmed"] - before
    out = frame.assign(
        confirmed_7_day_change=change,
        confirmed_7_day_change_pct=(100 * change / before).where(before > 0),
        doubling_time_days=doubling_time_days(frame["confirmed"], before),
    )
    return out[[c for c, _, _ in COLUMNS]]
