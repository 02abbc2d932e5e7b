"""Independent solvers for the tests: exhaustive enumeration of donor supports, no shared code with the
package. A convex least-squares problem over the simplex (possibly with one more equality constraint) is solved
by the optimum of the equality-constrained problem on its own support, so trying every support and keeping
the best feasible candidate is exact (for a handful of donors)."""

from __future__ import annotations

import itertools
import math

import numpy as np


def brute_force_simplex(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Best convex weights and their squared error, by trying every donor subset's affine-hull optimum."""
    j = x.shape[1]
    best_w, best_sse = np.full(j, np.nan), math.inf
    for k in range(1, j + 1):
        for subset in itertools.combinations(range(j), k):
            cols = x[:, subset] - y[:, None]
            last = cols[:, -1]
            coef = np.linalg.lstsq(cols[:, :-1] - last[:, None], -last, rcond=None)[0]
            v = np.append(coef, 1 - coef.sum())
            if v.min() < -1e-12:
                continue
            w = np.zeros(j)
            w[list(subset)] = v
            sse = float(np.sum((x @ w - y) ** 2))
            if sse < best_sse:
                best_w, best_sse = w, sse
    return best_w, best_sse


def kkt_violation(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    """Largest violation of: gradient equal on the support and not smaller off it (relative units)."""
    a = x - y[:, None]
    a = a / np.linalg.norm(a, axis=0).max()
    grad = a.T @ (a @ w)
    level = grad[w > 0].mean()
    return float(max(np.abs(grad[w > 0] - level).max(), level - grad.min()))


def brute_force_on_level(x: np.ndarray, y: np.ndarray, c: np.ndarray, level: float) -> tuple[np.ndarray, float]:
    """min ||x w - y||^2 over w >= 0, sum(w) = 1, c @ w = level, over every support (KKT system, w >= 0 checked)."""
    j = x.shape[1]
    best_w, best = np.full(j, np.nan), math.inf
    for k in range(1, j + 1):
        for support in itertools.combinations(range(j), k):
            s = list(support)
            a = np.vstack([np.ones(k), c[s]])
            kkt = np.block([[2 * x[:, s].T @ x[:, s], a.T], [a, np.zeros((2, 2))]])
            rhs = np.concatenate([2 * x[:, s].T @ y, [1.0, level]])
            solution = np.linalg.lstsq(kkt, rhs, rcond=None)[0][:k]
            if solution.min() < -1e-12 or abs(c[s] @ solution - level) > 1e-9 or abs(solution.sum() - 1) > 1e-9:
                continue
            w = np.zeros(j)
            w[s] = solution
            sse = float(np.sum((x @ w - y) ** 2))
            if sse < best:
                best_w, best = w, sse
    return best_w, best


def standardised(x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """R's Synth: each predictor divided by ``sd()`` (n - 1) over the treated unit and the donors."""
    sd = np.column_stack([x1, x0]).std(axis=1, ddof=1)
    return x0 / sd[:, None], x1 / sd


def inner_loss_gap(v: np.ndarray, w: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> float:
    """How much ``w``'s loss W exceeds the exhaustive inner minimum for ``v`` (0 for a valid (V, W) pair)."""
    root = np.sqrt(v)
    _, best = brute_force_simplex(root[:, None] * x0, root * x1)
    residual = x1 - x0 @ w
    return float(residual @ (v * residual)) - best


def global_loss_v_two_predictors(x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray, steps: int) -> float:
    """The least loss V over V = (t, 1 - t), to grid resolution: inside, the inner minimiser (unique unless the
    donors match both predictors exactly) by exhaustive search; at each corner ``V = e_p``, the inner minimisers
    are every ``W`` matching predictor p, and the best-fitting of them comes from :func:`brute_force_on_level`."""
    values = []
    for t in np.linspace(0, 1, steps + 1)[1:-1]:
        root = np.sqrt([t, 1 - t])
        w, _ = brute_force_simplex(root[:, None] * x0, root * x1)
        values.append(float(np.mean((z1 - z0 @ w) ** 2)))
    for p in range(2):
        if x0[p].min() <= x1[p] <= x0[p].max():
            _, sse = brute_force_on_level(z0, z1, x0[p], x1[p])
            values.append(sse / len(z1))
    return min(values)
