"""fit_synthetic_control with predictors, through long panels: a planted synthetic control, the optimisation
window, determinism, and errors that name the offending predictor, unit, period or column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from etl_pipeline.analytics.simplex import simplex_least_squares
from etl_pipeline.analytics.synthetic_control import (
    EmptyPrePeriodError,
    PanelError,
    Predictor,
    PredictorError,
    fit_synthetic_control,
)
from etl_pipeline_tests.analytics.factor_panels import factor_panel, long_panel

COLUMNS = {"unit": "unit", "time": "t", "outcome": "y"}
PLANTED = np.array([0.5, 0.3, 0.2, 0.0])


def planted_panel(effect: float = 7.0) -> pd.DataFrame:
    """Four donors over 12 + 4 periods with covariates c0..c4; the treated unit is 0.5 d0 + 0.3 d1 + 0.2 d2 in
    every covariate and period, plus ``effect`` from period 12 on."""
    x0, _, z0, _ = factor_panel(5, donors=4, predictors=5, periods=16)
    outcomes = z0 @ PLANTED + np.where(np.arange(16) >= 12, effect, 0.0)
    post = np.column_stack([outcomes, z0])[12:]
    return long_panel(x0, x0 @ PLANTED, z0[:12], outcomes[:12], post=post)


COVARIATES = [Predictor(f"c{p}", 0, 11) for p in range(5)]


def test_a_planted_synthetic_control_is_recovered():
    result = fit_synthetic_control(planted_panel(), **COLUMNS, treated="T", intervention=12, predictors=COVARIATES)

    np.testing.assert_allclose(result.weights.to_numpy(), PLANTED, atol=1e-10)
    assert list(result.weights.index) == ["d0", "d1", "d2", "d3"]
    np.testing.assert_allclose(result.v_weights.to_numpy(), np.full(5, 0.2), atol=1e-9)
    assert list(result.v_weights.index) == [f"mean c{p} 0..11" for p in range(5)]
    assert result.loss_v < 1e-20 and result.loss_w < 1e-20
    np.testing.assert_allclose(result.balance["synthetic"], result.balance["treated"], rtol=1e-10)
    assert list(result.balance.columns) == ["treated", "synthetic", "donor_mean"]
    np.testing.assert_allclose(result.gap.loc[12:].to_numpy(), 7.0, rtol=1e-9)
    assert result.post_rmspe == pytest.approx(7.0, rel=1e-9)


def test_outcome_only_fit_on_an_optimisation_window():
    x0, x1, z0, z1 = factor_panel(8, donors=5, predictors=2, periods=20)
    panel = long_panel(x0, x1, z0, z1)

    result = fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=15, optimize_window=(5, 14))

    np.testing.assert_allclose(result.weights.to_numpy(), simplex_least_squares(z0[5:15], z1[5:15]), atol=1e-14)
    gap = z1 - z0 @ result.weights.to_numpy()
    assert result.loss_v == pytest.approx(np.mean(gap[5:15] ** 2), rel=1e-12)
    assert result.pre_rmspe == pytest.approx(np.sqrt(np.mean(gap[:15] ** 2)), rel=1e-12)  # still every pre period
    assert result.v_weights is None and result.balance is None and np.isnan(result.loss_w)
    options = dict(**COLUMNS, treated="T", intervention=15, optimize_window=(5, 14))
    empty = fit_synthetic_control(panel, **options, predictors=[])
    pd.testing.assert_series_equal(empty.weights, result.weights)


def test_predictors_with_an_optimisation_window_fit_loss_v_there_only():
    x0, x1, z0, z1 = factor_panel(9, donors=6, predictors=3, periods=14, extreme=True)
    panel = long_panel(x0, x1, z0, z1)
    predictors = [Predictor(f"c{p}", 0, 13) for p in range(3)]

    result = fit_synthetic_control(
        panel, **COLUMNS, treated="T", intervention=14, predictors=predictors, optimize_window=(4, 13)
    )

    gap = z1 - z0 @ result.weights.to_numpy()
    assert result.loss_v == pytest.approx(np.mean(gap[4:] ** 2), rel=1e-12)
    assert result.loss_v <= np.mean((z1 - z0 @ np.full(6, 1 / 6))[4:] ** 2)


def test_same_input_same_weights_whatever_the_row_order():
    x0, x1, z0, z1 = factor_panel(11, donors=8, predictors=4, periods=15, lags=1, extreme=True)
    panel = long_panel(x0, x1, z0, z1)
    predictors = [Predictor(f"c{p}", 0, 14) for p in range(4)]
    options = dict(**COLUMNS, treated="T", intervention=15, predictors=predictors)

    first = fit_synthetic_control(panel, **options)
    second = fit_synthetic_control(panel.sample(frac=1, random_state=3), **options)

    pd.testing.assert_series_equal(first.weights, second.weights, check_exact=True)
    pd.testing.assert_series_equal(first.v_weights, second.v_weights, check_exact=True)
    assert first.loss_v == second.loss_v


@pytest.mark.parametrize("op", ["mean", "median", "min", "max", "sum"])
def test_predictor_ops_skip_missing_values(op: str):
    panel = pd.DataFrame(
        {"unit": ["T"] * 4 + ["a"] * 4 + ["b"] * 4, "t": [0, 1, 2, 3] * 3, "y": np.arange(12.0)}
    ).assign(x=[1.0, np.nan, 3.0, 100.0, 2.0, 5.0, np.nan, 100.0, 7.0, 1.0, 4.0, 100.0])
    result = fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=3, predictors=[Predictor("x", 0, 2, op)])
    expected = {"mean": [2.0, 3.5, 4.0], "median": [2.0, 3.5, 4.0], "min": [1.0, 2.0, 1.0], "max": [3.0, 5.0, 7.0],
                "sum": [4.0, 7.0, 12.0]}[op]  # fmt: skip
    assert result.balance["treated"].iat[0] == expected[0]
    assert result.balance["donor_mean"].iat[0] == pytest.approx(np.mean(expected[1:]))


def _small() -> pd.DataFrame:
    x0, x1, z0, z1 = factor_panel(1, donors=3, predictors=2, periods=6)
    return long_panel(x0, x1, z0, z1)


def test_error_unknown_predictor_column():
    with pytest.raises(PredictorError, match=r"no predictor column\(s\) 'nope'"):
        fit_synthetic_control(_small(), **COLUMNS, treated="T", intervention=5, predictors=[Predictor("nope", 0, 4)])


def test_error_unit_without_values_in_a_window_is_named():
    panel = _small()
    panel.loc[(panel["unit"] == "d1") & (panel["t"] <= 2), "c0"] = np.nan
    expected = r"predictor 'mean c0 0\.\.2': no 'c0' between 0 and 2 for 1 unit\(s\): 'd1'"
    with pytest.raises(PredictorError, match=expected):
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=5, predictors=[Predictor("c0", 0, 2)])


def test_error_predictor_measured_at_or_after_the_intervention():
    with pytest.raises(PredictorError, match=r"at or after the intervention 5: 'mean c1 2\.\.5'"):
        fit_synthetic_control(
            _small(), **COLUMNS, treated="T", intervention=5, predictors=[Predictor("c0", 0, 4), Predictor("c1", 2, 5)]
        )


def test_error_predictor_equal_for_every_unit():
    panel = _small().assign(flat=1.0)
    with pytest.raises(PredictorError, match=r"same value for every unit.*'population'"):
        fit_synthetic_control(
            panel, **COLUMNS, treated="T", intervention=5, predictors=[Predictor("flat", 0, 4, name="population")]
        )


def test_error_predictor_definitions():
    with pytest.raises(PredictorError, match=r"'mode c0 0\.\.4': unknown op 'mode'"):
        Predictor("c0", 0, 4, "mode")  # type: ignore[arg-type]
    with pytest.raises(PredictorError, match=r"ends \(1\) before it starts"):
        Predictor("c0", 3, 1)
    with pytest.raises(PredictorError, match=r"listed more than once: 'mean c0 0\.\.4'"):
        fit_synthetic_control(
            _small(), **COLUMNS, treated="T", intervention=5, predictors=[Predictor("c0", 0, 4), Predictor("c0", 0, 4)]
        )
    assert Predictor("y", pd.Timestamp("2020-03-31"), pd.Timestamp("2020-03-31")).label == "y 2020-03-31"


def test_error_optimisation_window():
    with pytest.raises(PanelError, match=r"optimize_window 2\.\.5 must end before the intervention 5"):
        fit_synthetic_control(_small(), **COLUMNS, treated="T", intervention=5, optimize_window=(2, 5))
    with pytest.raises(EmptyPrePeriodError, match=r"optimize_window -9\.\.-1 holds no t of the treated unit 'T'"):
        fit_synthetic_control(_small(), **COLUMNS, treated="T", intervention=5, optimize_window=(-9, -1))


def test_error_predictors_need_the_scm_method():
    with pytest.raises(ValueError, match="predictors need method='scm'"):
        fit_synthetic_control(
            _small(), **COLUMNS, treated="T", intervention=5, method="ols", predictors=[Predictor("c0", 0, 4)]
        )
