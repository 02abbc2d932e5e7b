"""The synthetic-control study behind the second page: outcomes, predictors, defaults, the fit, its robustness
checks and its plain-words caption.

Pure: takes the panel the warehouse returned (``country_region``, ``date``, ``confirmed``, ``population``)
and calls :mod:`etl_pipeline.analytics.synthetic_control`; no I/O, no Dash.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from dashboard.formatting import format_value, long_date
from etl_pipeline.analytics.synthetic_control import (
    Method,
    PanelError,
    PlaceboResult,
    Predictor,
    Refits,
    SyntheticControlResult,
    fit_synthetic_control,
    leave_one_out,
    placebo_in_time,
    placebo_test,
)

DEFAULT_TREATED = "Vietnam"
#: The other Southeast Asian countries of the data, as JHU spells them.
DEFAULT_DONORS = (
    "Brunei",
    "Burma",
    "Cambodia",
    "Indonesia",
    "Laos",
    "Malaysia",
    "Philippines",
    "Singapore",
    "Thailand",
    "Timor-Leste",
)
#: Vietnam's Directive 16 (nationwide social distancing) took effect on 1 April 2020.
DEFAULT_INTERVENTION = "2020-04-01"
DEFAULT_OUTCOME = "confirmed"
DEFAULT_METHOD: Method = "scm"

#: Placebos whose pre-period RMSPE exceeds this multiple of the treated country's are left out of the gap chart.
PLACEBO_FIT_LIMIT = 5

METHODS: dict[str, str] = {
    "scm": "Synthetic control (weights ≥ 0, summing to 1)",
    "ols": "Unconstrained regression (the original project's method)",
}


@dataclass(frozen=True)
class Outcome:
    label: str
    #: What one unit of the outcome is, for axis titles and the caption.
    unit: str
    compute: Callable[[pd.DataFrame], pd.Series]
    needs_population: bool = False


OUTCOMES: dict[str, Outcome] = {
    "confirmed": Outcome("Confirmed cases", "cases", lambda p: p["confirmed"].astype(float)),
    "log_confirmed": Outcome("log(1 + confirmed cases)", "log cases", lambda p: np.log1p(p["confirmed"].astype(float))),
    "confirmed_per_million": Outcome(
        "Confirmed cases per million people",
        "cases per million",
        lambda p: p["confirmed"] / p["population"] * 1e6,
        needs_population=True,
    ),
}


#: The growth predictor's window: the last this many days before the intervention.
GROWTH_DAYS = 14
#: The outcome-path predictor: the outcome this many days before the intervention.
OUTCOME_LAGS_DAYS = (7, 14, 21, 28)
#: The in-time placebo's default date: this many days before the intervention.
PLACEBO_LEAD_DAYS = 21


@dataclass(frozen=True)
class PredictorChoice:
    """A predictor (or group of predictors) the page offers, built from the warehouse's columns."""

    label: str
    #: ``build(first_day, intervention)`` -> the predictors, their windows before the intervention.
    build: Callable[[pd.Timestamp, pd.Timestamp], list[Predictor]] | None
    needs_population: bool = False
    #: Why the warehouse cannot give it (the page shows it disabled with this reason); None when it can.
    unavailable: str | None = None


def _days_before(intervention: pd.Timestamp, days: int) -> pd.Timestamp:
    return intervention - pd.Timedelta(days=days)


