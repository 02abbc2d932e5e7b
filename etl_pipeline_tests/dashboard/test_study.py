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
    caption,
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
    fit_synthetic_control,
    placebo_test,
)
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
