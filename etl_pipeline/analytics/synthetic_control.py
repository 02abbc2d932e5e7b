"""Synthetic control (Abadie, Diamond & Hainmueller 2010) on any long-format panel.

A *panel* is a DataFrame with one row per (unit, time) and an outcome column, e.g. one row per
(date, country) with cumulative confirmed cases. The treated unit's counterfactual after the
intervention is a weighted sum of donor units, the weights being fitted on the pre-period
(``time < intervention``).

- ``method="scm"``: convex weights (``w >= 0``, ``sum(w) == 1``) minimising the pre-period squared
  error, solved exactly (see :func:`simplex_least_squares`).
- ``method="ols"``: the original project's approach, ``LinearRegression(fit_intercept=False)`` —
  unconstrained weights that can extrapolate; kept for comparison.

Pure: no I/O, no plotting.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import nnls
from sklearn.linear_model import LinearRegression

Method = Literal["scm", "ols"]

#: How many offending values an error message lists before "...".
_SHOWN = 5


class PanelError(ValueError):
    """The panel cannot be used for a synthetic-control fit."""


class UnknownUnitError(PanelError):
    """The treated unit or a requested donor is not in the panel."""


class EmptyPrePeriodError(PanelError):
    """The treated unit has no observation before the intervention."""


class DonorGapError(PanelError):
    """A donor lacks an outcome at times the treated unit has."""


class DuplicateObservationError(PanelError):
    """A (unit, time) pair occurs more than once."""


def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _preview(values: Sequence[Any]) -> str:
    shown = ", ".join(_show(v) for v in values[:_SHOWN])
    return shown + (f", ... ({len(values)} in all)" if len(values) > _SHOWN else "")


@dataclass(frozen=True, eq=False)
class SyntheticControlResult:
    """One fit: donor weights and the actual/synthetic/gap series of the treated unit, indexed by time."""

    treated: Hashable
    intervention: Any
    method: Method
    weights: pd.Series
    actual: pd.Series
    synthetic: pd.Series
    gap: pd.Series
    pre_rmspe: float
    #: NaN when the panel has no time at or after the intervention.
    post_rmspe: float

    @property
    def ratio(self) -> float:
        """Post/pre RMSPE ratio: ``inf`` for a perfect pre-period fit with a post-period gap, NaN when
        both are zero or there is no post-period (NaN never counts as extreme in a placebo test)."""
        return _ratio(self.pre_rmspe, self.post_rmspe)


@dataclass(frozen=True, eq=False)
class PlaceboResult:
    """In-space placebo test: every unit of the pool refitted as if it were treated.

    ``units`` is indexed by unit with columns ``pre_rmspe``, ``post_rmspe``, ``ratio`` and ``rank``
    (1 = largest ratio; ties take the worse rank, so ``p_value`` is the share of units whose ratio is at
    least the treated unit's). ``gaps`` holds each unit's actual - synthetic series (time x unit).
    """

    treated: Hashable
    units: pd.DataFrame
    gaps: pd.DataFrame
    p_value: float


def _ratio(pre: float, post: float) -> float:
    if math.isnan(post) or (pre == 0 and post == 0):
        return math.nan
    return math.inf if pre == 0 else post / pre


def simplex_least_squares(donors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights ``w >= 0``, ``sum(w) == 1`` minimising ``||donors @ w - target||``.

    On the simplex ``donors @ w - target == A @ w`` with ``A = donors - target[:, None]``, so this is the
    point of ``conv(columns of A)`` nearest the origin. That is *exactly* one non-negative least squares
    problem: for ``u`` minimising ``||A u||^2 + (sum(u) - 1)^2`` over ``u >= 0``, the NNLS optimality
    conditions ``A'A u >= 1 - sum(u)`` (equality where ``u > 0``) are, after dividing by ``sum(u) > 0``,
    the KKT conditions of the simplex problem for ``w = u / sum(u)``. Lawson-Hanson's active-set NNLS
    (``scipy.optimize.nnls``) solves it to rounding error, including rank-deficient cases (more donors
    than periods, collinear donors) where it returns one optimal vertex-like solution. No penalty weight is
    involved. ``A`` is unchanged by a common offset of the outcome and is divided by its largest column
    norm, which keeps the solve accurate whatever the outcome's scale (rates near 1e-8 or cumulative
    counts in the millions); unnormalised, tiny scales miss the KKT conditions by ~1e-10.
    """
    a = np.asarray(donors, dtype=float) - np.asarray(target, dtype=float)[:, None]
    scale = np.linalg.norm(a, axis=0).max(initial=0.0)
    if scale > 0:
        a = a / scale
    system = np.vstack([a, np.ones(a.shape[1])])
    rhs = np.zeros(system.shape[0])
    rhs[-1] = 1.0
    u, _ = nnls(system, rhs, maxiter=50 * a.shape[1])
    return u / u.sum()


def _ols_weights(donors: np.ndarray, target: np.ndarray) -> np.ndarray:
    return LinearRegression(fit_intercept=False).fit(donors, target).coef_


_SOLVERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "scm": simplex_least_squares,
    "ols": _ols_weights,
}


def _rmspe(gap: np.ndarray) -> float:
    return float(np.sqrt(np.mean(gap**2))) if gap.size else math.nan


