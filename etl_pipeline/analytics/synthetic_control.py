"""Synthetic control on any long-format panel (Abadie, Diamond & Hainmueller 2010 JASA; their R package Synth,
2011 JSS 42(13); 2015 AJPS for the robustness checks).

A *panel* is a DataFrame with one row per (unit, time) and an outcome column, e.g. one row per
(date, country) with cumulative confirmed cases. The treated unit's counterfactual after the
intervention is a weighted sum of donor units, the weights being fitted before it
(``time < intervention``, or the ``optimize_window`` within that).

- ``method="scm"`` without predictors: convex weights (``w >= 0``, ``sum(w) == 1``) minimising the
  squared outcome error over the window, solved exactly (:func:`simplex_least_squares`).
- ``method="scm"`` with :class:`Predictor` s: the method as published and as Synth implements it — convex
  weights matching the treated unit's (standardised) predictors, each predictor weighted by ``V``, with ``V``
  chosen so the synthetic unit tracks the outcome best over the window (:mod:`.nested_weights`).
- ``method="ols"``: the original project's approach, ``LinearRegression(fit_intercept=False)`` —
  unconstrained weights that can extrapolate; kept for comparison.

Robustness checks: :func:`placebo_test` (in space: every unit as if treated, Abadie et al. 2010),
:func:`placebo_in_time` (a fake earlier intervention) and :func:`leave_one_out` (each donor with positive
weight dropped in turn; both Abadie et al. 2015). Refits of a family run on every core when they involve the
nested optimisation, in a deterministic order.

Pure: no I/O, no plotting.
"""

from __future__ import annotations

import dataclasses
import math
import multiprocessing
import os
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.linear_model import LinearRegression

from etl_pipeline.analytics.errors import (
    DonorGapError,
    DuplicateObservationError,
    EmptyPrePeriodError,
    PanelError,
    PredictorError,
    UnknownUnitError,
    preview,
    show,
)
from etl_pipeline.analytics.nested_weights import solve_nested
from etl_pipeline.analytics.panel import Window, check_window, wide_panel
from etl_pipeline.analytics.predictors import Predictor, predictor_matrix, standardise
from etl_pipeline.analytics.simplex import simplex_least_squares

__all__ = [
    "DonorGapError",
    "DuplicateObservationError",
    "EmptyPrePeriodError",
    "Method",
    "PanelError",
    "PlaceboResult",
    "Predictor",
    "PredictorError",
    "Refits",
    "SyntheticControlResult",
    "UnknownUnitError",
    "fit_synthetic_control",
    "leave_one_out",
    "placebo_in_time",
    "placebo_test",
    "simplex_least_squares",
]

Method = Literal["scm", "ols"]


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
    #: Synth's loss V: mean squared gap over the optimisation window (squared outcome units).
    loss_v: float
    #: Synth's loss W, ``(X1 - X0 W)' V (X1 - X0 W)`` on standardised predictors; NaN without predictors.
    loss_w: float
    #: V: the weight of each predictor (indexed by :attr:`Predictor.label`), summing to 1; None without predictors.
    v_weights: pd.Series | None
    #: Per predictor (same index): ``treated``, ``synthetic`` (the weighted donors) and ``donor_mean`` (their
    #: unweighted mean), in the predictor's own units; None without predictors.
    balance: pd.DataFrame | None

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


@dataclass(frozen=True, eq=False)
class Refits:
    """A family of refits of one study, as tidy frames keyed by the column ``key`` (the placebo intervention of
    :func:`placebo_in_time`, the left-out donor of :func:`leave_one_out`), in the order the refits were asked:

    - ``fits``: one row per refit — ``key``, ``pre_rmspe``, ``post_rmspe``, ``ratio``, ``loss_v``, ``loss_w``;
    - ``weights``: one row per (refit, donor) — ``key``, the unit column, ``weight``;
    - ``paths``: one row per (refit, time) — ``key``, the time column, ``actual``, ``synthetic``, ``gap``.
    """

    key: str
    fits: pd.DataFrame
    weights: pd.DataFrame
    paths: pd.DataFrame


