"""The nested optimisation of a synthetic control with predictors (Abadie & Gardeazabal 2003; Abadie, Diamond &
Hainmueller 2010 JASA; R's Synth, Abadie, Diamond & Hainmueller 2011, JSS 42(13)).

For predictor weights ``V`` (non-negative, summing to 1) the donor weights ``W(V)`` minimise Synth's
*loss W* ``(X1 - X0 W)' diag(V) (X1 - X0 W)`` over the simplex (the *inner* problem, convex); ``V`` minimises
Synth's *loss V*, the mean squared prediction error of the outcome ``Z1 - Z0 W(V)`` over the optimisation window
(the *outer* problem, not convex). ``X0``/``X1`` are the standardised predictors of the donors/treated unit.

Solved here as follows; every candidate's ``W`` solves its inner problem exactly (:mod:`.simplex`), so every
reported loss is that of a valid (V, W) pair, never an artefact of where an approximate QP solver stopped:

1. *Certificate.* No ``V`` can beat the outcome-only fit ``W*`` (simplex least squares of ``Z1`` on ``Z0``).
   If ``W*`` satisfies the inner problem's KKT conditions for some ``V`` (a linear programme in ``V``), that
   ``V`` is a global optimum: return it, with the most even such ``V`` (largest smallest weight).
2. *Corners.* When the treated unit's value of predictor ``p`` lies within the donors', ``V = e_p`` makes the
   inner problem's minimisers the whole slice ``{W : X0_p W = X1_p}``; of those, the one the outer problem
   asks for (the best outcome fit: the *optimistic* solution of the bilevel problem) is computed exactly.
   Allowing zero predictor weights is the published method's ``V`` set; inexact inner solvers drift into
   these corners without saying so (Klößner, Kaul, Pfeifer & Schieler 2018, Swiss J. Econ. Stat. 154:11).
3. *Descent from several starts.* From equal weights, Synth's regression-based start and
   :data:`RANDOM_STARTS` seeded Dirichlet draws, L-BFGS-B on ``log V`` with the exact gradient of loss V
   (implicit differentiation of the inner KKT system on its active set).
4. *Global search.* Loss V is piecewise smooth with flat pieces (wherever ``W(V)`` is a single donor) and many
   local minima, so no number of local descents is reliable on its own: a seeded differential evolution over
   ``log V`` (the global optimiser MSCMT uses for this problem, Becker & Klößner 2018, Econometrics and
   Statistics 5), its best point then descended as in 3.

The best candidate wins (the first on ties, in the order above). Deterministic: same input, same output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution, linprog, minimize
from threadpoolctl import threadpool_limits

from etl_pipeline.analytics.simplex import simplex_least_squares, simplex_least_squares_on_level

#: Seeded random starting points of the descent, besides equal weights and Synth's regression-based start.
RANDOM_STARTS = 8
_SEED = 0
#: Differential evolution's budget: population ``_POPULATION * k``, at most ``_GENERATIONS`` generations (about
#: 2,000 evaluations of loss V for 10 predictors, ~0.2 s here), over ``log V`` in [``_SEARCH_FLOOR``, 0].
_POPULATION = 5
_GENERATIONS = 30
_SEARCH_FLOOR = -10.0
#: Bounds of ``log V`` in the descent (V is normalised afterwards, so only differences matter): a predictor's
#: weight can fall to ~e**-20 of the largest.
_LOG_FLOOR = -20.0
#: Relative tolerance of the certificate's check that ``W*`` minimises loss W for the ``V`` the LP found.
_CERTIFICATE_TOLERANCE = 1e-9


@dataclass(frozen=True, eq=False)
class NestedSolution:
    """Shapes: ``v`` (k,), ``w`` (J,). ``loss_v``: outcome MSPE over the optimisation window, in squared
    outcome units; ``loss_w``: Synth's loss W on standardised predictors."""

    v: np.ndarray
    w: np.ndarray
    loss_v: float
    loss_w: float


