"""Small layout pieces shared by the pages: headers, metric tiles, tables, messages."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pandas as pd
import plotly.graph_objects as go
from dash import dcc, html


def page_header(title: str, subtitle: str) -> html.Header:
    return html.Header([html.H1(title), html.P(subtitle, className="subtitle")], className="page-header")


def metric(label: str, value: str, *, id: str) -> html.Div:
    """A labelled number, e.g. 'Pre-period RMSPE  1,234 cases'."""
    return html.Div(
        [html.Div(label, className="metric-label"), html.Div(value, id=id, className="metric-value")],
        className="metric",
    )


def table(frame: pd.DataFrame, columns: Sequence[tuple[str, str, Callable[[object], str]]], *, id: str) -> html.Table:
    """An HTML table of ``frame``; ``columns`` gives (column, header, formatter) in display order."""
    head = html.Thead(html.Tr([html.Th(header) for _, header, _ in columns]))
    body = html.Tbody([html.Tr([html.Td(fmt(row[name])) for name, _, fmt in columns]) for _, row in frame.iterrows()])
    return html.Table([head, body], id=id, className="data-table")


def error_message(text: str, *, id: str) -> html.Div:
    return html.Div(text, id=id, className="message message-error", role="alert")


def graph(id: str, *, height: str, figure: go.Figure | None = None) -> dcc.Graph:
    """A graph without the Plotly logo, sized by the page (empty until a callback fills it). Its mode bar keeps
    the buttons these charts use (no box or lasso selection), so that it is short; titles start below it."""
    return dcc.Graph(
        id=id,
        figure=figure if figure is not None else {"data": [], "layout": {}},
        config={"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"]},
        style={"height": height},
    )


def loading(children: object, *, id: str) -> dcc.Loading:
    return dcc.Loading(children, id=id, type="default", delay_show=150)