def _ratio(pre: float, post: float) -> float:
    if math.isnan(post) or (pre == 0 and post == 0):
        return math.nan
    return math.inf if pre == 0 else post / pre


def _ols_weights(donors: np.ndarray, target: np.ndarray) -> np.ndarray:
    return LinearRegression(fit_intercept=False).fit(donors, target).coef_


_SOLVERS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "scm": simplex_least_squares,
    "ols": _ols_weights,
}


def _rmspe(gap: np.ndarray) -> float:
    return float(np.sqrt(np.mean(gap**2))) if gap.size else math.nan


#: A pre-period RMSPE below this share of the treated unit's pre-period RMS level is rounding, not misfit.
EXACT_FIT_TOLERANCE = 1e-12


def _pre_rmspe(gap: np.ndarray, actual: np.ndarray) -> float:
    """The pre-period RMSPE, 0 for a fit exact up to floating-point rounding (:data:`EXACT_FIT_TOLERANCE`): the
    solver's weights are exact only to rounding, which differs between CPUs, and an exact fit must rank as one."""
    rmspe = _rmspe(gap)
    return 0.0 if rmspe <= EXACT_FIT_TOLERANCE * _rmspe(actual) else rmspe


@dataclass(frozen=True, eq=False)
class _Study:
    """One validated specification: the outcomes (time x unit, treated first) and the unscaled predictors
    (predictor x unit, same units; None for an outcome-only fit) that every fit of the study draws on."""

    outcomes: pd.DataFrame
    predictors: pd.DataFrame | None
    treated: Hashable
    intervention: Any
    window: Window | None
    method: Method

    def refit(self, *, treated: Hashable | None = None, without: Hashable | None = None) -> _Study:
        """The same study with another unit of the pool treated, or one donor dropped."""
        units = [u for u in self.outcomes.columns if u != without]
        if treated is not None:
            units = [treated, *(u for u in units if u != treated)]
        predictors = None if self.predictors is None else self.predictors[units]
        return dataclasses.replace(
            self,
            outcomes=self.outcomes[units],
            predictors=predictors,
            treated=self.treated if treated is None else treated,
        )


def _check_method(method: str, predictors: Sequence[Predictor] | None) -> None:
    if method not in _SOLVERS:
        raise ValueError(f"unknown method {method!r}; expected one of {sorted(_SOLVERS)}")
    if predictors and method != "scm":
        raise ValueError(f"predictors need method='scm' (the nested V/W optimisation); got method={method!r}")


def _window_mask(times: pd.Index, study: _Study) -> np.ndarray:
    """The periods loss V is computed on: the window if given, else every period before the intervention."""
    pre = np.asarray(times < study.intervention)
    if study.window is None:
        return pre
    start, end = study.window
    return pre & np.asarray((times >= start) & (times <= end))


def _prepare(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    donors: Sequence[Hashable] | None,
    method: Method,
    predictors: Sequence[Predictor] | None,
    optimize_window: Window | None,
) -> _Study:
    _check_method(method, predictors)
    wide = wide_panel(
        panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention, donors=donors
    )
    if optimize_window is not None:
        check_window(wide, optimize_window, intervention=intervention, treated=treated, time=time)
    matrix = None
    if predictors:
        late = [p.label for p in predictors if not p.end < intervention]
        if late:
            raise PredictorError(
                f"predictor(s) measured at or after the intervention {show(intervention)}: {preview(late)}; "
                f"predictors must describe the units before it"
            )
        matrix = predictor_matrix(panel, unit=unit, time=time, units=list(wide.columns), predictors=predictors)
    return _Study(
        outcomes=wide, predictors=matrix, treated=treated, intervention=intervention, window=optimize_window,
        method=method,
    )  # fmt: skip


