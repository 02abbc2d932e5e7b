"""Figure builders: DataFrames and study results in, Plotly figures out. Pure — no queries, no Dash."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.formatting import format_value
from dashboard.study import OUTCOMES, PLACEBO_FIT_LIMIT, Study, comparable_placebos

#: Where the spread map opens: the whole inhabited world at zoom 0.6.
MAP_CENTER = {"lat": 20.0, "lon": 10.0}
MAP_ZOOM = 0.6
MAP_RADIUS_PX = 18

_COLORS = {
    "actual": "#1f4e79",
    "synthetic": "#d95f02",
    "confirmed": "#1f4e79",
    "deaths": "#b2182b",
    "recovered": "#1b7837",
    "active": "#762a83",
    "placebo": "#b8b8b8",
}
_MARGIN = {"l": 60, "r": 20, "t": 50, "b": 40}


def _location_labels(locations: pd.DataFrame) -> pd.Series:
    """'Province, Country' for a province row, 'Country' for a country-level row."""
    province = locations["province_state"].fillna("")
    return (province + ", " + locations["country_region"]).where(province != "", locations["country_region"])


def spread_map_figure(locations: pd.DataFrame, *, max_confirmed: int, map_style: str, title: str) -> go.Figure:
    """Density map of confirmed cases per location (rows of :meth:`Warehouse.locations_on`).

    Intensity is ``log10(1 + confirmed)`` on a scale fixed by ``max_confirmed`` (the largest value of any day),
    so that frames compare and a country with 100 cases still shows next to one with millions; the hover
    shows the raw counts. Locations without cases or coordinates are left out.
    """
    shown = locations[(locations["confirmed"] > 0) & locations["latitude"].notna() & locations["longitude"].notna()]
    shown = shown.assign(
        label=_location_labels(shown),
        who_region=shown["who_region"].fillna("unknown"),
    )
    top = max(1.0, math.log10(1 + max_confirmed))
    ticks = list(range(0, math.ceil(top) + 1))
    figure = go.Figure(
        go.Densitymap(
            lat=shown["latitude"],
            lon=shown["longitude"],
            z=np.log10(1 + shown["confirmed"].astype(float)),
            zmin=0,
            zmax=top,
            radius=MAP_RADIUS_PX,
            colorscale="YlOrRd",
            customdata=shown[["label", "who_region", "confirmed", "deaths"]].to_numpy(),
            hovertemplate=(
                "<b>%{customdata[0]}</b><br>WHO region: %{customdata[1]}<br>"
                "Confirmed: %{customdata[2]:,}<br>Deaths: %{customdata[3]:,}<extra></extra>"
            ),
            colorbar={
                "title": {"text": "Confirmed<br>cases"},
                "tickvals": ticks,
                "ticktext": [f"{10**t:,}" for t in ticks],
            },
        )
    )
    figure.update_layout(
        title={"text": title},
        map={"style": map_style, "center": MAP_CENTER, "zoom": MAP_ZOOM},
        margin={"l": 0, "r": 0, "t": 40, "b": 0},
        # Keep the user's pan and zoom when the date changes.
        uirevision="spread-map",
    )
    return figure


def trend_figure(trend: pd.DataFrame, country: str) -> go.Figure:
    """Cumulative confirmed, deaths, recovered and active cases of one country (rows of ``country_trend``)."""
    figure = go.Figure(
        [
            go.Scatter(
                x=trend["date"],
                y=trend[column],
                name=column.capitalize(),
                mode="lines",
                line={"color": _COLORS[column]},
            )
            for column in ("confirmed", "deaths", "recovered", "active")
        ]
    )
    figure.update_layout(
        title={"text": f"{country}: cumulative counts"},
        yaxis={"title": {"text": "people"}, "tickformat": ",d"},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.15},
        margin=_MARGIN,
    )
    return figure


def continent_figure(continents: pd.DataFrame) -> go.Figure:
    """Confirmed, recovered and deaths per continent (rows of ``covid19_continent_stats``), as horizontal bars."""
    ordered = continents.sort_values("total_confirmed")
    extra = ordered[["number_of_countries", "population"]].fillna(0).to_numpy()
    figure = go.Figure(
        [
            go.Bar(
                y=ordered["continent"],
                x=ordered[f"total_{measure}"],
                name=measure.capitalize(),
                orientation="h",
                marker={"color": _COLORS[measure]},
                customdata=extra,
                hovertemplate=(
                    "%{y}: %{x:,} " + measure + "<br>%{customdata[0]} countries, population %{customdata[1]:,}"
                    "<extra></extra>"
                ),
            )
            for measure in ("confirmed", "recovered", "deaths")
        ]
    )
    figure.update_layout(
        title={"text": "Continent totals"},
        barmode="group",
        xaxis={"title": {"text": "people"}, "tickformat": ",d"},
        legend={"orientation": "h", "y": -0.2},
        margin=_MARGIN,
    )
    return figure


def _intervention_line(figure: go.Figure, study: Study) -> None:
    figure.add_vline(x=study.intervention, line={"dash": "dash", "color": "#555"})
    figure.add_annotation(
        x=study.intervention, y=1, yref="paper", text=" intervention", showarrow=False, xanchor="left", yanchor="top"
    )


def synthetic_figure(study: Study) -> go.Figure:
    """The treated country's outcome and its synthetic counterpart."""
    spec = OUTCOMES[study.outcome]
    fit = study.fit
    figure = go.Figure(
        [
            go.Scatter(
                x=fit.actual.index,
                y=fit.actual,
                name=study.treated,
                mode="lines",
                line={"color": _COLORS["actual"], "width": 3},
            ),
            go.Scatter(
                x=fit.synthetic.index,
                y=fit.synthetic,
                name=f"Synthetic {study.treated}",
                mode="lines",
                line={"color": _COLORS["synthetic"], "dash": "dot", "width": 3},
            ),
        ]
    )
    _intervention_line(figure, study)
    figure.update_layout(
        title={"text": f"{study.treated}: actual vs synthetic"},
        yaxis={"title": {"text": spec.label}},
        hovermode="x unified",
        legend={"orientation": "h", "y": -0.15},
        margin=_MARGIN,
    )
    return figure