def _resolve_donors(units: pd.Index, treated: Hashable, donors: Sequence[Hashable] | None) -> list[Hashable]:
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
            raise PanelError(f"donors listed more than once: {_preview(repeated)}")
        unknown = [d for d in pool if d not in units]
        if unknown:
            raise UnknownUnitError(f"donors not in the panel: {_preview(unknown)}")
    if not pool:
        raise PanelError(f"no donor units besides the treated unit {treated!r}")
    return pool


def _wide_panel(
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
        raise PanelError(f"panel has no column(s) {_preview(missing)}; it has {list(panel.columns)}")
    pool = [treated, *_resolve_donors(pd.Index(panel[unit].unique()), treated, donors)]
    rows = panel.loc[panel[unit].isin(pool), [unit, time, outcome]]

    duplicated = rows.duplicated([unit, time], keep="first")
    if duplicated.any():
        pairs = list(rows.loc[duplicated, [unit, time]].drop_duplicates().itertuples(index=False, name=None))
        raise DuplicateObservationError(f"({unit}, {time}) pairs occurring more than once: {_preview(pairs)}")

    own = rows[rows[unit] == treated]
    blank = own.loc[own[outcome].isna(), time].tolist()
    if blank:
        raise PanelError(f"treated unit {treated!r} has no {outcome!r} at {time} {_preview(blank)}")
    times = pd.Index(own[time]).sort_values()
    if not (times < intervention).any():
        first = _show(times[0]) if len(times) else "none"
        raise EmptyPrePeriodError(
            f"treated unit {treated!r} has no {time} before the intervention {_show(intervention)} "
            f"(its first {time}: {first})"
        )

    wide = rows.pivot(index=time, columns=unit, values=outcome).reindex(index=times, columns=pool)
    gaps = {d: wide.index[wide[d].isna()].tolist() for d in pool[1:] if wide[d].isna().any()}
    if gaps:
        detail = "; ".join(f"{d!r} at {_preview(t)}" for d, t in list(gaps.items())[:_SHOWN])
        raise DonorGapError(
            f"{len(gaps)} donor(s) lack {outcome!r} at {time}s the treated unit {treated!r} has: {detail}"
        )
    return wide.astype(float)


def _fit_wide(wide: pd.DataFrame, treated: Hashable, intervention: Any, method: Method) -> SyntheticControlResult:
    donors = [u for u in wide.columns if u != treated]
    pre = np.asarray(wide.index < intervention)
    x = wide[donors].to_numpy()
    y = wide[treated].to_numpy()
    w = _SOLVERS[method](x[pre], y[pre])
    synthetic = x @ w
    gap = y - synthetic
    return SyntheticControlResult(
        treated=treated,
        intervention=intervention,
        method=method,
        weights=pd.Series(w, index=pd.Index(donors, name=wide.columns.name), name="weight"),
        actual=wide[treated].rename("actual"),
        synthetic=pd.Series(synthetic, index=wide.index, name="synthetic"),
        gap=pd.Series(gap, index=wide.index, name="gap"),
        pre_rmspe=_rmspe(gap[pre]),
        post_rmspe=_rmspe(gap[~pre]),
    )


def _check_method(method: str) -> None:
    if method not in _SOLVERS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(_SOLVERS)}")


def fit_synthetic_control(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    donors: Sequence[Hashable] | None = None,
    method: Method = "scm",
) -> SyntheticControlResult:
    """Fit a synthetic control for ``treated`` on the periods ``time < intervention``.

    ``donors=None`` uses every other unit of the panel, sorted. ``intervention`` must compare with the time
    column's values (a date string against ISO date strings, a Timestamp against datetimes, ...).
    Raises a :class:`PanelError` subclass naming the offending units/times for an unknown unit, an empty
    pre-period, a donor lacking some of the treated unit's times, or duplicate (unit, time) rows.
    """
    _check_method(method)
    wide = _wide_panel(
        panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention, donors=donors
    )
    return _fit_wide(wide, treated, intervention, method)


def placebo_test(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    donors: Sequence[Hashable] | None = None,
    method: Method = "scm",
) -> PlaceboResult:
    """Refit with each unit of the pool (treated + donors) as if treated, the rest of the pool as its
    donors, on the treated unit's times; rank units by post/pre RMSPE ratio (Abadie et al. 2010).

    ``p_value`` = rank of the treated unit's ratio (1 = largest, ties counted against it) / number of
    units; NaN if the treated unit's ratio is NaN.
    """
    _check_method(method)
    wide = _wide_panel(
        panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention, donors=donors
    )
    fits = [_fit_wide(wide, u, intervention, method) for u in wide.columns]
    units = pd.DataFrame(
        {
            "pre_rmspe": [f.pre_rmspe for f in fits],
            "post_rmspe": [f.post_rmspe for f in fits],
            "ratio": [f.ratio for f in fits],
        },
        index=wide.columns.copy(),
    )
    units["rank"] = units["ratio"].rank(ascending=False, method="max")
    gaps = pd.DataFrame({f.treated: f.gap for f in fits}, index=wide.index)
    gaps.columns.name = wide.columns.name
    return PlaceboResult(
        treated=treated,
        units=units,
        gaps=gaps,
        p_value=float(units.at[treated, "rank"] / len(units)),
    )