def _fit(study: _Study) -> SyntheticControlResult:
    wide, treated = study.outcomes, study.treated
    donors = [u for u in wide.columns if u != treated]
    pre = np.asarray(wide.index < study.intervention)
    fitted = _window_mask(wide.index, study)
    x = wide[donors].to_numpy()
    y = wide[treated].to_numpy()
    v_weights = balance = None
    loss_w = math.nan
    if study.predictors is None:
        w = _SOLVERS[study.method](x[fitted], y[fitted])
    else:
        raw = study.predictors
        scaled = standardise(raw.to_numpy(), raw.index)
        solution = solve_nested(scaled[:, 1:], scaled[:, 0], x[fitted], y[fitted])
        w, loss_w = solution.w, solution.loss_w
        v_weights = pd.Series(solution.v, index=raw.index, name="v")
        balance = pd.DataFrame(
            {
                "treated": raw[treated],
                "synthetic": raw[donors].to_numpy() @ w,
                "donor_mean": raw[donors].mean(axis=1),
            }
        )
    synthetic = x @ w
    gap = y - synthetic
    return SyntheticControlResult(
        treated=treated,
        intervention=study.intervention,
        method=study.method,
        weights=pd.Series(w, index=pd.Index(donors, name=wide.columns.name), name="weight"),
        actual=wide[treated].rename("actual"),
        synthetic=pd.Series(synthetic, index=wide.index, name="synthetic"),
        gap=pd.Series(gap, index=wide.index, name="gap"),
        pre_rmspe=_pre_rmspe(gap[pre], y[pre]),
        post_rmspe=_rmspe(gap[~pre]),
        loss_v=float(np.mean(gap[fitted] ** 2)),
        loss_w=loss_w,
        v_weights=v_weights,
        balance=balance,
    )


def _fit_all(studies: list[_Study], workers: int | None) -> list[SyntheticControlResult]:
    """Fit every study, in order. Nested optimisations (a fraction of a second each) run in up to ``workers``
    processes (default: one per core); outcome-only fits (milliseconds) are not worth a process."""
    workers = min(len(studies), workers or os.cpu_count() or 1)
    if workers <= 1 or all(s.predictors is None for s in studies):
        return [_fit(s) for s in studies]
    # forkserver, not fork: the dashboard calls this from a threaded server, and forking a threaded process can
    # deadlock the child; preloading this module keeps each worker's start in milliseconds.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        return list(pool.map(_fit, studies))


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
    predictors: Sequence[Predictor] | None = None,
    optimize_window: Window | None = None,
) -> SyntheticControlResult:
    """Fit a synthetic control for ``treated`` on the periods before ``intervention``.

    ``donors=None`` uses every other unit of the panel, sorted. ``intervention`` and the bounds of
    ``optimize_window`` and of each predictor must compare with the time column's values (a date string
    against ISO date strings, a Timestamp against datetimes, ...).

    Without ``predictors`` (None or empty) the weights minimise the squared outcome error over
    ``optimize_window`` (inclusive (start, end); default: every period before the intervention). With
    ``predictors`` (columns of ``panel`` summarised over windows ending before the intervention, see
    :class:`Predictor`), the weights are Synth's nested solution: ``W`` matches the predictors, standardised by
    their standard deviation over the treated unit and donors, weighted by ``V``, exactly; ``V`` (k weights
    >= 0 summing to 1) minimises loss V, the mean squared outcome gap over ``optimize_window`` (Abadie,
    Diamond & Hainmueller 2010 JASA; Synth, 2011 JSS; see :mod:`.nested_weights` for the search).
    The result then carries ``v_weights``, ``loss_w`` and the predictor ``balance``; ``loss_v`` is set either way.

    Raises a :class:`PanelError` subclass naming the offending units/times/columns/predictors for an unknown
    unit, an empty pre-period, a donor lacking some of the treated unit's times, duplicate (unit, time) rows,
    an optimisation window or a predictor reaching the intervention, a unit without values in a predictor's
    window, or a predictor equal for every unit; ValueError for an unknown method or predictors with "ols".
    """
    return _fit(
        _prepare(
            panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention,
            donors=donors, method=method, predictors=predictors, optimize_window=optimize_window,
        )  # fmt: skip
    )


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
    predictors: Sequence[Predictor] | None = None,
    optimize_window: Window | None = None,
    workers: int | None = None,
) -> PlaceboResult:
    """In-space placebo test (Abadie, Diamond & Hainmueller 2010 JASA): refit with each unit of the pool
    (treated + donors) as if treated, the rest of the pool as its donors, on the treated unit's times and with
    the same predictors and window; rank units by post/pre RMSPE ratio.

    ``p_value`` = rank of the treated unit's ratio (1 = largest, ties counted against it) / number of
    units; NaN if the treated unit's ratio is NaN. With predictors the refits run in up to ``workers``
    processes (default: one per core); the result does not depend on how many. Raises as
    :func:`fit_synthetic_control`.
    """
    study = _prepare(
        panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention, donors=donors,
        method=method, predictors=predictors, optimize_window=optimize_window,
    )  # fmt: skip
    pool = study.outcomes.columns
    fits = _fit_all([study.refit(treated=u) for u in pool], workers)
    units = pd.DataFrame(
        {
            "pre_rmspe": [f.pre_rmspe for f in fits],
            "post_rmspe": [f.post_rmspe for f in fits],
            "ratio": [f.ratio for f in fits],
        },
        index=pool.copy(),
    )
    units["rank"] = units["ratio"].rank(ascending=False, method="max")
    gaps = pd.DataFrame({f.treated: f.gap for f in fits}, index=study.outcomes.index)
    gaps.columns.name = pool.name
    return PlaceboResult(
        treated=treated,
        units=units,
        gaps=gaps,
        p_value=float(units.at[treated, "rank"] / len(units)),
    )


