"""Simplex least squares restricted to one level of a linear function, against a worked example and an
independent exhaustive solver (every donor subset's equality-constrained least squares via its KKT system)."""

from __future__ import annotations

import numpy as np
import pytest

from etl_pipeline.analytics.simplex import simplex_least_squares_on_level
from etl_pipeline_tests.analytics.exhaustive import brute_force_on_level


def test_worked_example():
    # Donors A, B, C at predictor values 0, 2, 4, treated at 1: the weights with 2 w_B + 4 w_C = 1. Outcomes
    # over two periods A = (0, 0), B = (2, 0), C = (0, 2), treated (1, 1): with 2 w_B = 1 - 4 w_C the squared
    # error is 16 w_C^2 + (2 w_C - 1)^2, least at w_C = 0.1, so w = (0.6, 0.3, 0.1) and the error is 0.8.
    x = np.array([[0.0, 2.0, 0.0], [0.0, 0.0, 2.0]])
    w = simplex_least_squares_on_level(x, np.array([1.0, 1.0]), np.array([0.0, 2.0, 4.0]), 1.0)
    np.testing.assert_allclose(w, [0.6, 0.3, 0.1], rtol=0, atol=1e-14)
    assert float(np.sum((x @ w - 1.0) ** 2)) == pytest.approx(0.8, rel=1e-13)


@pytest.mark.parametrize("seed", range(8))
def test_matches_exhaustive_search(seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(6, 5)).cumsum(axis=0)
    y = rng.normal(size=6).cumsum() + 0.5
    c = rng.normal(size=5)
    level = float(rng.uniform(c.min(), c.max()))
    w = simplex_least_squares_on_level(x, y, c, level)
    best_w, best = brute_force_on_level(x, y, c, level)
    assert w.min() >= 0 and w.sum() == pytest.approx(1, abs=1e-14)
    assert c @ w == pytest.approx(level, abs=1e-13)
    assert float(np.sum((x @ w - y) ** 2)) == pytest.approx(best, rel=1e-9)
    np.testing.assert_allclose(w, best_w, atol=1e-7)


def test_a_donor_exactly_at_the_level_and_levels_out_of_reach():
    x = np.array([[1.0, 5.0, 3.0]])
    c = np.array([0.0, 1.0, 2.0])
    # Only donor B sits at level 1 on its own; A-C mixes reach it too: (w_A, w_C) = (1/2, 1/2).
    assert simplex_least_squares_on_level(x, np.array([2.0]), c, 1.0) @ x[0] == pytest.approx(2.0)
    np.testing.assert_array_equal(simplex_least_squares_on_level(x, np.array([5.0]), c, 1.0), [0.0, 1.0, 0.0])
    assert simplex_least_squares_on_level(x, np.array([2.0]), c, 2.5) is None
    assert simplex_least_squares_on_level(x, np.array([2.0]), c, -0.1) is None
    np.testing.assert_array_equal(simplex_least_squares_on_level(x, np.array([9.0]), c, 2.0), [0.0, 0.0, 1.0])
