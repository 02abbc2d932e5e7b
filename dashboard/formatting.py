"""Numbers and dates as the pages print them."""

from __future__ import annotations

import math

import pandas as pd


def format_value(value: float, unit: str = "") -> str:
    """A number for people: thousands separators, 2 decimals below 100, 'n/a' for NaN, '∞' for infinity."""
    if math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "∞"
    text = f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    return f"{text} {unit}".rstrip()


def long_date(day: pd.Timestamp) -> str:
    """'1 April 2020'."""
    return f"{day.day} {day:%B %Y}"


def date_range(first: pd.Timestamp, last: pd.Timestamp) -> str:
    """'22 Jan – 27 Jul 2020'; the year of the first day only when it differs ('30 Dec 2020 – 2 Jan 2021')."""
    if first.year != last.year:
        return f"{first.day} {first:%b %Y} – {last.day} {last:%b %Y}"
    return f"{first.day} {first:%b} – {last.day} {last:%b %Y}"
