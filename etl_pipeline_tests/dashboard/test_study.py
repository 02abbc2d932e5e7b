"""The study behind the synthetic-control page, on the real time series (no database): outcomes, the donor
pool rules, and the caption's numbers."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from dashboard.formatting import format_value, long_date
from dashboard.study import (
    DEFAULT_DONORS,
    GROWTH_DAYS,
    OUTCOME_LAGS_DAYS,
    PREDICTORS,
    balance_table,
    caption,
    default_placebo_date,
    leave_one_out_table,
    robustness_caption,
    run_robustness,
    comparable_placebos,
    placebo_table,
    run_study,
    study_title,
    study_units,
    treated_rank,
    weights_table,
)
from etl_pipeline.analytics.synthetic_control import (
    PanelError,
    Predictor,
    fit_synthetic_control,
    placebo_test,
)
from etl_pipeline.core.warehouse_model import WAREHOUSE_TABLES
from etl_pipeline_tests.conftest import WORLDOMETER_NAMES

SOUTHEAST_ASIA = ["Vietnam", *DEFAULT_DONORS]


@pytest.fixture(scope="module")
def panel(sources) -> pd.DataFrame:
    """The warehouse's study panel, rebuilt with pandas: confirmed per day plus worldometer's population."""
    series = sources["series"]
    population = sources["worldometer"].set_index("Country/Region")["Population"]
    frame = series.loc[
        series["country_region"].isin([*SOUTHEAST_ASIA, "China"]), ["country_region", "date", "confirmed"]
    ]
    return frame.assign(population=frame["country_region"].map(lambda c: population.get(WORLDOMETER_NAMES.get(c, c))))


def test_default_donors_are_the_other_southeast_asian_countries_in_the_data(sources):
    names = set(sources["series"]["country_region"])
    who = sources["series"].drop_duplicates("country_region").set_index("country_region")["who_region"]
    assert set(DEFAULT_DONORS) <= names
    assert len(DEFAULT_DONORS) == 10 and "Vietnam" not in DEFAULT_DONORS
    assert set(who[list(DEFAULT_DONORS)]) == {"South-East Asia", "Western Pacific"}


def test_default_study_is_the_scm_fit_and_placebo_of_vietnam(panel: pd.DataFrame):
    study = run_study(
        panel, treated="Vietnam", donors=DEFAULT_DONORS, intervention="2020-04-01", outcome="confirmed", method="scm"
    )
    options = dict(
        unit="country_region",
        time="date",
        outcome="confirmed",
        treated="Vietnam",
        intervention=pd.Timestamp("2020-04-01"),
        donors=list(DEFAULT_DONORS),
    )
    fit = fit_synthetic_control(panel, **options)
    placebo = placebo_test(panel, **options)
    pd.testing.assert_series_equal(study.fit.weights, fit.weights)
    assert (study.fit.pre_rmspe, study.fit.post_rmspe) == (fit.pre_rmspe, fit.post_rmspe)
    assert study.placebo.p_value == placebo.p_value
    assert study.donors == DEFAULT_DONORS and study.excluded == {}
    assert study.fit.weights.sum() == pytest.approx(1.0)
    assert len(study.placebo.units) == 11


def test_the_treated_country_is_never_its_own_donor(panel: pd.DataFrame):
    study = run_study(
        panel, treated="Thailand", donors=DEFAULT_DONORS, intervention="2020-04-01", outcome="confirmed", method="ols"
    )
    assert "Thailand" not in study.fit.weights.index
    assert len(study.fit.weights) == 9
    assert study.excluded == {"Thailand": "it is the treated country"}
    assert study_units("Thailand", DEFAULT_DONORS) == ["Thailand", *(d for d in DEFAULT_DONORS if d != "Thailand")]


def test_log_and_per_million_outcomes(panel: pd.DataFrame):
    common = dict(treated="Vietnam", donors=["Thailand", "Malaysia"], intervention="2020-04-01", method="scm")
    log = run_study(panel, outcome="log_confirmed", **common)
    per_million = run_study(panel, outcome="confirmed_per_million", **common)
    vietnam_last = panel[(panel["country_region"] == "Vietnam") & (panel["date"] == "2020-07-27")]["confirmed"].item()
    assert vietnam_last == 431
    assert log.fit.actual.iloc[-1] == pytest.approx(np.log1p(431))
    assert per_million.fit.actual.iloc[-1] == pytest.approx(431 / 97_425_470 * 1e6)


def test_per_million_excludes_donors_without_a_population(panel: pd.DataFrame):
    study = run_study(
        panel,
        treated="Vietnam",
        donors=["China", "Thailand"],
        intervention="2020-04-01",
        outcome="confirmed_per_million",
        method="scm",
    )
    assert study.excluded == {"China": "no known population"}
    assert study.fit.weights.to_dict() == {"Thailand": pytest.approx(1.0)}


def test_a_study_that_cannot_be_fitted_says_why(panel: pd.DataFrame):
    common = dict(intervention="2020-04-01", method="scm")
    with pytest.raises(PanelError, match="China has no known population"):
        run_study(panel, treated="China", donors=["Thailand"], outcome="confirmed_per_million", **common)
    with pytest.raises(PanelError, match="donor pool is empty"):
        run_study(panel, treated="Vietnam", donors=["Vietnam"], outcome="confirmed", **common)
    with pytest.raises(PanelError, match="no date before the intervention"):
        run_study(
            panel, treated="Vietnam", donors=["Thailand"], outcome="confirmed", intervention="2020-01-01", method="scm"
        )


def test_tables_are_sorted_for_reading(panel: pd.DataFrame):
    study = run_study(
        panel, treated="Vietnam", donors=DEFAULT_DONORS, intervention="2020-04-01", outcome="confirmed", method="scm"
    )
    weights = weights_table(study)
    assert weights["weight"].is_monotonic_decreasing
    assert sorted(weights["donor"]) == sorted(DEFAULT_DONORS)
    ranked = placebo_table(study)
    assert ranked["rank"].is_monotonic_increasing
    assert ranked.set_index("country")["ratio"].to_dict() == pytest.approx(study.placebo.units["ratio"].to_dict())


def test_caption_states_the_numbers_of_the_fit(panel: pd.DataFrame):
    study = run_study(
        panel, treated="Vietnam", donors=DEFAULT_DONORS, intervention="2020-04-01", outcome="confirmed", method="scm"
    )
    text = " ".join(caption(study))
    top_donor = study.fit.weights.idxmax()
    assert f"{top_donor} ({study.fit.weights.max():.0%})" in text
    assert f"differ by {format_value(study.fit.pre_rmspe, 'cases')}" in text
    rank = int(study.placebo.units.at["Vietnam", "rank"])
    assert f"ratio: rank {rank} of 11, a p-value of {rank / 11:.2f}" in text
    assert "smallest possible p-value is 0.09" in text
    pre = study.placebo.units["pre_rmspe"]
    comparable = int((pre.drop("Vietnam") <= 5 * pre["Vietnam"]).sum())
    assert comparable_placebos(study) == [c for c in pre.index if c != "Vietnam" and pre[c] <= 5 * pre["Vietnam"]]
    assert f"the gaps of the {comparable} donors it fitted before 1 April 2020 within 5 times" in text
    assert "testing" in text and "Limits" in text


def test_titles_and_formats():
    assert study_title("Vietnam", pd.Timestamp("2020-04-01")) == "What if Vietnam had not applied Directive 16?"
    assert (
        study_title("Thailand", pd.Timestamp("2020-03-26"))
        == "What if Thailand had not changed course on 26 March 2020?"
    )
    assert long_date(pd.Timestamp("2020-04-01")) == "1 April 2020"
    assert [format_value(v, "cases") for v in (1234567.8, 3.571, math.nan, math.inf)] == [
        "1,234,568 cases",
        "3.57 cases",
        "n/a",
        "∞",
    ]
    assert format_value(12.5) == "12.50"


def test_a_treated_country_without_a_ratio_is_not_ranked():
    """Zero error before and after (the treated series equals a donor's) leaves the ratio, rank and p undefined."""
    days = pd.date_range("2020-03-01", periods=4)
    panel = pd.DataFrame(
        [(unit, day, value, 1e6) for unit, value in (("T", 0), ("A", 0), ("B", 1)) for day in days],
        columns=["country_region", "date", "confirmed", "population"],
    )
    study = run_study(
        panel, treated="T", donors=["A", "B"], intervention="2020-03-03", outcome="confirmed", method="scm"
    )
    assert treated_rank(study) == "not ranked of 3: its post/pre ratio is undefined"
    assert "p-value of n/a" in " ".join(caption(study))


def test_donors_without_data_are_left_out_and_named(panel: pd.DataFrame):
    study = run_study(
        panel,
        treated="Vietnam",
        donors=["Atlantis", "Laos"],
        intervention="2020-04-01",
        outcome="confirmed",
        method="scm",
    )
    assert study.excluded == {"Atlantis": "no data in the warehouse"}
    assert study.donors == ("Laos",)
    assert "Left out of the donor pool — Atlantis: no data in the warehouse." in caption(study)


# --------------------------------------------------------------------------------------------- predictors

PREDICTOR_DONORS = ["Indonesia", "Malaysia", "Philippines", "Singapore", "Thailand"]
CHOSEN = ("population", "case_growth", "outcome_lags")


def test_the_predictors_offered_are_those_the_warehouse_holds():
    available = {key for key, choice in PREDICTORS.items() if choice.unavailable is None}
    assert available == {"population", "cases_per_million", "case_growth", "outcome_lags", "outcome_mean"}
    # Tests per million and land area are in no warehouse table: offered, disabled, saying why.
    columns = {c for table in WAREHOUSE_TABLES.values() for c in table.column_names}
    assert not {c for c in columns if "test" in c or "area" in c or "density" in c}
    assert "not in the warehouse" in PREDICTORS["tests_per_million"].unavailable
    assert "not in the warehouse" in PREDICTORS["population_density"].unavailable


@pytest.fixture(scope="module")
def predictor_study(panel: pd.DataFrame):
    return run_study(
        panel, treated="Vietnam", donors=PREDICTOR_DONORS, intervention="2020-04-01", outcome="confirmed",
        method="scm", predictors=CHOSEN,
    )  # fmt: skip


def test_a_study_with_predictors_is_synths_nested_fit_of_those_predictors(panel: pd.DataFrame, predictor_study):
    # The predictor columns and windows, derived here without dashboard.study.
    frame = panel.sort_values(["country_region", "date"]).assign(
        outcome=lambda f: f["confirmed"].astype(float),
        log_population=lambda f: np.log10(f["population"].astype(float)),
        case_growth=lambda f: np.log1p(f["confirmed"].astype(float)).groupby(f["country_region"]).diff(),
    )
    day = pd.Timestamp
    expected = [
        Predictor("log_population", day("2020-01-22"), day("2020-03-31")),
        Predictor("case_growth", day("2020-03-18"), day("2020-03-31")),
        *(Predictor("outcome", day(d), day(d)) for d in ("2020-03-25", "2020-03-18", "2020-03-11", "2020-03-04")),
    ]
    fit = fit_synthetic_control(
        frame, unit="country_region", time="date", outcome="outcome", treated="Vietnam",
        intervention=day("2020-04-01"), donors=PREDICTOR_DONORS, predictors=expected,
    )  # fmt: skip
    pd.testing.assert_series_equal(predictor_study.fit.weights, fit.weights, check_exact=True)
    np.testing.assert_array_equal(predictor_study.fit.v_weights.to_numpy(), fit.v_weights.to_numpy())
    assert list(predictor_study.fit.v_weights.index) == [
        "log₁₀ population", f"daily growth of log(1 + cases), last {GROWTH_DAYS} days",
        *(f"outcome {d} days before" for d in OUTCOME_LAGS_DAYS),
    ]  # fmt: skip
    # Vietnam's own values, from the CSVs: population 97,425,470; the growth over 18-31 March telescopes.
    vietnam = panel[panel["country_region"] == "Vietnam"].set_index("date")["confirmed"]
    treated = predictor_study.fit.balance["treated"].to_numpy()
    assert treated[0] == pytest.approx(np.log10(97_425_470), rel=1e-14)
    assert treated[1] == pytest.approx((np.log1p(vietnam["2020-03-31"]) - np.log1p(vietnam["2020-03-17"])) / 14)
    assert list(treated[2:]) == [vietnam[d] for d in ("2020-03-25", "2020-03-18", "2020-03-11", "2020-03-04")]
    assert predictor_study.fit.v_weights.sum() == pytest.approx(1.0)
    assert len(predictor_study.placebo.units) == 6


def test_balance_table_and_caption_of_a_study_with_predictors(panel: pd.DataFrame, predictor_study):
    table = balance_table(predictor_study)
    assert list(table.columns) == ["predictor", "v", "treated", "synthetic", "donor_mean"]
    assert table["v"].is_monotonic_decreasing and len(table) == 6
    balance = predictor_study.fit.balance
    assert table.set_index("predictor")["synthetic"].to_dict() == balance["synthetic"].to_dict()
    text = " ".join(caption(predictor_study))
    assert "reproduce Vietnam's 6 predictors (the balance table), each counted by its importance V" in text
    assert table.at[0, "predictor"] in text
    worse = [p for p, r in balance.iterrows() if abs(r.synthetic - r.treated) > abs(r.donor_mean - r.treated)]
    assert ("Matched worse than by the donors' plain average" in text) == bool(worse)
    plain = run_study(
        panel, treated="Vietnam", donors=["Thailand"], intervention="2020-04-01", outcome="confirmed", method="scm"
    )
    assert balance_table(plain).empty and "importance V" not in " ".join(caption(plain))


def test_population_predictors_leave_out_donors_without_a_population(panel: pd.DataFrame):
    study = run_study(
        panel, treated="Vietnam", donors=["China", "Thailand", "Malaysia"], intervention="2020-04-01",
        outcome="confirmed", method="scm", predictors=["population"],
    )  # fmt: skip
    assert study.excluded == {"China": "no known population"}
    assert list(study.fit.weights.index) == ["Thailand", "Malaysia"]
    with pytest.raises(PanelError, match=r"China has no known population, so 'Population \(log₁₀\)' cannot"):
        run_study(
            panel, treated="China", donors=["Thailand"], intervention="2020-04-01", outcome="confirmed",
            method="scm", predictors=["population"],
        )  # fmt: skip
    with pytest.raises(PanelError, match="predictor\\(s\\) not available: tests_per_million, gdp"):
        run_study(
            panel, treated="Vietnam", donors=["Thailand"], intervention="2020-04-01", outcome="confirmed",
            method="scm", predictors=["tests_per_million", "gdp"],
        )  # fmt: skip
    with pytest.raises(PanelError, match="predictors need the synthetic-control method"):
        run_study(
            panel, treated="Vietnam", donors=["Thailand"], intervention="2020-04-01", outcome="confirmed",
            method="ols", predictors=["case_growth"],
        )  # fmt: skip


def test_robustness_checks_are_the_in_time_placebo_and_leave_one_out(panel: pd.DataFrame, predictor_study):
    options = dict(treated="Vietnam", donors=PREDICTOR_DONORS, intervention="2020-04-01", outcome="confirmed",
                   method="scm", predictors=CHOSEN)  # fmt: skip
    assert default_placebo_date(pd.Timestamp("2020-04-01")) == pd.Timestamp("2020-03-11")

    robustness = run_robustness(panel, **options, placebo_date="2020-03-11")

    pd.testing.assert_series_equal(robustness.fit.weights, predictor_study.fit.weights, check_exact=True)
    (placebo,) = robustness.in_time.fits.itertuples(index=False)
    assert placebo.placebo_intervention == pd.Timestamp("2020-03-11")
    assert robustness.in_time.paths["date"].max() == pd.Timestamp("2020-03-31")
    positive = [d for d, w in predictor_study.fit.weights.items() if w > 0]
    table = leave_one_out_table(robustness)
    assert list(table["left_out"]) == ["none", *positive]
    assert table.at[0, "pre_rmspe"] == predictor_study.fit.pre_rmspe
    assert table.at[0, "last_gap"] == predictor_study.fit.gap.iloc[-1]
    first = robustness.leave_one_out.paths.query("left_out == @positive[0]")
    assert table.at[1, "last_gap"] == first["gap"].iloc[-1]
    text = " ".join(robustness_caption(robustness))
    assert "as if Vietnam had acted on 11 March 2020 (21 days early" in text
    assert f"without each of the {len(positive)} donors with a positive weight" in text
    assert format_value(placebo.post_rmspe, "cases") in text