def _refits(key: str, keys: Sequence[Any], fits: Sequence[SyntheticControlResult], unit: str, time: str) -> Refits:
    """The refits as tidy frames (see :class:`Refits`); frames with their columns but no rows for no refit."""
    summary = pd.DataFrame(
        {
            key: list(keys),
            "pre_rmspe": [f.pre_rmspe for f in fits],
            "post_rmspe": [f.post_rmspe for f in fits],
            "ratio": [f.ratio for f in fits],
            "loss_v": [f.loss_v for f in fits],
            "loss_w": [f.loss_w for f in fits],
        }
    )
    pairs = list(zip(keys, fits, strict=True))
    weights = pd.DataFrame(
        {
            key: [k for k, f in pairs for _ in f.weights.index],
            unit: [d for _, f in pairs for d in f.weights.index],
            "weight": np.concatenate([f.weights.to_numpy() for _, f in pairs] or [np.empty(0)]),
        }
    )
    paths = pd.DataFrame(
        {
            key: [k for k, f in pairs for _ in f.actual.index],
            time: [t for _, f in pairs for t in f.actual.index],
            **{
                column: np.concatenate([getattr(f, column).to_numpy() for _, f in pairs] or [np.empty(0)])
                for column in ("actual", "synthetic", "gap")
            },
        }
    )
    return Refits(key=key, fits=summary, weights=weights, paths=paths)


def _moved_back(
    predictors: Sequence[Predictor] | None, window: Window | None, intervention: Any, placebo: Any
) -> tuple[list[Predictor], Window | None]:
    """The predictors and the optimisation window with every bound moved by ``placebo - intervention``."""

    def move(bound: Any, what: str) -> Any:
        try:
            return bound + (placebo - intervention)
        except TypeError:
            raise PanelError(
                f"cannot move {what} back to the placebo intervention {show(placebo)}: give its dates in the time "
                f"column's type (Timestamps for datetimes, numbers for numbered periods)"
            ) from None

    moved = [
        dataclasses.replace(p, start=move(p.start, f"predictor {p.label!r}"), end=move(p.end, f"predictor {p.label!r}"))
        for p in predictors or ()
    ]
    return moved, None if window is None else (move(window[0], "optimize_window"), move(window[1], "optimize_window"))