def inner_weights(v: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """``W(V)``: the simplex weights minimising loss W for the predictor weights ``v``, exactly.
    Shapes: ``v`` (k,), ``x0`` (k, J), ``x1`` (k,); returns (J,)."""
    root = np.sqrt(v)
    return simplex_least_squares(root[:, None] * x0, root * x1)


def loss_w(v: np.ndarray, w: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> float:
    """Synth's loss W: ``(X1 - X0 W)' diag(V) (X1 - X0 W)``."""
    residual = x1 - x0 @ w
    return float(residual @ (v * residual))


def loss_v(w: np.ndarray, z0: np.ndarray, z1: np.ndarray) -> float:
    """Synth's loss V: the mean squared outcome error ``mean((Z1 - Z0 W)**2)`` over the window's periods."""
    return float(np.mean((z1 - z0 @ w) ** 2))


def _solution(v: np.ndarray, w: np.ndarray, x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray):
    return NestedSolution(v=v, w=w, loss_v=loss_v(w, z0, z1), loss_w=loss_w(v, w, x0, x1))


def _loss_v_and_gradient(v: np.ndarray, x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray):
    """Loss V at ``W(v)`` and its gradient in ``v``. On the support ``S`` of ``W`` the inner KKT system is
    ``[[X0_S' V X0_S, 1], [1', 0]] [W_S; mu] = [X0_S' V X1; 1]``; differentiating it in ``v_i`` gives a
    right-hand side ``X0_S[i] * r_i`` (``r = X1 - X0 W``), so one adjoint solve gives the whole gradient."""
    w = inner_weights(v, x0, x1)
    error = z1 - z0 @ w
    support = np.flatnonzero(w > 0)
    xs = x0[:, support]
    size = support.size
    kkt = np.zeros((size + 1, size + 1))
    kkt[:size, :size] = xs.T @ (v[:, None] * xs)
    kkt[:size, size] = kkt[size, :size] = 1.0
    rhs = np.append(-2.0 / len(z1) * (z0[:, support].T @ error), 0.0)
    adjoint = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:size]  # kkt is symmetric
    return float(np.mean(error**2)), (x1 - x0 @ w) * (xs @ adjoint), w


def _certified_outcome_fit(x0, x1, z0, z1) -> NestedSolution | None:
    """Step 1: the outcome-only optimum, if some ``V`` makes it an inner minimiser (see the module docstring).

    With ``r = X0 W* - X1`` the gradient of loss W at ``W*`` is ``2 G V``, ``G = X0' diag(r)``; ``W*`` is an
    inner minimiser iff ``(G V)_j`` equals some ``c`` on its support and is ``>= c`` off it. Linear in ``(V, c)``:
    maximise ``t`` subject to that, ``V >= t``, ``sum(V) == 1``.
    """
    k = x0.shape[0]
    w = simplex_least_squares(z0, z1)
    # Scaled by the data, not by its own largest entry: a residual at rounding level must stay ~0 for the LP's
    # tolerances (then every V qualifies), not be blown up to order one.
    g = x0.T * (x0 @ w - x1) / max(np.abs(x0).max() * np.abs(x0 - x1[:, None]).max(), np.finfo(float).tiny)
    on = w > 0
    # variables: v (k), c, t
    a_eq = np.vstack([np.hstack([g[on], -np.ones((on.sum(), 1)), np.zeros((on.sum(), 1))]), [*np.ones(k), 0, 0]])
    b_eq = np.append(np.zeros(on.sum()), 1.0)
    a_ub = np.vstack(
        [
            np.hstack([-g[~on], np.ones(((~on).sum(), 1)), np.zeros(((~on).sum(), 1))]),
            np.hstack([-np.eye(k), np.zeros((k, 1)), np.ones((k, 1))]),
        ]
    )
    lp = linprog(
        np.append(np.zeros(k + 1), -1.0),
        A_ub=a_ub,
        b_ub=np.zeros(a_ub.shape[0]),
        A_eq=a_eq,
        b_eq=b_eq,
        bounds=[(0, None)] * k + [(None, None)] * 2,
        method="highs",
    )
    if lp.status != 0:
        return None
    v = np.clip(lp.x[:k], 0.0, None)
    v = v / v.sum()
    # The LP holds to its own tolerance: accept only if W* is an inner minimiser for this V to rounding.
    typical = float(np.mean((x0 - x1[:, None]) ** 2, axis=1) @ v)
    if loss_w(v, w, x0, x1) > loss_w(v, inner_weights(v, x0, x1), x0, x1) + _CERTIFICATE_TOLERANCE * typical:
        return None
    return _solution(v, w, x0, x1, z0, z1)


def _corners(x0, x1, z0, z1) -> list[NestedSolution]:
    """Step 2: ``V = e_p`` for each predictor ``p`` the donors can match, with the best-fitting matching ``W``."""
    found = []
    for p in range(x0.shape[0]):
        w = simplex_least_squares_on_level(z0, z1, x0[p], x1[p])
        if w is not None:
            found.append(_solution(np.eye(x0.shape[0])[p], w, x0, x1, z0, z1))
    return found


def regression_start(x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray) -> np.ndarray:
    """Synth's regression-based starting ``V``: regress every unit's outcomes over the window on its
    standardised predictors (with an intercept, units as observations); ``V`` is proportional to the squared
    norms of the predictors' coefficient rows (least squares of minimum norm when the regressors are collinear).
    Shapes: ``x0`` (k, J), ``x1`` (k,), ``z0`` (T, J), ``z1`` (T,); returns (k,), summing to 1."""
    units = np.column_stack([x1, x0]).T
    design = np.column_stack([np.ones(units.shape[0]), units])
    beta = np.linalg.lstsq(design, np.column_stack([z1, z0]).T, rcond=None)[0][1:]
    strength = np.sum(beta**2, axis=1)
    total = strength.sum()
    return strength / total if total > 0 else np.full(len(x1), 1.0 / len(x1))


def _softmax(theta: np.ndarray) -> np.ndarray:
    e = np.exp(theta - theta.max())
    return e / e.sum()


def _descend(start: np.ndarray, x0, x1, z0, z1) -> NestedSolution:
    """Step 3 from one start: L-BFGS-B on ``theta = log V`` (V = softmax(theta)), loss V scaled to ~1."""
    scale = float(np.mean((z0 - z1[:, None]) ** 2)) or 1.0

    def objective(theta: np.ndarray):
        v = _softmax(theta)
        value, gradient, _ = _loss_v_and_gradient(v, x0, x1, z0, z1)
        return value / scale, v * (gradient - gradient @ v) / scale

    theta = np.log(np.maximum(start, np.exp(_LOG_FLOOR)))
    found = minimize(
        objective, theta - theta.max(), jac=True, method="L-BFGS-B", bounds=[(_LOG_FLOOR, 0.0)] * len(start)
    )
    v = _softmax(found.x)
    return _solution(v, inner_weights(v, x0, x1), x0, x1, z0, z1)


def _global_search(x0, x1, z0, z1) -> NestedSolution:
    """Step 4: seeded differential evolution over ``log V``, its best point descended."""
    found = differential_evolution(
        lambda theta: loss_v(inner_weights(_softmax(theta), x0, x1), z0, z1),
        [(_SEARCH_FLOOR, 0.0)] * x0.shape[0],
        popsize=_POPULATION,
        maxiter=_GENERATIONS,
        init="sobol",
        polish=False,
        rng=_SEED,
    )
    return _descend(_softmax(found.x), x0, x1, z0, z1)


def solve_nested(x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray) -> NestedSolution:
    """The predictor weights ``V`` minimising loss V, and their donor weights ``W(V)`` (see the module docstring).

    Shapes: ``x0`` (k, J) and ``x1`` (k,) standardised predictors of the donors and the treated unit; ``z0``
    (T, J) and ``z1`` (T,) their outcomes over the optimisation window.
    """
    # Hundreds of solves on matrices of a few dozen entries: BLAS threads only contend (up to 40x slower here).
    with threadpool_limits(limits=1):
        certified = _certified_outcome_fit(x0, x1, z0, z1)
        if certified is not None:
            return certified
        k = x0.shape[0]
        starts = [np.full(k, 1.0 / k), regression_start(x0, x1, z0, z1)]
        starts += list(np.random.default_rng(_SEED).dirichlet(np.ones(k), size=RANDOM_STARTS))
        candidates = [_descend(start, x0, x1, z0, z1) for start in starts]
        candidates += [_global_search(x0, x1, z0, z1), *_corners(x0, x1, z0, z1)]
        return min(candidates, key=lambda c: c.loss_v)
