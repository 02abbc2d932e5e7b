"""Figure builders: DataFrames and study results in, Plotly figures out. Pure — no queries, no Dash."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from dashboard.formatting import format_value
from dashboard.measures import MapMeasure, trend_column, trend_unit
from dashboard.view_state import TrendView
from dashboard.study import OUTCOMES, PLACEBO_FIT_LIMIT, Study, comparable_placebos

#: Where the spread map opens: the whole inhabited world at zoom 0.6.
MAP_CENTER = {"lat": 20.0, "lon": 10.0}
MAP_ZOOM = 0.6
MAP_RADIUS_PX = 18
#: Diameter of a country's marker on the maps of per-country measures.
COUNTRY_MARKER_PX = 11
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
#: Colours of the countries compared on one trend chart: Tableau 10's first eight, distinct from each other.
_SERIES_COLORS = ("#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#9c755f")
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


def map_rows(rows: pd.DataFrame, measure: MapMeasure) -> pd.DataFrame:
    """The rows the map draws for ``measure`` (rows of :meth:`Warehouse.locations_on` or
    :meth:`Warehouse.countries_on`): ``label``, ``country_region``, ``province_state`` ('' at country level),
    ``latitude``, ``longitude``, ``who_region``, ``value``, ``confirmed``, ``deaths``, ``population`` (NULL at
    location level). Left out: no coordinates, no value, and on a log scale a value of 0 or less (no cases). This
    is also what the map's CSV download holds."""
    rows = rows.assign(province_state=rows.get("province_state", ""), population=rows.get("population"))
    value = rows[measure.column]
    keep = (rows["latitude"].notna() & rows["longitude"].notna() & value.notna()
            & (value > 0 if measure.log else True) & (rows["confirmed"] >= measure.min_confirmed))
    shown = rows[keep]
    return pd.DataFrame({
        "label": _location_labels(shown),
        "country_region": shown["country_region"],
        "province_state": shown["province_state"],
        "latitude": shown["latitude"],
        "longitude": shown["longitude"],
        "who_region": shown["who_region"].fillna("unknown"),
        "value": shown[measure.column].astype(float),
        "confirmed": shown["confirmed"],
        "deaths": shown["deaths"],
        "population": shown["population"].astype("Int64"),
    }).reset_index(drop=True)


def spread_map_figure(
    rows: pd.DataFrame, measure: MapMeasure, *, max_value: float, map_style: str, outlines_url: str, title: str
) -> go.Figure:
    """Map of ``measure`` (rows of :func:`map_rows`) over country outlines: a density of the locations' counts,
    or one coloured marker per country for a per-country measure (a rate does not add up with its neighbours').

    The colour scale is fixed by ``max_value`` (the measure's largest value on any day), so that frames compare;
    on a log scale the intensity is ``log10(1 + value)``, so that a country with 100 cases still shows next to
    one with millions. The hover shows the value with its unit, the counts and, per country, the population the
    rate used.
    """
    if measure.log:
        z, top = np.log10(1 + rows["value"]), max(1.0, math.log10(1 + max_value))
        ticks = list(range(0, math.ceil(top) + 1))
        colorbar_ticks = {"tickvals": ticks, "ticktext": [f"{10**t:,}" for t in ticks]}
    else:
        z, top = rows["value"], max_value or 1.0
        colorbar_ticks = {"tickformat": measure.hover_format}
    population = rows["population"].map(lambda p: "n/a" if pd.isna(p) else f"{int(p):,}")
    hover = (f"<b>%{{customdata[0]}}</b><br>WHO region: %{{customdata[1]}}<br>{measure.label}: "
             f"%{{customdata[2]:{measure.hover_format}}} {measure.unit}".rstrip()
             + "<br>Confirmed: %{customdata[3]:,}<br>Deaths: %{customdata[4]:,}")
    if measure.level == "country":
        hover += "<br>Population (worldometer): %{customdata[5]}"
    customdata = np.column_stack([rows[["label", "who_region", "value", "confirmed", "deaths"]].to_numpy(),
                                  population.to_numpy()]) if len(rows) else []
    colorbar = {"title": {"text": measure.unit or "ratio"}, **colorbar_ticks}
    if measure.level == "location":
        trace = go.Densitymap(lat=rows["latitude"], lon=rows["longitude"], z=z, zmin=0, zmax=top,
                              radius=MAP_RADIUS_PX, colorscale=measure.colorscale, customdata=customdata,
                              hovertemplate=hover + "<extra></extra>", colorbar=colorbar)
    else:  # a rate is a country's own: one marker each (a density would add up neighbours' rates)
        trace = go.Scattermap(lat=rows["latitude"], lon=rows["longitude"], mode="markers", customdata=customdata,
                              marker={"size": COUNTRY_MARKER_PX, "opacity": 0.85, "color": z, "cmin": 0, "cmax": top,
                                      "colorscale": measure.colorscale, "colorbar": colorbar},
                              hovertemplate=hover + "<extra></extra>")
    figure = go.Figure(trace)
    figure.update_layout(
        title=title_layout(title),
        map={"style": map_style, "center": MAP_CENTER, "zoom": MAP_ZOOM, "layers": [outline_layer(outlines_url)]},
        margin={"l": 0, "r": 0, "t": top_margin(), "b": 0},
        # Keep the user's pan and zoom when the date changes.
        uirevision="spread-map",
    )
    return figure


