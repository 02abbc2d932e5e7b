"""Deterministic datasets of other sizes with the same schema and the same invariants as the real one.

:func:`scale_dataset` enlarges the four files by ``factor``, in locations and in days:

- days: the 188-day series is repeated ``epochs`` times, each repetition dated after the previous one and
  continuing its cumulative counts (``count + epoch * last count``), so every daily change is the original one;
- locations: each location becomes ``locations`` locations of the same country (the first keeps its name, the
  others are numbered provinces), its counts split between them so that they add up exactly.

Per (date, country) the positions still sum to the time series, ``covid19_country_wise`` is the time series
on its last date (ratios unchanged, last-week figures recomputed), and every country is still a JHU country
of the reviewed reference. ``factor`` = ``locations * epochs`` with both as close to its square root as the
divisors allow: 10x is 2 x 5, 100x is 10 x 10 (4.9 million location-days).

:func:`shrink_dataset` cuts the other way (every n-th country, the first days), for quick runs.
Files are written chunk by chunk: memory stays that of the original files whatever the factor.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from etl_pipeline.core.source_schema import SOURCE_TABLES

COUNTS = ["Confirmed", "Deaths", "Recovered", "Active"]
_FILES = {name: schema.file_name for name, schema in SOURCE_TABLES.items()}


@dataclass(frozen=True)
class Scale:
    factor: int
    locations: int  # locations made of each original one
    epochs: int  # repetitions of the original days

    @classmethod
    def of(cls, factor: int) -> Scale:
        locations = max(d for d in range(1, math.isqrt(factor) + 1) if factor % d == 0)
        return cls(factor, locations, factor // locations)


def _read(data_dir: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(data_dir / _FILES[table], dtype=str, keep_default_na=False)


def _shifted(frame: pd.DataFrame, epoch: int, days: int, last: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """``frame`` moved ``epoch * days`` days later, its cumulative counts continued from ``epoch`` full series."""
    out = frame.copy()
    out["Date"] = (pd.to_datetime(frame["Date"]) + pd.Timedelta(days=epoch * days)).dt.strftime("%Y-%m-%d")
    if epoch:
        final = frame[by].merge(last, on=by, how="left")
        for column in COUNTS:
            out[column] = frame[column].astype("int64") + epoch * final[column].to_numpy("int64")
    return out


def _last_day(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    final = frame[frame["Date"] == frame["Date"].max()]
    return final[by + COUNTS].assign(**{c: final[c].astype("int64") for c in COUNTS})


def _split(frame: pd.DataFrame, part: int, parts: int) -> pd.DataFrame:
    """Part ``part`` of ``parts`` of every location: its share of the counts (the shares add up exactly)."""
    out = frame.copy()
    for column in COUNTS:
        values = frame[column].astype("int64")
        quotient, remainder = values // parts, values % parts
        out[column] = quotient + (remainder > part).astype("int64")
    if part:
        province = frame["Province/State"]
        out["Province/State"] = (province + f" ({part + 1})").where(province != "", f"Zone {part + 1}")
    return out


def _write(frame: pd.DataFrame, path: Path, first: bool) -> None:
    frame.to_csv(path, mode="w" if first else "a", header=first, index=False)


def scale_dataset(source: Path, target: Path, factor: int) -> Scale:
    """Write the dataset ``factor`` times larger than ``source`` into ``target``."""
    scale = Scale.of(factor)
    target.mkdir(parents=True, exist_ok=True)
    series, positions = _read(source, "covid19_time_series"), _read(source, "covid19_cases_position")
    days = series["Date"].nunique()
    where = ["Country/Region", "Province/State"]
    series_last, positions_last = _last_day(series, ["Country/Region"]), _last_day(positions, where)
    for epoch in range(scale.epochs):
        _write(_shifted(series, epoch, days, series_last, ["Country/Region"]),
               target / _FILES["covid19_time_series"], epoch == 0)
        shifted = _shifted(positions, epoch, days, positions_last, where)
        for part in range(scale.locations):
            _write(_split(shifted, part, scale.locations), target / _FILES["covid19_cases_position"],
                   epoch == 0 and part == 0)
    country_wise = _read(source, "covid19_country_wise")
    _write(_continued_country_wise(country_wise, series_last, scale.epochs), target / _FILES["covid19_country_wise"],
           True)
    shutil.copyfile(source / _FILES["covid19_worldometer"], target / _FILES["covid19_worldometer"])
    return scale


def _continued_country_wise(country_wise: pd.DataFrame, last: pd.DataFrame, epochs: int) -> pd.DataFrame:
    """Each country's counts on the last date of ``epochs`` repetitions; last-week figures follow."""
    out = country_wise.copy()
    final = country_wise[["Country/Region"]].merge(last, on="Country/Region", how="left")
    for column in COUNTS:
        out[column] = epochs * final[column].to_numpy("int64")
    last_week = country_wise["Confirmed last week"].astype("int64") + (epochs - 1) * final["Confirmed"].to_numpy("int64")
    change = country_wise["1 week change"].astype("int64")
    out["Confirmed last week"] = last_week
    out["1 week % increase"] = (change / last_week.where(last_week != 0) * 100).round(2).fillna(0.0)
    return out


def shrink_dataset(source: Path, target: Path, every: int = 10, days: int = 30) -> None:
    """Every ``every``-th country and the first ``days`` days; country_wise holds each kept country's counts
    on the last kept day (as a snapshot published that day would), worldometer is kept whole."""
    target.mkdir(parents=True, exist_ok=True)
    country_wise = _read(source, "covid19_country_wise")
    kept = set(country_wise["Country/Region"].iloc[::every])
    series = _read(source, "covid19_time_series")
    last_day = sorted(series["Date"].unique())[days - 1]

    def cut(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["Country/Region"].isin(kept) & (frame["Date"] <= last_day)]

    series = cut(series)
    _write(series, target / _FILES["covid19_time_series"], True)
    _write(cut(_read(source, "covid19_cases_position")), target / _FILES["covid19_cases_position"], True)
    on_last = series[series["Date"] == last_day].set_index("Country/Region")[COUNTS]
    country_wise = country_wise[country_wise["Country/Region"].isin(kept)].copy()
    for column in COUNTS:
        country_wise[column] = country_wise["Country/Region"].map(on_last[column])
    _write(country_wise, target / _FILES["covid19_country_wise"], True)
    shutil.copyfile(source / _FILES["covid19_worldometer"], target / _FILES["covid19_worldometer"])
