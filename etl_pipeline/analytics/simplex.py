"""Least squares over the unit simplex, solved exactly: the donor-weight problems of synthetic control.

Pure numpy/scipy; no pandas.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls


def simplex_least_squares(donors: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Weights ``w >= 0``, ``sum(w) == 1`` minimising ``||donors @ w - target||``.

    Shapes: ``donors`` (n, J), ``target`` (n,); returns (J,).

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


def simplex_least_squares_on_level(
    donors: np.ndarray, target: np.ndarray, constraint: np.ndarray, level: float
) -> np.ndarray | None:
    """Like :func:`simplex_least_squares`, restricted to the weights with ``constraint @ w == level``; None
    when no weights on the simplex reach that level (``level`` outside ``[min(constraint), max(constraint)]``).

    Shapes: ``donors`` (n, J), ``target`` (n,), ``constraint`` (J,); returns (J,) or None.

    Exact, with no penalty weight: with ``c = constraint - level`` the feasible set ``{w on the simplex:
    c @ w == 0}`` is the intersection of the simplex with a hyperplane, a polytope whose vertices lie on the
    simplex's vertices and edges: ``e_j`` where ``c_j == 0``, and for ``c_j > 0 > c_l`` the point of the edge
    ``e_j``-``e_l`` where ``c`` vanishes. The problem is therefore simplex least squares over those
    generators ``G``: ``w = G @ u`` with ``u = simplex_least_squares(donors @ G, target)``.
    """
    c = np.asarray(constraint, dtype=float) - level
    above, below, on = np.flatnonzero(c > 0), np.flatnonzero(c < 0), np.flatnonzero(c == 0)
    pairs = [(j, l) for j in above for l in below]
    if not pairs and not on.size:
        return None
    generators = np.zeros((len(c), on.size + len(pairs)))
    generators[on, np.arange(on.size)] = 1.0
    for column, (j, l) in enumerate(pairs, start=on.size):
        generators[j, column] = -c[l] / (c[j] - c[l])
        generators[l, column] = c[j] / (c[j] - c[l])
    return generators @ simplex_least_squares(np.asarray(donors, dtype=float) @ generators, target)
