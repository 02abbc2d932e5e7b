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
#: Natural Earth's 110m country borders, bundled in ``dashboard/assets`` (see its README): the map's outlines.
COUNTRY_OUTLINES_ASSET = "countries-110m.geojson"

_COLORS = {
    "actual": "#1f4e79",
    "synthetic": "#d95f02",
    "confirmed": "#1f4e79",
    "deaths": "#b2182b",
    "recovered": "#1b7837",
    "active": "#762a83",
    "placebo": "#b8b8b8",
}
#: Pixels that Plotly's mode bar (top right, shown on hover) takes: titles start below it, never under it.
MODEBAR_PX = 30
#: Pixels for the title's line, for a subtitle's, and between them and the plot.
_TITLE_PX, _SUBTITLE_PX, _TITLE_GAP_PX = 24, 18, 10
#: Pixels below the plot for the x axis' tick labels (two lines on a date axis), its title, and a legend row.
TICKS_PX, AXIS_TITLE_PX, LEGEND_PX = 40, 25, 30
#: A horizontal legend pinned to the bottom of the figure, under the x axis and its title whatever the height
#: (a legend placed in plot fractions, e.g. ``y=-0.2``, moves onto the axis title when the graph is short).
_LEGEND_BELOW = {"orientation": "h", "x": 0, "xanchor": "left", "y": 0, "yref": "container", "yanchor": "bottom"}


def title_layout(text: str, subtitle: str | None = None) -> dict:
    """A one-line title left-aligned at the top of the figure, pushed below the mode bar, and Plotly's own
    subtitle under it; :func:`top_margin` leaves room for both above the plot. (A ``<br><sup>`` second line
    instead is misplaced by Plotly, onto the mode bar or the plot.)"""
    title = {"text": text, "x": 0, "xanchor": "left", "y": 1, "yref": "container", "yanchor": "top"}
    title["pad"] = {"t": MODEBAR_PX, "l": 12}
    if subtitle:
        title["subtitle"] = {"text": subtitle}
    return title


def top_margin(subtitle: str | None = None) -> int:
    """Room above the plot for the mode bar, the title and the subtitle (if any)."""
    return MODEBAR_PX + _TITLE_PX + (_SUBTITLE_PX if subtitle else 0) + _TITLE_GAP_PX


def chart_layout(title: str, subtitle: str | None = None, *, axis_title: bool, legend: bool) -> dict:
    """Title, margins and legend of a chart laid out so that nothing overlaps or is cut: the title below the mode
    bar, the x axis' tick labels and title (if ``axis_title``) within the bottom margin, the legend (if
    ``legend``) below them."""
    bottom = TICKS_PX + (AXIS_TITLE_PX if axis_title else 0) + (LEGEND_PX if legend else 0)
    layout = {
        "title": title_layout(title, subtitle),
        "margin": {"l": 60, "r": 20, "t": top_margin(subtitle), "b": bottom},
        "showlegend": legend,
    }
    if legend:
        layout["legend"] = _LEGEND_BELOW
    return layout


def _location_labels(locations: pd.DataFrame) -> pd.Series:
    """'Province, Country' for a province row, 'Country' for a country-level row."""
    province = locations["province_state"].fillna("")
    return (province + ", " + locations["country_region"]).where(province != "", locations["country_region"])


def outline_layer(outlines_url: str) -> dict:
    """Country borders as a thin line layer under the density layer, from the GeoJSON at ``outlines_url`` (served
    by the app itself), so that the map reads as a map without a basemap: offline, with ``white-bg``, or when the
    basemap's tiles cannot be fetched. The browser fetches the file once, not with every frame."""
    return {
        "sourcetype": "geojson",
        "source": outlines_url,
        "type": "line",
        "color": "#8a949e",
        "line": {"width": 0.7},
        "below": "traces",
    }


def spread_map_figure(
    locations: pd.DataFrame, *, max_confirmed: int, map_style: str, outlines_url: str, title: str
) -> go.Figure:
    """Density map of confirmed cases per location (rows of :meth:`Warehouse.locations_on`) over country outlines.

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
        title=title_layout(title),
        map={"style": map_style, "center": MAP_CENTER, "zoom": MAP_ZOOM, "layers": [outline_layer(outlines_url)]},
        margin={"l": 0, "r": 0, "t": top_margin(), "b": 0},
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
        **chart_layout(f"{country}: cumulative counts", axis_title=False, legend=True),
        yaxis={"title": {"text": "people"}, "tickformat": ",d"},
        hovermode="x unified",
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
        **chart_layout("Continent totals", axis_title=True, legend=True),
        barmode="group",
        xaxis={"title": {"text": "people"}, "tickformat": ",d"},
        yaxis={"automargin": True},
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
        **chart_layout(f"{study.treated}: actual vs synthetic", axis_title=False, legend=True),
        yaxis={"title": {"text": spec.label}},
        hovermode="x unified",
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
        **chart_layout(
            "Gap: actual − synthetic",
            f"grey: {len(shown)} of {len(gaps.columns) - 1} placebos, pre-period error ≤ {PLACEBO_FIT_LIMIT}× "
            f"{study.treated}'s",
            axis_title=False,
            legend=True,
        ),
        yaxis={"title": {"text": spec.unit}},
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
        **chart_layout(
            "Post/pre RMSPE ratio", f"p = {study.placebo.p_value:.2f}", axis_title=True, legend=False
        ),
        xaxis={"title": {"text": "post/pre RMSPE"}},
        yaxis={"automargin": True},
    )
    return figure
