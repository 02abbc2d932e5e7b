"""Synthetic-control study: 'what if Vietnam had not applied Directive 16?'

Every change of a control refits the study from the warehouse panel of the chosen countries (a few hundred
rows per country), runs the in-space placebo test and redraws all results at once.
"""

from __future__ import annotations

from dash import Dash, Input, Output, dcc, html

from dashboard.components import error_message, graph, loading, metric, page_header, table
from dashboard.context import DashboardContext
from dashboard.figures import gap_figure, placebo_ratio_figure, synthetic_figure
from dashboard.formatting import format_value
from dashboard.study import (
    DEFAULT_DONORS,
    DEFAULT_INTERVENTION,
    DEFAULT_METHOD,
    DEFAULT_OUTCOME,
    DEFAULT_TREATED,
    METHODS,
    OUTCOMES,
    Study,
    caption,
    placebo_table,
    run_study,
    study_title,
    study_units,
    treated_rank,
    weights_table,
)
from etl_pipeline.analytics.synthetic_control import PanelError

PATH = "/synthetic-control"
TITLE = "Synthetic control"

#: Height of each result graph.
_GRAPH_HEIGHT = "440px"


def _control(label: str, control_id: str, control: object) -> html.Div:
    return html.Div([html.Label(label, htmlFor=control_id, className="control-label"), control], className="control")


def layout(context: DashboardContext) -> html.Div:
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
        ],
        className="panel controls",
    )
    return html.Div(
        [
            page_header(
                "Synthetic-control study",
                "A synthetic control builds a 'twin' of the treated country from a weighted mix of donor countries "
                "that tracked it before the intervention; after it, the twin suggests what might have happened "
                "without the intervention.",
            ),
            html.Div(
                [controls, loading(html.Div(id="scm-results", className="results"), id="scm-loading")],
                className="study",
            ),
        ]
    )


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
    ]


def register_callbacks(app: Dash, context: DashboardContext) -> None:
    warehouse = context.warehouse

    @app.callback(
        Output("scm-results", "children"),
        Input("scm-treated", "value"),
        Input("scm-donors", "value"),
        Input("scm-intervention", "date"),
        Input("scm-outcome", "value"),
        Input("scm-method", "value"),
    )
    def refit(treated: str, donors: list[str] | None, intervention: str, outcome: str, method: str):
        donors = donors or []
        panel = warehouse.study_panel(study_units(treated, donors))
        try:
            study = run_study(
                panel, treated=treated, donors=donors, intervention=intervention, outcome=outcome, method=method
            )
        except PanelError as exc:
            return error_message(f"No fit possible: {exc}", id="scm-error")
        return results_view(study)
