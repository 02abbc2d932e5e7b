"""Synthetic-control study: 'what if Vietnam had not applied Directive 16?'

Every change of a control refits the study from the warehouse panel of the chosen countries (a few hundred
rows per country), runs the in-space placebo test and redraws all results at once. The robustness checks
(in-time placebo, leave-one-out) run on demand, with the button below the results.
"""

from __future__ import annotations

import pandas as pd
from dash import Dash, Input, Output, State, dcc, html

from dashboard.components import error_message, graph, loading, metric, page_header, table
from dashboard.context import DashboardContext
from dashboard.figures import gap_figure, placebo_ratio_figure, synthetic_figure
from dashboard.formatting import date_range, format_value
from dashboard.study import (
    DEFAULT_DONORS,
    DEFAULT_INTERVENTION,
    DEFAULT_METHOD,
    DEFAULT_OUTCOME,
    DEFAULT_TREATED,
    METHODS,
    OUTCOMES,
    PREDICTORS,
    Robustness,
    Study,
    balance_table,
    caption,
    default_placebo_date,
    leave_one_out_table,
    placebo_table,
    robustness_caption,
    run_robustness,
    run_study,
    study_title,
    study_units,
    treated_rank,
    weights_table,
)
from dashboard.study_figures import in_time_placebo_figure, leave_one_out_figure, v_weights_figure
from etl_pipeline.analytics.synthetic_control import PanelError

PATH = "/synthetic-control"
TITLE = "Synthetic control"

#: Height of each result graph.
_GRAPH_HEIGHT = "440px"
#: The controls that define a study, in the order of ``run_study``'s arguments after the panel.
_CONTROLS = (
    ("scm-treated", "value"),
    ("scm-donors", "value"),
    ("scm-intervention", "date"),
    ("scm-outcome", "value"),
    ("scm-method", "value"),
    ("scm-predictors", "value"),
)


def _control(label: str, control_id: str, control: object) -> html.Div:
    return html.Div([html.Label(label, htmlFor=control_id, className="control-label"), control], className="control")


def layout(context: DashboardContext, search: str | None = None) -> html.Div:
    """The page; ``search`` (the URL's query string) is not used: the study's state is its controls'."""
    warehouse = context.warehouse
    countries = warehouse.countries()["country_region"].tolist()
    dates = warehouse.dates()["date"]
    treated = DEFAULT_TREATED if DEFAULT_TREATED in countries else countries[0]
    controls = html.Div(
        [
            _control(
                "Treated country",
                "scm-treated",
                dcc.Dropdown(id="scm-treated", options=countries, value=treated, clearable=False),
            ),
            _control(
                "Donor pool",
                "scm-donors",
                dcc.Dropdown(
                    id="scm-donors", options=countries, multi=True, value=[d for d in DEFAULT_DONORS if d in countries]
                ),
            ),
            _control(
                "Intervention date",
                "scm-intervention",
                dcc.DatePickerSingle(
                    id="scm-intervention",
                    date=DEFAULT_INTERVENTION,
                    min_date_allowed=f"{dates.min():%Y-%m-%d}",
                    max_date_allowed=f"{dates.max():%Y-%m-%d}",
                    display_format="YYYY-MM-DD",
                ),
            ),
            _control(
                "Outcome",
                "scm-outcome",
                dcc.RadioItems(
                    id="scm-outcome",
                    value=DEFAULT_OUTCOME,
                    options=[{"label": o.label, "value": k} for k, o in OUTCOMES.items()],
                ),
            ),
            _control(
                "Method",
                "scm-method",
                dcc.RadioItems(
                    id="scm-method",
                    value=DEFAULT_METHOD,
                    options=[{"label": label, "value": k} for k, label in METHODS.items()],
                ),
            ),
            _control(
                "Predictors (none: match the outcome path)",
                "scm-predictors",
                dcc.Checklist(
                    id="scm-predictors",
                    value=[],
                    options=[
                        {
                            "label": html.Span(
                                choice.label + ("" if choice.unavailable is None else f" ({choice.unavailable})"),
                                title=choice.unavailable or choice.label,
                            ),
                            "value": key,
                            "disabled": choice.unavailable is not None,
                        }
                        for key, choice in PREDICTORS.items()
                    ],
                    labelStyle={"display": "block"},
                ),
            ),
        ],
        className="panel controls",
    )
    return html.Div(
        [
            page_header(
                "Synthetic-control study",
                "A synthetic control builds a 'twin' of the treated country from a weighted mix of donor countries "
                "that tracked it before the intervention; after it, the twin suggests what might have happened "
                f"without the intervention. Data: JHU CSSE confirmed cases and worldometer populations, "
                f"{date_range(dates.min(), dates.max())}.",
            ),
            html.Div(
                [controls, loading(html.Div(id="scm-results", className="results"), id="scm-loading")],
                className="study",
            ),
        ]
    )


def _predictors_view(study: Study) -> html.Div:
    """V and the balance table, when the study has predictors."""
    unit = OUTCOMES[study.outcome].unit
    balance = balance_table(study)
    return html.Div(
        [
            graph("scm-v-graph", height=_GRAPH_HEIGHT, figure=v_weights_figure(study, balance)),
            html.Div(
                [
                    html.H3(f"Predictor balance (loss W {format_value(study.fit.loss_w)}, on standardised predictors)"),
                    table(
                        balance,
                        [
                            ("predictor", "Predictor", str),
                            ("v", "V", "{:.3f}".format),
                            ("treated", study.treated, format_value),
                            ("synthetic", f"Synthetic {study.treated}", format_value),
                            ("donor_mean", "Donor mean", format_value),
                        ],
                        id="scm-balance",
                    ),
                    html.P(
                        f"Loss V (mean squared pre-period error of the outcome, what V minimises): "
                        f"{format_value(study.fit.loss_v, f'({unit})²')}.",
                        id="scm-loss-v",
                    ),
                ]
            ),
        ],
        className="two-graphs",
    )


