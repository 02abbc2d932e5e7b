"""Asset keys, built in one place: ``[<layer>, "medical", <table>]`` (README.md "Layout")."""

from __future__ import annotations

import dagster as dg

#: The segment between the layer and the table in every asset key (and lake path) of the pipeline.
KEY_PREFIX = "medical"


def asset_key(layer: str, table: str) -> dg.AssetKey:
    """The key of table ``table`` in layer ``layer`` (``source``, ``bronze``, ``silver``, ``gold``, ``warehouse``)."""
    return dg.AssetKey([layer, KEY_PREFIX, table])
