"""Synthetic-control test panels drawn from a factor model, as matrices and as long panels."""

from __future__ import annotations

import numpy as np
import pandas as pd


def factor_panel(
    seed: int, *, donors: int, predictors: int, periods: int, lags: int = 0, extreme: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(X0 (k, J), X1 (k,), Z0 (T, J), Z1 (T,)): outcomes from three random-walk factors with unit loadings plus
    noise; ``predictors - lags`` covariates that are noisy functions of the first loading, and ``lags`` outcome
    values at random periods; every predictor on its own scale (factors up to ~e**4 apart). ``extreme``: the
    treated unit above every donor on every predictor, so the donors can match none of them."""
    rng = np.random.default_rng(seed)
    factors = rng.normal(size=(periods, 3)).cumsum(axis=0)
    loadings = rng.normal(size=(3, donors + 1))
    outcomes = factors @ loadings + rng.normal(scale=0.5, size=(periods, donors + 1)) + 10
    shape = (predictors - lags, donors + 1)
    covariates = rng.normal(size=shape) + loadings[[0]] * rng.normal(size=(shape[0], 1))
    x = np.vstack([covariates, outcomes[np.sort(rng.choice(periods, lags, replace=False))]])
    x = x * rng.lognormal(0, 2, size=(predictors, 1))
    x1 = x[:, 0]
    if extreme:
        x1 = x[:, 1:].max(axis=1) + np.abs(rng.normal(size=predictors)) * x[:, 1:].std(axis=1) * 0.3
    return x[:, 1:], x1, outcomes[:, 1:], outcomes[:, 0]


def long_panel(x0: np.ndarray, x1: np.ndarray, z0: np.ndarray, z1: np.ndarray, post: np.ndarray | None = None):
    """The matrices as a long panel: units 'T' (treated) and 'd0'.. (donors), periods 0.. (``post`` (P, J+1)
    appended after the pre-period, treated first), outcome ``y`` and covariates ``c0``.. constant over time."""
    outcomes = np.column_stack([z1, z0])
    if post is not None:
        outcomes = np.vstack([outcomes, post])
    units = ["T", *(f"d{j}" for j in range(x0.shape[1]))]
    covariates = np.column_stack([x1, x0])
    rows = [
        {"unit": u, "t": t, "y": outcomes[t, i], **{f"c{p}": covariates[p, i] for p in range(len(x1))}}
        for i, u in enumerate(units)
        for t in range(outcomes.shape[0])
    ]
    return pd.DataFrame(rows)