def _before(first_day: pd.Timestamp, intervention: pd.Timestamp) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The whole pre-period: the first day to the day before the intervention."""
    return first_day, _days_before(intervention, 1)


PREDICTORS: dict[str, PredictorChoice] = {
    "population": PredictorChoice(
        "Population (log₁₀)",
        lambda first, when: [Predictor("log_population", *_before(first, when), name="log₁₀ population")],
        needs_population=True,
    ),
    "cases_per_million": PredictorChoice(
        "Confirmed cases per million, pre-period mean",
        lambda first, when: [
            Predictor("confirmed_per_million", *_before(first, when), name="cases per million, pre-period mean")
        ],
        needs_population=True,
    ),
    "case_growth": PredictorChoice(
        f"Case growth in the {GROWTH_DAYS} days before the intervention",
        lambda first, when: [
            Predictor(
                "case_growth",
                _days_before(when, GROWTH_DAYS),
                _days_before(when, 1),
                name=f"daily growth of log(1 + cases), last {GROWTH_DAYS} days",
            )
        ],
    ),
    "outcome_lags": PredictorChoice(
        "The outcome 1, 2, 3 and 4 weeks before the intervention",
        lambda first, when: [
            Predictor("outcome", _days_before(when, d), _days_before(when, d), name=f"outcome {d} days before")
            for d in OUTCOME_LAGS_DAYS
        ],
    ),
    "outcome_mean": PredictorChoice(
        "The outcome's pre-period mean",
        lambda first, when: [Predictor("outcome", *_before(first, when), name="outcome, pre-period mean")],
    ),
    "tests_per_million": PredictorChoice(
        "Tests per million",
        None,
        unavailable="not in the warehouse: worldometer's 'Tests/1M pop' is not loaded into dim_country",
    ),
    "population_density": PredictorChoice(
        "Population density",
        None,
        unavailable="not in the warehouse: none of the sources gives a country's land area",
    ),
}


@dataclass(frozen=True)
class Study:
    """One study: the fit, its placebo test and what was left out of the donor pool and why."""

    treated: str
    donors: tuple[str, ...]
    #: Requested donors not used, with the reason.
    excluded: dict[str, str]
    intervention: pd.Timestamp
    outcome: str
    method: Method
    fit: SyntheticControlResult
    placebo: PlaceboResult
    #: Keys of :data:`PREDICTORS` chosen (empty: the weights follow the outcome path alone).
    predictors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Robustness:
    """The robustness checks of one study: its fit, the in-time placebo and the leave-one-out refits (tidy
    frames, see :func:`~etl_pipeline.analytics.synthetic_control.placebo_in_time` and ``leave_one_out``)."""

    treated: str
    outcome: str
    intervention: pd.Timestamp
    placebo_date: pd.Timestamp
    fit: SyntheticControlResult
    in_time: Refits
    leave_one_out: Refits


@dataclass(frozen=True)
class _Specification:
    """What :func:`run_study` and :func:`run_robustness` fit: the panel with every derived column, the fitting
    options, and the donor pool's exclusions."""

    frame: pd.DataFrame
    options: dict
    excluded: dict[str, str]


def study_units(treated: str, donors: Sequence[str]) -> list[str]:
    """The countries whose data the study needs: the treated country and its donors."""
    return [treated, *(d for d in donors if d != treated)]


def _derived_columns(panel: pd.DataFrame, outcome: str) -> pd.DataFrame:
    """The panel plus ``outcome`` and every predictor column: ``log_population``, ``confirmed_per_million`` and
    ``case_growth`` (the day's change of log(1 + confirmed), NaN on a country's first day)."""
    ordered = panel.sort_values(["country_region", "date"], ignore_index=True)
    log_cases = np.log1p(ordered["confirmed"].astype(float))
    return ordered.assign(
        outcome=OUTCOMES[outcome].compute(ordered),
        log_population=np.log10(ordered["population"].astype(float)),
        confirmed_per_million=ordered["confirmed"] / ordered["population"].astype(float) * 1e6,
        case_growth=log_cases.groupby(ordered["country_region"]).diff(),
    )


def _specify(
    panel: pd.DataFrame,
    *,
    treated: str,
    donors: Sequence[str],
    intervention: str | pd.Timestamp,
    outcome: str,
    method: Method,
    predictors: Sequence[str],
) -> _Specification:
    excluded: dict[str, str] = {}
    if treated in donors:
        excluded[treated] = "it is the treated country"
    known = set(panel["country_region"])
    missing = [d for d in donors if d not in known and d != treated]
    excluded.update({d: "no data in the warehouse" for d in missing})
    unknown = [key for key in predictors if key not in PREDICTORS or PREDICTORS[key].unavailable]
    if unknown:
        raise PanelError(f"predictor(s) not available: {', '.join(unknown)}")
    choices = [PREDICTORS[key] for key in predictors]
    if choices and method != "scm":
        raise PanelError("predictors need the synthetic-control method; the unconstrained regression ignores them")
    per_capita = [OUTCOMES[outcome].label] if OUTCOMES[outcome].needs_population else []
    per_capita += [c.label for c in choices if c.needs_population]
    if per_capita:
        without = set(panel.loc[panel["population"].isna(), "country_region"])
        if treated in without:
            raise PanelError(f"{treated} has no known population, so '{per_capita[0]}' cannot be computed")
        excluded.update({d: "no known population" for d in donors if d in without})
    pool = [d for d in donors if d not in excluded]
    if not pool:
        raise PanelError("the donor pool is empty: choose at least one donor country other than the treated one")

    frame = _derived_columns(panel, outcome)
    when = pd.Timestamp(intervention)
    first_day = frame.loc[frame["country_region"] == treated, "date"].min()
    specification = [p for c in choices for p in c.build(first_day, when)]
    options = dict(
        unit="country_region",
        time="date",
        outcome="outcome",
        treated=treated,
        intervention=when,
        donors=pool,
        method=method,
        predictors=specification,
    )
    return _Specification(frame=frame, options=options, excluded=excluded)


