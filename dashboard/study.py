"""The synthetic-control study behind the second page: outcomes, defaults, the fit and its plain-words caption.

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
    SyntheticControlResult,
    fit_synthetic_control,
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


def study_units(treated: str, donors: Sequence[str]) -> list[str]:
    """The countries whose data the study needs: the treated country and its donors."""
    return [treated, *(d for d in donors if d != treated)]


def run_study(
    panel: pd.DataFrame,
    *,
    treated: str,
    donors: Sequence[str],
    intervention: str | pd.Timestamp,
    outcome: str,
    method: Method,
) -> Study:
    """Fit the synthetic ``treated`` from ``donors`` on the days before ``intervention`` and run the in-space
    placebo test. The treated country is never its own donor; for a per-capita outcome, countries without a
    population are excluded (and named in :attr:`Study.excluded`). Raises ``PanelError`` if no fit is possible."""
    spec = OUTCOMES[outcome]
    excluded: dict[str, str] = {}
    if treated in donors:
        excluded[treated] = "it is the treated country"
    known = set(panel["country_region"])
    missing = [d for d in donors if d not in known and d != treated]
    excluded.update({d: "no data in the warehouse" for d in missing})
    if spec.needs_population:
        unknown = set(panel.loc[panel["population"].isna(), "country_region"])
        if treated in unknown:
            raise PanelError(f"{treated} has no known population, so cases per million cannot be computed")
        excluded.update({d: "no known population" for d in donors if d in unknown})
    pool = tuple(d for d in donors if d not in excluded)
    if not pool:
        raise PanelError("the donor pool is empty: choose at least one donor country other than the treated one")

    frame = panel.assign(outcome=spec.compute(panel))
    when = pd.Timestamp(intervention)
    options = dict(
        unit="country_region",
        time="date",
        outcome="outcome",
        treated=treated,
        intervention=when,
        donors=list(pool),
        method=method,
    )
    return Study(
        treated=treated,
        donors=pool,
        excluded=excluded,
        intervention=when,
        outcome=outcome,
        method=method,
        fit=fit_synthetic_control(frame, **options),
        placebo=placebo_test(frame, **options),
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


def caption(study: Study) -> list[str]:
    """Paragraphs saying, in plain words, what the figures show and how far they can be trusted."""
    fit, spec = study.fit, OUTCOMES[study.outcome]
    day = long_date(study.intervention)
    pre = fit.actual.index < study.intervention
    pre_mean = float(fit.actual[pre].abs().mean())
    post_gap = fit.gap[~pre]
    units = len(study.placebo.units)

    mix = (
        f"The synthetic {study.treated} is a weighted mix of {_share(fit.weights)}, with weights chosen so that "
        f"its {spec.label.lower()} follow {study.treated}'s as closely as possible before {day}."
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
