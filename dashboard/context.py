"""What every page needs from the app: the warehouse and the map style."""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.data import Warehouse


@dataclass(frozen=True)
class DashboardContext:
    warehouse: Warehouse
    #: A plotly.js map style name ("carto-positron", "white-bg", ...) or a MapLibre style URL.
    map_style: str