def run_study(
    panel: pd.DataFrame,
    *,
    treated: str,
    donors: Sequence[str],
    intervention: str | pd.Timestamp,
    outcome: str,
    method: Method,
    predictors: Sequence[str] = (),
) -> Study:
    """Fit the synthetic ``treated`` from ``donors`` on the days before ``intervention`` and run the in-space
    placebo test. With ``predictors`` (keys of :data:`PREDICTORS`) the weights match those predictors, weighted
    by the V that fits the outcome best before the intervention (Synth's nested optimisation). The treated
    country is never its own donor; for a per-capita outcome or predictor, countries without a population are
    excluded (and named in :attr:`Study.excluded`). Raises ``PanelError`` if no fit is possible."""
    spec = _specify(
        panel, treated=treated, donors=donors, intervention=intervention, outcome=outcome, method=method,
        predictors=predictors,
    )  # fmt: skip
    return Study(
        treated=treated,
        donors=tuple(spec.options["donors"]),
        excluded=spec.excluded,
        intervention=spec.options["intervention"],
        outcome=outcome,
        method=method,
        fit=fit_synthetic_control(spec.frame, **spec.options),
        placebo=placebo_test(spec.frame, **spec.options),
        predictors=tuple(predictors),
    )


def default_placebo_date(intervention: pd.Timestamp) -> pd.Timestamp:
    """Where the in-time placebo moves the intervention unless told otherwise: :data:`PLACEBO_LEAD_DAYS` earlier."""
    return _days_before(intervention, PLACEBO_LEAD_DAYS)


def run_robustness(
    panel: pd.DataFrame,
    *,
    treated: str,
    donors: Sequence[str],
    intervention: str | pd.Timestamp,
    outcome: str,
    method: Method,
    predictors: Sequence[str] = (),
    placebo_date: str | pd.Timestamp,
) -> Robustness:
    """The study's robustness checks (Abadie, Diamond & Hainmueller 2015): the in-time placebo at
    ``placebo_date`` (the whole specification moved back to it, fitted on the days before the real intervention)
    and leave-one-out (refitted without each donor of positive weight). Same arguments as :func:`run_study`;
    raises ``PanelError`` if a refit is impossible (e.g. the placebo date leaves no day before it)."""
    spec = _specify(
        panel, treated=treated, donors=donors, intervention=intervention, outcome=outcome, method=method,
        predictors=predictors,
    )  # fmt: skip
    when = pd.Timestamp(placebo_date)
    return Robustness(
        treated=treated,
        outcome=outcome,
        intervention=spec.options["intervention"],
        placebo_date=when,
        fit=fit_synthetic_control(spec.frame, **spec.options),
        in_time=placebo_in_time(spec.frame, placebo_interventions=[when], **spec.options),
        leave_one_out=leave_one_out(spec.frame, **spec.options),
    )


def study_title(treated: str, intervention: pd.Timestamp) -> str:
    if treated == DEFAULT_TREATED and intervention == pd.Timestamp(DEFAULT_INTERVENTION):
        return "What if Vietnam had not applied Directive 16?"
    return f"What if {treated} had not changed course on {long_date(intervention)}?"


def weights_table(study: Study) -> pd.DataFrame:
    """Donor weights, largest first (``donor``, ``weight``)."""
    weights = study.fit.weights.rename("weight").rename_axis("donor").reset_index()
    return weights.sort_values(["weight", "donor"], ascending=[False, True], ignore_index=True)


def placebo_table(study: Study) -> pd.DataFrame:
    """The placebo units ranked by post/pre RMSPE ratio (``country``, ``pre_rmspe``, ``post_rmspe``, ``ratio``,
    ``rank``), rank 1 first."""
    units = study.placebo.units.rename_axis("country").reset_index()
    return units.sort_values(["rank", "country"], ignore_index=True)


