"""Synth's nested V/W optimisation on panels with known answers, checked by independent means: a planted
synthetic control, a worked example, an exhaustive global search for two predictors (``exhaustive.py``), the
inner problem re-solved exhaustively at the returned V, finite differences for the gradient, and the regression
start re-derived from its formula."""

from __future__ import annotations

import numpy as np
import pytest

from etl_pipeline.analytics.nested_weights import (
    _loss_v_and_gradient,
    inner_weights,
    loss_v,
    regression_start,
    solve_nested,
)
from etl_pipeline.analytics.simplex import simplex_least_squares
from etl_pipeline_tests.analytics.exhaustive import global_loss_v_two_predictors, inner_loss_gap, standardised
from etl_pipeline_tests.analytics.factor_panels import factor_panel


def test_a_planted_synthetic_control_is_recovered_with_zero_loss():
    # The treated unit IS 0.5 d0 + 0.3 d1 + 0.2 d2 in every predictor and every period: both losses vanish at
    # those weights only (7 periods, 4 donors: the outcome fit alone pins them down), and since they fit the
    # predictors exactly, every V makes them an inner minimiser: the most even V (all 1/5) is returned.
    rng = np.random.default_rng(7)
    planted = np.array([0.5, 0.3, 0.2, 0.0])
    x0 = rng.normal(size=(5, 4)) * [[1], [10], [100], [1e3], [1e4]]
    z0 = rng.normal(size=(7, 4)).cumsum(axis=0)
    a, b = standardised(x0, x0 @ planted)

    solution = solve_nested(a, b, z0, z0 @ planted)

    np.testing.assert_allclose(solution.w, planted, atol=1e-12)
    np.testing.assert_allclose(solution.v, np.full(5, 0.2), atol=1e-9)
    assert solution.loss_v < 1e-25 and solution.loss_w < 1e-25


def test_worked_example_where_matching_one_predictor_exactly_is_best():
    # Donors A, B, C; predictor p = (0, 2, 4) with the treated unit at 1, predictor q = (5, 0, 1) with the treated
    # unit at 10, above every donor. Outcomes over two periods A = (0, 0), B = (2, 0), C = (0, 2), treated (1, 1).
    # - The outcome alone is fitted perfectly by (0, 1/2, 1/2), but no V makes that an inner minimiser: with
    #   r = X0 w - X1 = (2, -9.5) the inner gradient is -47.5 s_q v_q at A and 4 s_p v_p at B (s = 1/sd^2 > 0),
    #   and B in the support needs A's gradient >= B's, so v_q = 0, and then B = C needs 4 v_p = 8 v_p: v_p = 0.
    # - V = (1, 0): every W with 2 w_B + 4 w_C = 1 is an inner minimiser; the best outcome fit among them is
    #   w = (0.6, 0.3, 0.1) with squared errors 16 w_C^2 + (2 w_C - 1)^2 = 0.8, loss V = 0.8 / 2 = 0.4.
    # - Any V with v_q > 0 does worse (the exhaustive grid below: at least 0.625).
    x0, x1 = np.array([[0.0, 2.0, 4.0], [5.0, 0.0, 1.0]]), np.array([1.0, 10.0])
    z0, z1 = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]]), np.array([1.0, 1.0])
    a, b = standardised(x0, x1)

    solution = solve_nested(a, b, z0, z1)

    np.testing.assert_array_equal(solution.v, [1.0, 0.0])
    np.testing.assert_allclose(solution.w, [0.6, 0.3, 0.1], atol=1e-14)
    assert solution.loss_v == pytest.approx(0.4, rel=1e-13)
    assert solution.loss_w == pytest.approx(0.0, abs=1e-25)
    assert global_loss_v_two_predictors(a, b, z0, z1, steps=400) == pytest.approx(0.4, rel=1e-12)
    interior = [loss_v(inner_weights(np.array([t, 1 - t]), a, b), z0, z1) for t in np.linspace(0.001, 0.999, 999)]
    assert min(interior) > 0.62


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_two_predictors_reach_the_exhaustive_global_optimum(seed: int):
    x0, x1, z0, z1 = factor_panel(seed, donors=5, predictors=2, periods=10)
    a, b = standardised(x0, x1)

    solution = solve_nested(a, b, z0, z1)

    best = global_loss_v_two_predictors(a, b, z0, z1, steps=300)
    # The grid has 299 interior points: the optimum can sit between them, never below ours by more than rounding.
    assert solution.loss_v <= best * (1 + 1e-9)
    assert solution.loss_v >= best * (1 - 2e-2)
    assert inner_loss_gap(solution.v, solution.w, a, b) <= 1e-10
    assert solution.loss_v == pytest.approx(loss_v(solution.w, z0, z1), rel=1e-14)