def _robustness_controls(study: Study) -> html.Div:
    """The placebo date and the button that runs the in-time placebo and leave-one-out; results appear below."""
    return html.Div(
        [
            html.H3("Robustness checks"),
            html.Div(
                [
                    html.Label("In-time placebo date", htmlFor="scm-placebo-date", className="control-label"),
                    html.Div(
                        dcc.DatePickerSingle(
                            id="scm-placebo-date",
                            date=f"{default_placebo_date(study.intervention):%Y-%m-%d}",
                            max_date_allowed=f"{study.intervention - pd.Timedelta(days=1):%Y-%m-%d}",
                            display_format="YYYY-MM-DD",
                        ),
                        style={"width": "11rem"},
                    ),
                    html.Button(
                        "Run in-time placebo and leave-one-out", id="scm-robustness-run", className="play-button"
                    ),
                ],
                className="map-controls",
            ),
            loading(html.Div(id="scm-robustness"), id="scm-robustness-loading"),
        ]
    )


def robustness_view(robustness: Robustness) -> list:
    """The robustness checks' figures, table and caption."""
    unit = OUTCOMES[robustness.outcome].unit
    return [
        html.Div(
            [
                graph("scm-in-time-graph", height=_GRAPH_HEIGHT, figure=in_time_placebo_figure(robustness)),
                graph("scm-loo-graph", height=_GRAPH_HEIGHT, figure=leave_one_out_figure(robustness)),
            ],
            className="two-graphs",
        ),
        table(
            leave_one_out_table(robustness),
            [
                ("left_out", "Donor left out", str),
                ("pre_rmspe", f"Pre RMSPE ({unit})", format_value),
                ("post_rmspe", f"Post RMSPE ({unit})", format_value),
                ("last_gap", f"Gap on the last day ({unit})", format_value),
            ],
            id="scm-loo-table",
        ),
        html.Div([html.P(p) for p in robustness_caption(robustness)], id="scm-robustness-caption", className="caption"),
    ]


def results_view(study: Study) -> list:
    """Everything the page shows about one study."""
    spec = OUTCOMES[study.outcome]
    fit = study.fit
    placebo = placebo_table(study)
    return [
        html.H2(study_title(study.treated, study.intervention), id="scm-title"),
        html.Div(
            [
                metric("Pre-period RMSPE", format_value(fit.pre_rmspe, spec.unit), id="scm-pre-rmspe"),
                metric("Post-period RMSPE", format_value(fit.post_rmspe, spec.unit), id="scm-post-rmspe"),
                metric("Post/pre RMSPE ratio", format_value(fit.ratio), id="scm-ratio"),
                metric(
                    "Placebo p-value",
                    f"{format_value(study.placebo.p_value)} ({treated_rank(study)})",
                    id="scm-p-value",
                ),
            ],
            className="metrics",
        ),
        html.Div(
            [
                graph("scm-synthetic-graph", height=_GRAPH_HEIGHT, figure=synthetic_figure(study)),
                graph("scm-gap-graph", height=_GRAPH_HEIGHT, figure=gap_figure(study)),
            ],
            className="two-graphs",
        ),
        html.Div([html.P(paragraph) for paragraph in caption(study)], id="scm-caption", className="caption"),
        html.Div(
            [
                html.Div(
                    [
                        html.H3("Donor weights"),
                        table(
                            weights_table(study),
                            [("donor", "Donor", str), ("weight", "Weight", "{:.3f}".format)],
                            id="scm-weights",
                        ),
                    ],
                ),
                html.Div(
                    [
                        html.H3("Placebo test: every country refitted as if treated"),
                        table(
                            placebo,
                            [
                                ("country", "Country", str),
                                ("rank", "Rank", "{:.0f}".format),
                                ("pre_rmspe", f"Pre RMSPE ({spec.unit})", format_value),
                                ("post_rmspe", f"Post RMSPE ({spec.unit})", format_value),
                                ("ratio", "Post/pre", format_value),
                            ],
                            id="scm-placebo-table",
                        ),
                    ]
                ),
                graph("scm-placebo-graph", height=_GRAPH_HEIGHT, figure=placebo_ratio_figure(study, placebo)),
            ],
            className="three-columns",
        ),
        *([_predictors_view(study)] if study.predictors else []),
        _robustness_controls(study),
    ]


def register_callbacks(app: Dash, context: DashboardContext) -> None:
    warehouse = context.warehouse

    def specification(treated, donors, intervention, outcome, method, predictors) -> dict:
        donors = donors or []
        return dict(
            panel=warehouse.study_panel(study_units(treated, donors)),
            treated=treated,
            donors=donors,
            intervention=intervention,
            outcome=outcome,
            method=method,
            predictors=predictors or [],
        )

    @app.callback(Output("scm-results", "children"), *(Input(*c) for c in _CONTROLS))
    def refit(*values):
        try:
            study = run_study(**specification(*values))
        except PanelError as exc:
            return error_message(f"No fit possible: {exc}", id="scm-error")
        return results_view(study)

    @app.callback(
        Output("scm-robustness", "children"),
        Input("scm-robustness-run", "n_clicks"),
        State("scm-placebo-date", "date"),
        *(State(*c) for c in _CONTROLS),
        prevent_initial_call=True,
    )
    def check_robustness(_clicks, placebo_date: str, *values):
        try:
            robustness = run_robustness(**specification(*values), placebo_date=placebo_date)
        except PanelError as exc:
            return error_message(f"No robustness check possible: {exc}", id="scm-robustness-error")
        return robustness_view(robustness)