def gap_figure(study: Study) -> go.Figure:
    """Actual minus synthetic for the treated country, over the placebo gaps of the comparable donors in grey."""
    spec = OUTCOMES[study.outcome]
    gaps = study.placebo.gaps
    shown = comparable_placebos(study)
    traces = [
        go.Scatter(
            x=gaps.index,
            y=gaps[unit],
            name=unit,
            mode="lines",
            line={"color": _COLORS["placebo"], "width": 1},
            legendgroup="placebo",
            showlegend=False,
            hovertemplate=f"{unit}: %{{y:,.2f}}<extra></extra>",
        )
        for unit in shown
    ]
    traces.append(
        go.Scatter(
            x=study.fit.gap.index,
            y=study.fit.gap,
            name=f"{study.treated} (gap)",
            mode="lines",
            line={"color": _COLORS["actual"], "width": 3},
        )
    )
    figure = go.Figure(traces)
    figure.add_hline(y=0, line={"color": "#888", "width": 1})
    _intervention_line(figure, study)
    figure.update_layout(
        title={
            "text": f"Gap: actual − synthetic<br><sup>grey: {len(shown)} of {len(gaps.columns) - 1} placebos, those "
            f"fitting the pre-period within {PLACEBO_FIT_LIMIT}× {study.treated}'s error</sup>"
        },
        yaxis={"title": {"text": spec.unit}},
        legend={"orientation": "h", "y": -0.15},
        margin={**_MARGIN, "t": 70},
    )
    return figure


def placebo_ratio_figure(study: Study, table: pd.DataFrame) -> go.Figure:
    """Post/pre RMSPE ratio of each placebo unit (``placebo_table`` rows), the treated country highlighted.

    An infinite ratio (a perfect pre-period fit) is drawn 10% beyond the largest finite one and labelled '∞'.
    """
    ordered = table.iloc[::-1]
    finite = ordered["ratio"][np.isfinite(ordered["ratio"])]
    beyond = 1.1 * finite.max() if len(finite) else 1.0
    colors = [_COLORS["actual"] if c == study.treated else _COLORS["placebo"] for c in ordered["country"]]
    figure = go.Figure(
        go.Bar(
            y=ordered["country"],
            x=ordered["ratio"].replace(math.inf, beyond),
            text=[format_value(r) for r in ordered["ratio"]],
            orientation="h",
            marker={"color": colors},
            hovertemplate="%{y}: ratio %{text}<extra></extra>",
        )
    )
    figure.update_layout(
        title={"text": f"Post/pre RMSPE ratio (p = {study.placebo.p_value:.2f})"},
        xaxis={"title": {"text": "post-period RMSPE / pre-period RMSPE"}},
        margin=_MARGIN,
    )
    return figure