def placebo_in_time(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    placebo_interventions: Sequence[Any],
    donors: Sequence[Hashable] | None = None,
    method: Method = "scm",
    predictors: Sequence[Predictor] | None = None,
    optimize_window: Window | None = None,
    workers: int | None = None,
) -> Refits:
    """In-time placebo (Abadie, Diamond & Hainmueller 2015 AJPS, robustness tests): the study refitted as if the
    intervention had happened at each earlier time of ``placebo_interventions``, on the data before the real
    intervention only. A credible effect has no counterpart there: the placebo gap after the fake date stays
    about as small as before it.

    Each placebo moves the whole specification back by ``placebo - intervention``: every predictor window and
    ``optimize_window`` (default: every period before the placebo date) keep their distance to the
    intervention, as when the study is redone at the earlier date; their bounds must then support that
    arithmetic (e.g. Timestamps with a datetime time column).

    Returns tidy :class:`Refits` keyed by ``placebo_intervention``; each fit's post-period runs from the placebo
    date to the real intervention. Raises :class:`PanelError` naming a placebo date not before the intervention
    (or listed twice) or a moved predictor without data, and as :func:`fit_synthetic_control`.
    """
    late = [p for p in placebo_interventions if not p < intervention]
    if late:
        raise PanelError(f"placebo interventions not before the intervention {show(intervention)}: {preview(late)}")
    repeated = pd.Index(placebo_interventions)
    if repeated.duplicated().any():
        raise PanelError(f"placebo interventions listed more than once: {preview(repeated[repeated.duplicated()])}")
    before = panel[panel[time] < intervention] if time in panel.columns else panel
    studies = []
    for placebo in placebo_interventions:
        moved, window = _moved_back(predictors, optimize_window, intervention, placebo)
        try:
            studies.append(
                _prepare(
                    before, unit=unit, time=time, outcome=outcome, treated=treated, intervention=placebo,
                    donors=donors, method=method, predictors=moved, optimize_window=window,
                )  # fmt: skip
            )
        except PanelError as error:
            raise type(error)(f"placebo intervention {show(placebo)}: {error}") from None
    return _refits("placebo_intervention", placebo_interventions, _fit_all(studies, workers), unit, time)


def leave_one_out(
    panel: pd.DataFrame,
    *,
    unit: str,
    time: str,
    outcome: str,
    treated: Hashable,
    intervention: Any,
    donors: Sequence[Hashable] | None = None,
    method: Method = "scm",
    predictors: Sequence[Predictor] | None = None,
    optimize_window: Window | None = None,
    workers: int | None = None,
) -> Refits:
    """Leave-one-out robustness check (Abadie, Diamond & Hainmueller 2015 AJPS, robustness tests): the study
    refitted once without each donor that has a positive weight in the full fit, in the full fit's donor order. If
    the estimated effect hinges on one donor, some refit shows it.

    Returns tidy :class:`Refits` keyed by ``left_out`` (empty frames when no donor has a positive weight).
    Refits with predictors run in up to ``workers`` processes. Raises as :func:`fit_synthetic_control`.
    """
    study = _prepare(
        panel, unit=unit, time=time, outcome=outcome, treated=treated, intervention=intervention, donors=donors,
        method=method, predictors=predictors, optimize_window=optimize_window,
    )  # fmt: skip
    if study.outcomes.shape[1] < 3:
        raise PanelError(f"leave-one-out needs at least two donors; {treated!r} has {study.outcomes.shape[1] - 1}")
    full = _fit(study)
    dropped = full.weights.index[full.weights > 0].tolist()
    fits = _fit_all([study.refit(without=d) for d in dropped], workers)
    return _refits("left_out", dropped, fits, unit, time)
