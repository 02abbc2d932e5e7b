"""Figures of the study page's predictors and robustness checks: results in, Plotly figures out. Pure."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from dashboard.figures import _COLORS, chart_layout
from dashboard.formatting import long_date
from dashboard.study import OUTCOMES, Robustness, Study


def _vertical_line(figure: go.Figure, day: pd.Timestamp, text: str) -> None:
    figure.add_vline(x=day, line={"dash": "dash", "color": "#555"})
    figure.add_annotation(x=day, y=1, yref="paper", text=f" {text}", showarrow=False, xanchor="left", yanchor="top")


def v_weights_figure(study: Study, balance: pd.DataFrame) -> go.Figure:
    """V, the weight of each predictor (``balance_table`` rows, largest first), as horizontal bars."""
    ordered = balance.iloc[::-1]
    figure = go.Figure(
        go.Bar(
            y=ordered["predictor"],
            x=ordered["v"],
            orientation="h",
            marker={"color": _COLORS["actual"]},
            text=[f"{v:.0%}" for v in ordered["v"]],
            hovertemplate="%{y}: V = %{x:.3f}<extra></extra>",
        )
    )
    figure.update_layout(
        **chart_layout(f"Predictor weights V ({len(balance)} predictors)", axis_title=True, legend=False),
        xaxis={"title": {"text": "V (sums to 1)"}, "range": [0, 1.05], "tickformat": ".0%"},
        yaxis={"automargin": True},
    )
    return figure


def in_time_placebo_figure(robustness: Robustness) -> go.Figure:
    """The treated country and its synthetic twin refitted as if the intervention had come at the placebo date,
    up to the real intervention."""
    paths = robustness.in_time.paths
    figure = go.Figure(
        [
            go.Scatter(
                x=paths["date"],
                y=paths["actual"],
                name=robustness.treated,
                mode="lines",
                line={"color": _COLORS["actual"], "width": 3},
            ),
            go.Scatter(
                x=paths["date"],
                y=paths["synthetic"],
                name=f"Synthetic {robustness.treated} (placebo fit)",
                mode="lines",
                line={"color": _COLORS["synthetic"], "dash": "dot", "width": 3},
            ),
        ]
    )
    _vertical_line(figure, robustness.placebo_date, "placebo")
    figure.update_layout(
        **chart_layout(
            f"In-time placebo: as if on {long_date(robustness.placebo_date)}",
            f"data before {long_date(robustness.intervention)} only",
            axis_title=False,
            legend=True,
        ),
        yaxis={"title": {"text": OUTCOMES[robustness.outcome].label}},
        hovermode="x unified",
    )
    return figure


def leave_one_out_figure(robustness: Robustness) -> go.Figure:
    """The treated country, its synthetic twin, and in grey the twin refitted without each positive-weight donor."""
    fit, paths = robustness.fit, robustness.leave_one_out.paths
    traces = [
        go.Scatter(
            x=group["date"],
            y=group["synthetic"],
            name=f"without {left_out}",
            mode="lines",
            line={"color": _COLORS["placebo"], "width": 1.5},
            legendgroup="leave-one-out",
            showlegend=False,
            hovertemplate=f"without {left_out}: %{{y:,.2f}}<extra></extra>",
        )
        for left_out, group in paths.groupby("left_out", sort=False)
    ]
    traces += [
        go.Scatter(
            x=fit.actual.index,
            y=fit.actual,
            name=robustness.treated,
            mode="lines",
            line={"color": _COLORS["actual"], "width": 3},
        ),
        go.Scatter(
            x=fit.synthetic.index,
            y=fit.synthetic,
            name=f"Synthetic {robustness.treated}",
            mode="lines",
            line={"color": _COLORS["synthetic"], "dash": "dot", "width": 3},
        ),
    ]
    figure = go.Figure(traces)
    _vertical_line(figure, robustness.intervention, "intervention")
    figure.update_layout(
        **chart_layout(
            "Leave-one-out",
            f"grey: refitted without each of the {len(robustness.leave_one_out.fits)} donors with positive weight",
            axis_title=False,
            legend=True,
        ),
        yaxis={"title": {"text": OUTCOMES[robustness.outcome].label}},
    )
    return figure