def trend_rows(trends: pd.DataFrame, view: TrendView) -> pd.DataFrame:
    """The rows the chart draws (rows of :meth:`Warehouse.country_trends`): ``country_region``, ``date``,
    ``days_since_100_cases`` and the measure's column (cumulative, or the 7-day average), plus the daily count's
    column for daily counts. Aligned on the 100th case, the days before it are left out; on a log axis, values
    of 0 or less (no logarithm) are blank. This is also what the trend's CSV download holds."""
    rows = trends[trends["country_region"].isin(view.countries)]
    if view.align == "days_since_100":
        rows = rows[rows["days_since_100_cases"].notna()]
    columns = [trend_column(view.count, view.mode, view.scale, smoothed=True)]
    if view.mode == "daily":
        columns.append(trend_column(view.count, view.mode, view.scale, smoothed=False))
    out = rows[["country_region", "date"]].assign(days_since_100_cases=rows["days_since_100_cases"].astype("Int64"))
    for column in columns:
        values = rows[column].astype(float)
        out[column] = values.where(values > 0) if view.axis == "log" else values
    return out.reset_index(drop=True)


def trend_title(view: TrendView) -> str:
    """e.g. 'Cases per million, daily (7-day average)', 'Deaths, cumulative'."""
    what = ("Cases" if view.count == "cases" else "Deaths") + ("" if view.scale == "absolute" else " per million")
    return what + (", daily (7-day average)" if view.mode == "daily" else ", cumulative")


def trend_figure(rows: pd.DataFrame, view: TrendView) -> go.Figure:
    """One line per country (rows of :func:`trend_rows`), in the order of ``view.countries``; daily counts of a
    single country are drawn as bars with the 7-day average as a line. Log or linear y axis; x is the date or the
    days since the country's 100th case."""
    x_column = "date" if view.align == "date" else "days_since_100_cases"
    value = trend_column(view.count, view.mode, view.scale, smoothed=True)
    unit = trend_unit(view.count, view.mode, view.scale)
    traces = []
    if view.mode == "daily" and len(view.countries) == 1:
        country = view.countries[0]
        daily = trend_column(view.count, view.mode, view.scale, smoothed=False)
        traces.append(go.Bar(x=rows[x_column], y=rows[daily], name=f"{country}, daily",
                             marker={"color": "#9ecae1"}, hovertemplate=f"%{{y:,.1f}} {unit}<extra></extra>"))
    for i, country in enumerate(view.countries):
        own = rows[rows["country_region"] == country]
        name = f"{country}, 7-day average" if view.mode == "daily" and len(view.countries) == 1 else country
        traces.append(go.Scatter(x=own[x_column], y=own[value], name=name, mode="lines",
                                 line={"color": _SERIES_COLORS[i % len(_SERIES_COLORS)], "width": 2},
                                 hovertemplate=f"{country}: %{{y:,.1f}} {unit}<extra></extra>"))
    figure = go.Figure(traces)
    figure.update_layout(
        **chart_layout(trend_title(view), axis_title=view.align != "date", legend=True),
        xaxis={"title": {"text": "days since the 100th confirmed case" if view.align != "date" else ""}},
        yaxis={"title": {"text": unit}, "type": view.axis, **({} if view.axis == "log" else {"tickformat": ","})},
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