def balance_table(study: Study) -> pd.DataFrame:
    """The predictors, largest V first (``predictor``, ``v``, ``treated``, ``synthetic``, ``donor_mean``); empty
    without predictors."""
    fit = study.fit
    if fit.balance is None:
        return pd.DataFrame(columns=["predictor", "v", "treated", "synthetic", "donor_mean"])
    table = fit.balance.assign(v=fit.v_weights).rename_axis("predictor").reset_index()
    order = table.assign(position=range(len(table))).sort_values(["v", "position"], ascending=[False, True])
    return order[["predictor", "v", "treated", "synthetic", "donor_mean"]].reset_index(drop=True)


def leave_one_out_table(robustness: Robustness) -> pd.DataFrame:
    """The full fit, then each leave-one-out refit (``left_out``: 'none' for the full fit, ``pre_rmspe``,
    ``post_rmspe``, ``last_gap``: actual - synthetic on the last day)."""
    refits = robustness.leave_one_out
    last_day = refits.paths.groupby("left_out", sort=False)["gap"].last()
    rows = refits.fits[["left_out", "pre_rmspe", "post_rmspe"]].assign(
        left_out=lambda f: f["left_out"].astype(str), last_gap=last_day.to_numpy()
    )
    full = pd.DataFrame(
        {
            "left_out": ["none"],
            "pre_rmspe": [robustness.fit.pre_rmspe],
            "post_rmspe": [robustness.fit.post_rmspe],
            "last_gap": [float(robustness.fit.gap.iloc[-1])],
        }
    )
    return pd.concat([full, rows], ignore_index=True)


def comparable_placebos(study: Study) -> list[str]:
    """Donors whose own placebo fit before the intervention is at most :data:`PLACEBO_FIT_LIMIT` times worse
    than the treated country's (pre-period RMSPE). A donor the method cannot reproduce before the intervention
    has large gaps after it for that reason alone, which says nothing about the treated country (Abadie,
    Diamond & Hainmueller 2010 drop such placebos from the gap chart the same way)."""
    units = study.placebo.units
    limit = PLACEBO_FIT_LIMIT * units.at[study.treated, "pre_rmspe"]
    return [unit for unit in units.index if unit != study.treated and units.at[unit, "pre_rmspe"] <= limit]


def treated_rank(study: Study) -> str:
    """'rank 2 of 11', or why there is none (a NaN post/pre ratio: no post-period, or zero error throughout)."""
    rank = study.placebo.units.at[study.treated, "rank"]
    units = len(study.placebo.units)
    return (
        f"not ranked of {units}: its post/pre ratio is undefined" if math.isnan(rank) else f"rank {rank:.0f} of {units}"
    )


def _share(weights: pd.Series, shown: int = 3) -> str:
    top = weights[weights.abs() >= 0.005].sort_values(key=np.abs, ascending=False).head(shown)
    parts = [f"{name} ({w:.0%})" for name, w in top.items()]
    rest = len(weights[weights.abs() >= 0.005]) - len(top)
    return ", ".join(parts) + (f" and {rest} more" if rest > 0 else "")


def _predictor_weights(study: Study) -> str:
    """What V did, and which predictors the synthetic country matches worse than the donors' plain average."""
    fit = study.fit
    v, balance = fit.v_weights, fit.balance
    if v.max() == 1.0:
        text = (
            f"V puts all its weight on '{v.idxmax()}': among the donor mixes matching that predictor exactly is one "
            f"that follows {study.treated} before the intervention better than any weighting of several predictors "
            f"the search tried, so minimising the pre-period error leaves the other predictors unweighted."
        )
    else:
        text = f"V weights the predictors {_share(v)}."
    worse = [
        name for name, row in balance.iterrows() if abs(row.synthetic - row.treated) > abs(row.donor_mean - row.treated)
    ]
    if worse:
        text += f" Matched worse than by the donors' plain average: {', '.join(repr(w) for w in worse)}."
    return text