@pytest.mark.parametrize(
    ("seed", "shape"),
    [
        (10, dict(donors=6, predictors=3, periods=12, lags=1)),
        (11, dict(donors=6, predictors=4, periods=9, lags=2)),
        (12, dict(donors=7, predictors=4, periods=12, lags=1, extreme=True)),
        (13, dict(donors=5, predictors=6, periods=15, extreme=True)),
    ],
)
def test_every_solution_is_a_valid_pair_no_better_than_the_outcome_only_fit(seed: int, shape: dict):
    x0, x1, z0, z1 = factor_panel(seed, **shape)
    a, b = standardised(x0, x1)

    solution = solve_nested(a, b, z0, z1)

    assert solution.v.min() >= 0 and solution.v.sum() == pytest.approx(1, abs=1e-12)
    assert solution.w.min() >= 0 and solution.w.sum() == pytest.approx(1, abs=1e-12)
    # W minimises loss W for the returned V (to rounding), as re-solved over every donor support ...
    assert inner_loss_gap(solution.v, solution.w, a, b) <= 1e-9 * max(1.0, float(np.sum(b**2)))
    # ... and nothing beats the weights that fit the outcome alone, whatever V.
    assert solution.loss_v >= loss_v(simplex_least_squares(z0, z1), z0, z1) * (1 - 1e-12)


def test_same_input_same_weights():
    x0, x1, z0, z1 = factor_panel(21, donors=12, predictors=8, periods=20, lags=2, extreme=True)
    a, b = standardised(x0, x1)
    first, second = solve_nested(a, b, z0, z1), solve_nested(a.copy(), b.copy(), z0.copy(), z1.copy())
    np.testing.assert_array_equal(first.v, second.v)
    np.testing.assert_array_equal(first.w, second.w)
    assert first.loss_v == second.loss_v


@pytest.mark.parametrize("seed", [0, 2, 6])
def test_gradient_of_loss_v_matches_finite_differences(seed: int):
    x0, x1, z0, z1 = factor_panel(seed, donors=8, predictors=5, periods=12, extreme=True)
    a, b = standardised(x0, x1)
    v = np.random.default_rng(seed).dirichlet(np.ones(5))
    value, gradient, w = _loss_v_and_gradient(v, a, b, z0, z1)
    assert value == pytest.approx(loss_v(w, z0, z1), rel=1e-14)
    assert (w > 0).sum() >= 2  # a single donor would make both sides zero
    step = 1e-6
    numeric = [
        (loss_v(inner_weights(v + step * e, a, b), z0, z1) - loss_v(inner_weights(v - step * e, a, b), z0, z1))
        / (2 * step)
        for e in np.eye(5)
    ]
    np.testing.assert_allclose(gradient, numeric, rtol=1e-5, atol=1e-8 * np.abs(numeric).max())


def test_regression_start_is_synths_formula():
    # Synth (and pysyncon's optim_initial="ols"): Beta = (X'X)^-1 X'Z' with X = [1, X_scaled'] over all units,
    # the intercept row dropped, V = diag(Beta Beta') normalised.
    x0, x1, z0, z1 = factor_panel(3, donors=9, predictors=4, periods=11)
    a, b = standardised(x0, x1)
    design = np.column_stack([np.ones(10), np.column_stack([b, a]).T])
    beta = (np.linalg.inv(design.T @ design) @ design.T @ np.column_stack([z1, z0]).T)[1:]
    expected = np.diag(beta @ beta.T) / np.diag(beta @ beta.T).sum()
    np.testing.assert_allclose(regression_start(a, b, z0, z1), expected, rtol=1e-10)
