"""The robustness checks: in-space placebo with predictors (any number of worker processes, same answer), the
in-time placebo (the effect vanishes; each placebo equals a direct fit of the earlier study) and leave-one-out
(each refit equals a direct fit without that donor), as tidy frames."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from etl_pipeline.analytics.synthetic_control import (
    PanelError,
    Predictor,
    PredictorError,
    fit_synthetic_control,
    leave_one_out,
    placebo_in_time,
    placebo_test,
)
from etl_pipeline_tests.analytics.factor_panels import factor_panel, long_panel

COLUMNS = {"unit": "unit", "time": "t", "outcome": "y"}


@pytest.fixture(scope="module")
def planted() -> pd.DataFrame:
    """Five donors over 20 + 5 periods, covariates c0..c2 and the outcome; the treated unit is 0.6 d0 + 0.4 d3 in
    all of them (a little noise on the outcome), plus 10 from period 20 on."""
    x0, _, z0, _ = factor_panel(4, donors=5, predictors=3, periods=25)
    w = np.array([0.6, 0.0, 0.0, 0.4, 0.0])
    noise = np.random.default_rng(4).normal(scale=0.05, size=25)
    outcomes = z0 @ w + noise + np.where(np.arange(25) >= 20, 10.0, 0.0)
    return long_panel(x0, x0 @ w, z0[:20], outcomes[:20], post=np.column_stack([outcomes, z0])[20:])


#: The covariates over the pre-period, and the outcome at periods 15 and 18.
PREDICTORS = [*(Predictor(f"c{p}", 0, 19) for p in range(3)), Predictor("y", 15, 15), Predictor("y", 18, 18)]


def test_in_space_placebo_with_predictors_does_not_depend_on_the_workers(planted):
    options = dict(**COLUMNS, treated="T", intervention=20, predictors=PREDICTORS)
    serial = placebo_test(planted, **options, workers=1)
    parallel = placebo_test(planted, **options, workers=2)

    pd.testing.assert_frame_equal(serial.units, parallel.units, check_exact=True)
    pd.testing.assert_frame_equal(serial.gaps, parallel.gaps, check_exact=True)
    units = ["T", "d0", "d1", "d2", "d3", "d4"]
    assert list(serial.units.index) == units
    for unit in ("T", "d2"):
        alone = fit_synthetic_control(planted, **{**options, "treated": unit}, donors=[u for u in units if u != unit])
        pd.testing.assert_series_equal(serial.gaps[unit], alone.gap, check_names=False, check_exact=True)
    assert serial.units.at["T", "rank"] == 1


def test_in_time_placebo_finds_no_effect_before_the_real_one(planted):
    refits = placebo_in_time(
        planted, **COLUMNS, treated="T", intervention=20, placebo_interventions=[14, 10], predictors=PREDICTORS
    )

    assert refits.key == "placebo_intervention"
    assert list(refits.fits["placebo_intervention"]) == [14, 10]
    assert list(refits.fits.columns) == ["placebo_intervention", "pre_rmspe", "post_rmspe", "ratio", "loss_v", "loss_w"]
    # The treated unit is the planted mix up to the real intervention: no gap after either fake date ...
    assert (refits.fits["post_rmspe"] < 0.2).all()
    assert refits.paths["t"].max() == 19  # ... and nothing after the real intervention was used.
    assert list(refits.paths.columns) == ["placebo_intervention", "t", "actual", "synthetic", "gap"]
    assert len(refits.paths) == 2 * 20 and len(refits.weights) == 2 * 5
    # Each placebo is the study redone at the earlier date: predictors moved back by as much, data before 20.
    earlier = planted[planted["t"] < 20]
    for placebo in (14, 10):
        shift = placebo - 20
        moved = [dataclasses.replace(p, start=p.start + shift, end=p.end + shift) for p in PREDICTORS]
        direct = fit_synthetic_control(earlier, **COLUMNS, treated="T", intervention=placebo, predictors=moved)
        mine = refits.weights[refits.weights["placebo_intervention"] == placebo]
        np.testing.assert_array_equal(mine["weight"].to_numpy(), direct.weights.to_numpy())
        assert list(mine["unit"]) == list(direct.weights.index)
        row = refits.fits.set_index("placebo_intervention").loc[placebo]
        assert tuple(row[["pre_rmspe", "post_rmspe", "loss_v"]]) == (direct.pre_rmspe, direct.post_rmspe, direct.loss_v)


def test_in_time_placebo_of_the_real_effect_is_large_in_comparison(planted):
    real = fit_synthetic_control(planted, **COLUMNS, treated="T", intervention=20, predictors=PREDICTORS)
    placebo = placebo_in_time(
        planted, **COLUMNS, treated="T", intervention=20, placebo_interventions=[14], predictors=PREDICTORS
    )
    assert real.post_rmspe > 9.0
    assert placebo.fits.at[0, "post_rmspe"] < real.post_rmspe / 20


def test_in_time_placebo_errors_name_the_date_or_predictor(planted):
    options = dict(**COLUMNS, treated="T", intervention=20)
    with pytest.raises(PanelError, match=r"not before the intervention 20: 20, 25"):
        placebo_in_time(planted, **options, placebo_interventions=[10, 20, 25])
    with pytest.raises(PanelError, match=r"listed more than once: 10"):
        placebo_in_time(planted, **options, placebo_interventions=[10, 12, 10])
    with pytest.raises(PredictorError, match=r"^placebo intervention 4: predictor 'y -1': no 'y' between -1 and -1"):
        placebo_in_time(planted, **options, placebo_interventions=[4], predictors=[Predictor("y", 15, 15)])
    dated = planted.assign(t=pd.Timestamp("2020-01-01") + pd.to_timedelta(planted["t"], unit="D"))
    with pytest.raises(PanelError, match=r"cannot move predictor \"mean c0 '2020-01-01'\.\.'2020-01-10'\" back to the "
                       r"placebo intervention 2020-01-15"):
        placebo_in_time(
            dated, **{**options, "intervention": pd.Timestamp("2020-01-21")},
            placebo_interventions=[pd.Timestamp("2020-01-15")],
            predictors=[Predictor("c0", "2020-01-01", "2020-01-10")],
        )  # fmt: skip


def test_in_time_placebo_with_dates_moves_timestamps(planted):
    dated = planted.assign(t=pd.Timestamp("2020-01-01") + pd.to_timedelta(planted["t"], unit="D"))
    day = lambda n: pd.Timestamp("2020-01-01") + pd.Timedelta(days=n)  # noqa: E731
    refits = placebo_in_time(
        dated, **COLUMNS, treated="T", intervention=day(20), placebo_interventions=[day(14)],
        predictors=[Predictor("c0", day(0), day(19)), Predictor("y", day(18), day(18))],
        optimize_window=(day(5), day(19)),
    )  # fmt: skip
    numbered = placebo_in_time(
        planted, **COLUMNS, treated="T", intervention=20, placebo_interventions=[14],
        predictors=[Predictor("c0", 0, 19), Predictor("y", 18, 18)], optimize_window=(5, 19),
    )  # fmt: skip
    np.testing.assert_array_equal(refits.weights["weight"], numbered.weights["weight"])


def test_leave_one_out_refits_without_each_positive_weight_donor(planted):
    options = dict(**COLUMNS, treated="T", intervention=20, predictors=PREDICTORS)
    full = fit_synthetic_control(planted, **options)

    refits = leave_one_out(planted, **options, workers=2)

    positive = [d for d, w in full.weights.items() if w > 0]
    assert refits.key == "left_out" and list(refits.fits["left_out"]) == positive
    for donor in positive:
        direct = fit_synthetic_control(planted, **options, donors=[d for d in full.weights.index if d != donor])
        mine = refits.weights[refits.weights["left_out"] == donor]
        assert list(mine["unit"]) == list(direct.weights.index) and donor not in set(mine["unit"])
        np.testing.assert_array_equal(mine["weight"].to_numpy(), direct.weights.to_numpy())
        path = refits.paths[refits.paths["left_out"] == donor]
        np.testing.assert_array_equal(path["synthetic"].to_numpy(), direct.synthetic.to_numpy())
    assert len(refits.paths) == len(positive) * 25


def test_leave_one_out_without_predictors_and_with_too_few_donors(planted):
    refits = leave_one_out(planted, **COLUMNS, treated="T", intervention=20)
    assert set(refits.fits["left_out"]) <= {"d0", "d1", "d2", "d3", "d4"} and len(refits.fits) >= 1
    # Regression weights can all be negative: then nothing is left out, and the frames are empty but typed.
    negative = planted.assign(y=lambda p: p["y"].where(p["unit"] != "T", -p["y"]))
    none = leave_one_out(negative, **COLUMNS, treated="T", intervention=20, method="ols", donors=["d0", "d1"])
    assert list(none.weights.columns) == ["left_out", "unit", "weight"] and none.weights.empty
    assert list(none.paths.columns) == ["left_out", "t", "actual", "synthetic", "gap"] and none.paths.empty
    with pytest.raises(PanelError, match=r"at least two donors; 'T' has 1"):
        leave_one_out(planted, **COLUMNS, treated="T", intervention=20, donors=["d0"])