def caption(study: Study) -> list[str]:
    """Paragraphs saying, in plain words, what the figures show and how far they can be trusted."""
    fit, spec = study.fit, OUTCOMES[study.outcome]
    day = long_date(study.intervention)
    pre = fit.actual.index < study.intervention
    pre_mean = float(fit.actual[pre].abs().mean())
    post_gap = fit.gap[~pre]
    units = len(study.placebo.units)

    if fit.v_weights is None:
        mix = (
            f"The synthetic {study.treated} is a weighted mix of {_share(fit.weights)}, with weights chosen so that "
            f"its {spec.label.lower()} follow {study.treated}'s as closely as possible before {day}."
        )
    else:
        mix = (
            f"The synthetic {study.treated} is a weighted mix of {_share(fit.weights)}, with weights chosen to "
            f"reproduce {study.treated}'s {len(fit.v_weights)} predictors (the balance table), each counted by its "
            f"importance V; V itself is chosen so that the mix's {spec.label.lower()} follow {study.treated}'s as "
            f"closely as possible before {day} (Synth's nested optimisation). {_predictor_weights(study)}"
        )
    if study.method == "ols":
        mix += " These regression weights may be negative or sum to more than one, so the mix can extrapolate."
    fit_quality = (
        f"Before {day} the two lines differ by {format_value(fit.pre_rmspe, spec.unit)} (root mean squared), "
        f"{fit.pre_rmspe / pre_mean:.0%} of {study.treated}'s average level"
        if pre_mean > 0
        else f"Before {day} the two lines differ by {format_value(fit.pre_rmspe, spec.unit)} (root mean squared)"
    )
    if len(post_gap):
        fit_quality += (
            f"; after it, by {format_value(fit.post_rmspe, spec.unit)}, {format_value(fit.ratio)} times as "
            f"much. On the last day {study.treated} had {format_value(abs(float(post_gap.iloc[-1])), spec.unit)} "
            f"{'more' if post_gap.iloc[-1] >= 0 else 'fewer'} than its synthetic twin "
            f"(the gap is actual minus synthetic)."
        )
    else:
        fit_quality += "; there are no days after it in the data."
    placebo = (
        f"Placebo test: each of the {units} countries was refitted as if it had been treated on {day}. The grey "
        f"lines of the gap chart are the gaps of the {len(comparable_placebos(study))} donors it fitted before "
        f"{day} within {PLACEBO_FIT_LIMIT} times {study.treated}'s error; if {study.treated}'s gap does not stand "
        f"out from theirs, the method finds gaps as large where that intervention never happened, and the gap is "
        f"weak evidence. "
        f"{study.treated}'s post/pre ratio: {treated_rank(study)}, a p-value of {format_value(study.placebo.p_value)}. "
        f"With {units} countries the smallest possible p-value is {1 / units:.2f}, "
        f"so a small pool can never give strong evidence."
    )
    limits = (
        "Limits: the synthetic line is what the donors' mix did, not what would certainly have happened. "
        "Donors had their own lockdowns in the same weeks, so the gap compares policies rather than policy with none; "
        "confirmed cases follow testing, which differed widely between countries; and a poor fit before the "
        "intervention makes any gap after it meaningless."
    )
    paragraphs = [mix, fit_quality, placebo, limits]
    if study.excluded:
        left_out = "; ".join(f"{name}: {why}" for name, why in study.excluded.items())
        paragraphs.append(f"Left out of the donor pool — {left_out}.")
    return paragraphs


def robustness_caption(robustness: Robustness) -> list[str]:
    """Paragraphs saying what the in-time placebo and leave-one-out refits show."""
    spec = OUTCOMES[robustness.outcome]
    treated, day = robustness.treated, long_date(robustness.intervention)
    placebo_day = long_date(robustness.placebo_date)
    (placebo,) = robustness.in_time.fits.itertuples(index=False)
    lead = (robustness.intervention - robustness.placebo_date).days
    in_time = (
        f"In-time placebo: the study refitted as if {treated} had acted on {placebo_day} ({lead} days early, every "
        f"predictor window moved back as much), on the days before {day} only. Between the two dates the placebo gap "
        f"is {format_value(placebo.post_rmspe, spec.unit)} (root mean squared), {format_value(placebo.ratio)} times "
        f"its error before {placebo_day}; the real intervention's ratio is {format_value(robustness.fit.ratio)}. "
        f"A placebo ratio well below the real one supports the effect; a similar one means the method finds "
        f"'effects' where nothing happened."
    )
    table = leave_one_out_table(robustness)
    refits = table.iloc[1:]
    leave_out = (
        f"Leave-one-out: the study refitted without each of the {len(refits)} donors with a positive weight. On the "
        f"last day the gap is {format_value(float(table.at[0, 'last_gap']), spec.unit)} with every donor and between "
        f"{format_value(float(refits['last_gap'].min()), spec.unit)} and "
        f"{format_value(float(refits['last_gap'].max()), spec.unit)} without one. If leaving one donor out changes "
        f"the gap's size or sign a lot, the estimate hinges on that donor."
    )
    return [in_time, leave_out]
