"""A long-format panel validated and reshaped for a synthetic-control fit: the donor pool, the outcome matrix
and the optimisation window, with errors naming the offending units, times and columns. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import pandas as pd

from etl_pipeline.analytics.errors import (
    SHOWN,
    DonorGapError,
    DuplicateObservationError,
    EmptyPrePeriodError,
    PanelError,
    UnknownUnitError,
    preview,
    show,
)

#: An inclusive (start, end) pair of times, compared with the time column.
Window = tuple[Any, Any]


def resolve_donors(units: pd.Index, treated: Hashable, donors: Sequence[Hashable] | None) -> list[Hashable]:
    """The donor pool: ``donors`` as given, checked against the panel's ``units``, or every other unit, sorted.
    Raises naming an unknown treated unit or donors, donors listed twice, or the treated unit among them."""
    if treated not in units:
        raise UnknownUnitError(f"treated unit {treated!r} is not in the panel")
    if donors is None:
        pool = sorted(u for u in units if u != treated)
    else:
        pool = list(donors)
        if treated in pool:
            raise PanelError(f"treated unit {treated!r} is also listed as a donor")
        names = pd.Index(pool)
        repeated = names[names.duplicated()].unique().tolist()
        if repeated:
            raise PanelError(f"donors listed more than once: {preview(repeated)}")
        unknown = [d for d in pool if d not in units]
        if unknown:
            raise UnknownUnitError(f"donors not in the panel: {preview(unknown)}")
    if not pool:
        raise PanelError(f"no donor units besides the treated unit {treated!r}")
    return pool


def wide_panel(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    donors: Sequence[Hashable] | None,
) -> pd.DataFrame:
    """Validate the panel and return it as a time x unit outcome matrix: treated unit first, then donors,
    on the treated unit's times (sorted); donors' other times are ignored."""
    missing = [c for c in (unit, time, outcome) if c not in panel.columns]
    if missing:
        raise PanelError(f"panel has no column(s) {preview(missing)}; it has {list(panel.columns)}")
    pool = [treated, *resolve_donors(pd.Index(panel[unit].unique()), treated, donors)]
    rows = panel.loc[panel[unit].isin(pool), [unit, time, outcome]]

    duplicated = rows.duplicated([unit, time], keep="first")
    if duplicated.any():
        pairs = list(rows.loc[duplicated, [unit, time]].drop_duplicates().itertuples(index=False, name=None))
        raise DuplicateObservationError(f"({unit}, {time}) pairs occurring more than once: {preview(pairs)}")

    own = rows[rows[unit] == treated]
    blank = own.loc[own[outcome].isna(), time].tolist()
    if blank:
        raise PanelError(f"treated unit {treated!r} has no {outcome!r} at {time} {preview(blank)}")
    times = pd.Index(own[time]).sort_values()
    if not (times < intervention).any():
        first = show(times[0]) if len(times) else "none"
        raise EmptyPrePeriodError(
            f"treated unit {treated!r} has no {time} before the intervention {show(intervention)} "
            f"(its first {time}: {first})"
        )

    wide = rows.pivot(index=time, columns=unit, values=outcome).reindex(index=times, columns=pool)
    gaps = {d: wide.index[wide[d].isna()].tolist() for d in pool[1:] if wide[d].isna().any()}
    if gaps:
        detail = "; ".join(f"{d!r} at {preview(t)}" for d, t in list(gaps.items())[:SHOWN])
        raise DonorGapError(
            f"{len(gaps)} donor(s) lack {outcome!r} at {time}s the treated unit {treated!r} has: {detail}"
        )
    return wide.astype(float)


def check_window(wide: pd.DataFrame, window: Window, *, intervention: Any, treated: Hashable, time: str) -> None:
    """Raise unless ``window`` ends before the intervention and holds some of the treated unit's times (the
    index of :func:`wide_panel`'s matrix)."""
    start, end = window
    if not end < intervention:
        raise PanelError(
            f"optimize_window {show(start)}..{show(end)} must end before the intervention {show(intervention)}"
        )
    if not ((wide.index >= start) & (wide.index <= end)).any():
        raise EmptyPrePeriodError(
            f"optimize_window {show(start)}..{show(end)} holds no {time} of the treated unit {treated!r}"
        )
