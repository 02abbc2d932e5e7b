"""Synthetic control on panels with known answers, checked against independent solvers.

Independent checks used here: exhaustive enumeration of donor subsets (the optimum of a simplex
least-squares problem is the affine-hull optimum of some subset, so the best feasible one is exact),
the KKT conditions, and scikit-learn's ``LinearRegression`` for the ``ols`` method.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression

from etl_pipeline.analytics.synthetic_control import (
    DonorGapError,
    DuplicateObservationError,
    EmptyPrePeriodError,
    PanelError,
    UnknownUnitError,
    fit_synthetic_control,
    placebo_test,
    simplex_least_squares,
)
from etl_pipeline_tests.analytics.exhaustive import brute_force_simplex, kkt_violation

COLUMNS = {"unit": "unit", "time": "t", "outcome": "y"}
SEA_DONORS = [
    "Brunei", "Burma", "Cambodia", "Indonesia", "Laos",
    "Malaysia", "Philippines", "Singapore", "Thailand", "Timor-Leste",
]  # fmt: skip


def long_panel(wide: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """time x unit -> one row per (unit, t), rows shuffled so nothing relies on their order."""
    rows = wide.rename_axis(index="t", columns="unit").stack().rename("y").reset_index()
    return rows.sample(frac=1, random_state=seed).reset_index(drop=True)


def random_walks(rng: np.random.Generator, periods: int, units: int) -> np.ndarray:
    return 100 + rng.normal(size=(periods, units)).cumsum(axis=0)


def pre_arrays(wide: pd.DataFrame, treated: str, donors: list[str], intervention: object) -> tuple[np.ndarray, np.ndarray]:
    pre = wide[wide.index < intervention]
    return pre[donors].to_numpy(float), pre[treated].to_numpy(float)


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (1e6, 3e7), (1e-3, 0.0)])
def test_exact_convex_combination_recovers_weights_and_effect(scale: float, offset: float) -> None:
    rng = np.random.default_rng(1)
    donors = [f"d{i}" for i in range(6)]
    true = np.array([0.5, 0.0, 0.3, 0.0, 0.2, 0.0])
    x = random_walks(rng, periods=40, units=6)
    effect = np.where(np.arange(40) >= 30, 7.0, 0.0)
    wide = pd.DataFrame(x, columns=donors).assign(treated=x @ true + effect) * scale + offset

    result = fit_synthetic_control(long_panel(wide), **COLUMNS, treated="treated", intervention=30)

    np.testing.assert_allclose(result.weights.loc[donors].to_numpy(), true, rtol=0, atol=1e-9)
    assert list(result.weights.index) == donors  # donors=None: every other unit
    assert result.pre_rmspe < 1e-9 * scale
    np.testing.assert_allclose(result.gap.loc[30:].to_numpy(), 7.0 * scale, rtol=1e-9)
    assert result.post_rmspe == pytest.approx(7.0 * scale, rel=1e-9)
    assert list(result.actual.index) == list(range(40))
    pd.testing.assert_series_equal(result.actual, wide["treated"].rename_axis("t"), check_names=False)


@pytest.mark.parametrize(("scale", "offset"), [(1.0, 0.0), (2.5e6, 1e8)])
def test_point_outside_the_hull_gets_the_nearest_face(scale: float, offset: float) -> None:
    # Pre-period points A=(0,0), B=(1,0), C=(0,1); treated at (1,1): the nearest hull point is the
    # midpoint of BC, so the weights are (0, 1/2, 1/2) and the pre-RMSPE is sqrt((.5^2 + .5^2) / 2) = 0.5.
    wide = pd.DataFrame(
        {"A": [0.0, 0.0, 4.0], "B": [1.0, 0.0, 4.0], "C": [0.0, 1.0, 4.0], "T": [1.0, 1.0, 9.0]},
        index=[1, 2, 3],
    )
    result = fit_synthetic_control(long_panel(wide * scale + offset), **COLUMNS, treated="T", intervention=3)

    assert result.weights["A"] == 0.0
    np.testing.assert_allclose(result.weights[["B", "C"]].to_numpy(), [0.5, 0.5], rtol=0, atol=1e-12)
    assert result.pre_rmspe == pytest.approx(0.5 * scale, rel=1e-12)
    assert result.post_rmspe == pytest.approx(5.0 * scale, rel=1e-12)
    assert result.ratio == pytest.approx(10.0, rel=1e-12)


@pytest.mark.parametrize(("seed", "scale"), [(0, 1.0), (1, 1.0), (2, 1e-6), (3, 1e-6), (4, 1e7)])
def test_outside_hull_matches_exhaustive_optimum(seed: int, scale: float) -> None:
    rng = np.random.default_rng(seed)
    donors = [f"d{i}" for i in range(6)]
    x = random_walks(rng, periods=20, units=6) * scale
    # Above every donor in the late pre-period: outside the hull, so some weights must be zero.
    treated = x.max(axis=1) + np.linspace(0, 5, 20) * scale
    wide = pd.DataFrame(x, columns=donors).assign(treated=treated)

    result = fit_synthetic_control(long_panel(wide, seed), **COLUMNS, treated="treated", intervention=15)

    x_pre, y_pre = pre_arrays(wide, "treated", donors, 15)
    best_w, best_sse = brute_force_simplex(x_pre, y_pre)
    w = result.weights.to_numpy()
    assert w.min() >= 0 and w.sum() == pytest.approx(1, abs=1e-12)
    assert (w == 0).any()
    assert result.pre_rmspe**2 * 15 == pytest.approx(best_sse, rel=1e-9)
    np.testing.assert_allclose(w, best_w, rtol=0, atol=1e-8)
    assert kkt_violation(x_pre, y_pre, w) < 1e-12


@pytest.mark.parametrize("scale", [1.0, 1e-8, 1e8])
def test_more_donors_than_pre_periods_still_optimal(scale: float) -> None:
    """Rank-deficient (13 donors, 10 periods): the weights are not unique, the optimal error is.

    At scale 1e-8 an unnormalised solve misses the KKT conditions by ~1e-10 for this seed."""
    rng = np.random.default_rng(289)
    x = rng.normal(size=(10, 13)).cumsum(axis=0) * scale
    y = (rng.normal(size=10).cumsum() * 2 + 0.5) * scale
    w = simplex_least_squares(x, y)
    _, best_sse = brute_force_simplex(x, y)
    assert w.min() >= 0 and w.sum() == pytest.approx(1, abs=1e-12)
    assert float(np.sum((x @ w - y) ** 2)) == pytest.approx(best_sse, rel=1e-9)
    assert kkt_violation(x, y, w) < 1e-12


def test_ols_reproduces_linear_regression() -> None:
    rng = np.random.default_rng(3)
    donors = ["a", "b", "c", "d"]
    x = random_walks(rng, periods=30, units=4)
    treated = 2.0 * x[:, 0] - 0.7 * x[:, 1] + rng.normal(size=30)
    wide = pd.DataFrame(x, columns=donors).assign(treated=treated)

    result = fit_synthetic_control(long_panel(wide), **COLUMNS, treated="treated", intervention=20, method="ols")

    x_pre, y_pre = pre_arrays(wide, "treated", donors, 20)
    model = LinearRegression(fit_intercept=False).fit(x_pre, y_pre)
    np.testing.assert_allclose(result.weights.to_numpy(), model.coef_, rtol=1e-12, atol=0)
    np.testing.assert_allclose(result.synthetic.to_numpy(), model.predict(wide[donors].to_numpy()), rtol=1e-12)
    gap = treated - model.predict(wide[donors].to_numpy())
    assert result.pre_rmspe == pytest.approx(np.sqrt(np.mean(gap[:20] ** 2)), rel=1e-12)
    assert result.post_rmspe == pytest.approx(np.sqrt(np.mean(gap[20:] ** 2)), rel=1e-12)
    assert result.weights.min() < 0  # unconstrained indeed: not what "scm" would give
    assert result.method == "ols"


def test_explicit_donors_and_extra_donor_times_are_ignored() -> None:
    rng = np.random.default_rng(4)
    wide = pd.DataFrame(random_walks(rng, periods=12, units=4), columns=["T", "a", "b", "unused"])
    panel = long_panel(wide)
    extra = pd.DataFrame({"unit": ["a", "b"], "t": [99, 99], "y": [1.0, 2.0]})  # times T lacks
    result = fit_synthetic_control(
        pd.concat([panel, extra]), **COLUMNS, treated="T", intervention=8, donors=["b", "a"]
    )
    assert list(result.weights.index) == ["b", "a"]
    assert list(result.synthetic.index) == list(range(12))
    np.testing.assert_allclose(
        result.synthetic.to_numpy(), wide[["b", "a"]].to_numpy() @ result.weights.to_numpy(), rtol=1e-14
    )


def _small_panel() -> pd.DataFrame:
    wide = pd.DataFrame({"T": [1.0, 2, 3, 4], "a": [0.0, 1, 2, 3], "b": [2.0, 3, 4, 5]}, index=[1, 2, 3, 4])
    return long_panel(wide)


def test_error_treated_unit_missing() -> None:
    with pytest.raises(UnknownUnitError, match="'Atlantis'"):
        fit_synthetic_control(_small_panel(), **COLUMNS, treated="Atlantis", intervention=3)


def test_error_unknown_donor() -> None:
    with pytest.raises(UnknownUnitError, match="'zz'"):
        fit_synthetic_control(_small_panel(), **COLUMNS, treated="T", intervention=3, donors=["a", "zz"])


def test_error_treated_listed_as_donor() -> None:
    with pytest.raises(PanelError, match="'T' is also listed as a donor"):
        fit_synthetic_control(_small_panel(), **COLUMNS, treated="T", intervention=3, donors=["a", "T"])


def test_error_empty_pre_period() -> None:
    with pytest.raises(EmptyPrePeriodError, match=r"'T' has no t before the intervention 1 \(its first t: 1\)"):
        fit_synthetic_control(_small_panel(), **COLUMNS, treated="T", intervention=1)


def test_error_donor_with_gaps_lists_missing_times() -> None:
    panel = _small_panel()
    panel = panel[~((panel["unit"] == "b") & panel["t"].isin([2, 4]))]
    with pytest.raises(DonorGapError, match=r"'b' at 2, 4") as caught:
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=3)
    assert "'a'" not in str(caught.value)


def test_error_donor_with_missing_outcome() -> None:
    panel = _small_panel()
    panel.loc[(panel["unit"] == "a") & (panel["t"] == 3), "y"] = np.nan
    with pytest.raises(DonorGapError, match=r"'a' at 3"):
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=3)


def test_error_donor_gap_message_is_truncated() -> None:
    wide = pd.DataFrame({"T": np.arange(10.0), "a": np.arange(10.0) + 1, "b": np.arange(10.0) - 1})
    panel = long_panel(wide)
    panel = panel[~((panel["unit"] == "a") & (panel["t"] >= 3))]
    expected = r"1 donor\(s\) lack 'y' at ts the treated unit 'T' has: 'a' at 3, 4, 5, 6, 7, \.\.\. \(7 in all\)$"
    with pytest.raises(DonorGapError, match=expected):
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=2)


def test_error_treated_unit_with_missing_outcome() -> None:
    panel = _small_panel()
    panel.loc[(panel["unit"] == "T") & (panel["t"] == 4), "y"] = np.nan
    with pytest.raises(PanelError, match=r"treated unit 'T' has no 'y' at t 4"):
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=3)


def test_error_duplicate_observation() -> None:
    panel = _small_panel()
    panel = pd.concat([panel, panel[(panel["unit"] == "a") & (panel["t"] == 2)]])
    with pytest.raises(DuplicateObservationError, match=r"\('a', 2\)"):
        fit_synthetic_control(panel, **COLUMNS, treated="T", intervention=3)


def test_error_unknown_method_and_missing_column() -> None:
    with pytest.raises(ValueError, match="'lasso'"):
        fit_synthetic_control(
            _small_panel(), **COLUMNS, treated="T", intervention=3, method="lasso"  # type: ignore[arg-type]
        )
    with pytest.raises(PanelError, match="'cases'"):
        fit_synthetic_control(_small_panel(), unit="unit", time="t", outcome="cases", treated="T", intervention=3)


def test_ratio_handles_perfect_fit_and_missing_post_period() -> None:
    result = fit_synthetic_control(_small_panel(), **COLUMNS, treated="T", intervention=3)
    assert dataclasses.replace(result, pre_rmspe=0.0, post_rmspe=2.0).ratio == math.inf
    assert math.isnan(dataclasses.replace(result, pre_rmspe=0.0, post_rmspe=0.0).ratio)
    no_post = fit_synthetic_control(_small_panel(), **COLUMNS, treated="T", intervention=10)
    assert math.isnan(no_post.post_rmspe) and math.isnan(no_post.ratio)


def test_placebo_refits_every_unit_and_ranks_ratios() -> None:
    rng = np.random.default_rng(5)
    units = ["T", "a", "b", "c", "d", "e"]
    wide = pd.DataFrame(random_walks(rng, periods=30, units=6), columns=units)
    wide.loc[20:, "T"] += 25.0  # a large effect after the intervention
    panel = long_panel(wide)

    placebo = placebo_test(panel, **COLUMNS, treated="T", intervention=20)

    assert list(placebo.units.index) == units
    for u in units:
        alone = fit_synthetic_control(
            panel, **COLUMNS, treated=u, intervention=20, donors=[d for d in units if d != u]
        )
        row = placebo.units.loc[u]
        assert tuple(row[["pre_rmspe", "post_rmspe", "ratio"]]) == (alone.pre_rmspe, alone.post_rmspe, alone.ratio)
        pd.testing.assert_series_equal(placebo.gaps[u], alone.gap, check_names=False)
    ratios = placebo.units["ratio"]
    expected_rank = [int((ratios >= r).sum()) for r in ratios]
    assert placebo.units["rank"].tolist() == expected_rank
    assert placebo.units.at["T", "rank"] == 1
    assert placebo.p_value == 1 / 6


def test_placebo_ties_count_against_the_treated_unit() -> None:
    # With two units each is the other's only donor (weight exactly 1): the gaps are exact negatives,
    # so the ratios tie exactly, both rank 2 and p = 2/2.
    wide = pd.DataFrame({"T": [1.0, 2.0, 4.0, 9.0], "a": [2.0, 2.5, 3.0, 3.5]})
    placebo = placebo_test(long_panel(wide), **COLUMNS, treated="T", intervention=3)
    assert placebo.units.at["T", "ratio"] == placebo.units.at["a", "ratio"]
    assert placebo.units["rank"].tolist() == [2, 2]
    assert placebo.p_value == 1.0


def test_vietnam_weights_are_the_convex_optimum(data_dir) -> None:
    raw = pd.read_csv(data_dir / "covid19_time_series.csv", parse_dates=["Date"])
    panel = raw[raw["Country/Region"].isin(["Vietnam", *SEA_DONORS])]

    result = fit_synthetic_control(
        panel,
        unit="Country/Region",
        time="Date",
        outcome="Confirmed",
        treated="Vietnam",
        intervention="2020-04-01",
        donors=SEA_DONORS,
    )

    wide = panel.pivot(index="Date", columns="Country/Region", values="Confirmed")
    x_pre, y_pre = pre_arrays(wide, "Vietnam", SEA_DONORS, pd.Timestamp("2020-04-01"))
    assert len(y_pre) == 70  # 2020-01-22 .. 2020-03-31
    w = result.weights.loc[SEA_DONORS].to_numpy()
    assert w.min() >= 0 and w.sum() == pytest.approx(1, abs=1e-12)

    sse = float(np.sum((x_pre @ w - y_pre) ** 2))
    assert result.pre_rmspe == pytest.approx(math.sqrt(sse / 70), rel=1e-12)
    _, best_sse = brute_force_simplex(x_pre, y_pre)  # 1023 donor subsets
    assert sse <= best_sse * (1 + 1e-9)
    assert kkt_violation(x_pre, y_pre, w) < 1e-10
    np.testing.assert_allclose(result.synthetic.to_numpy(), wide[SEA_DONORS].to_numpy() @ w, rtol=1e-12)
    post_gap = wide.loc["2020-04-01":, "Vietnam"].to_numpy() - wide.loc["2020-04-01":, SEA_DONORS].to_numpy() @ w
    assert result.post_rmspe == pytest.approx(math.sqrt(np.mean(post_gap**2)), rel=1e-12)
