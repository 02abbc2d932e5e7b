"""What every page needs from the app: the warehouse, the map style and where the browser finds the outlines."""

from __future__ import annotations

from dataclasses import dataclass

from dashboard.data import Warehouse


@dataclass(frozen=True)
class DashboardContext:
    warehouse: Warehouse
    #: A plotly.js map style name ("carto-positron", "white-bg", ...) or a MapLibre style URL.
    map_style: str
    #: The URL of the country outlines' GeoJSON as the browser fetches it (an asset of the app).
    outlines_url: str
