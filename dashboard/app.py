"""The Dash app: a navigation shell routing to one module per page, served by waitress.

``create_app`` builds an app bound to one warehouse; ``serve`` runs it with a production WSGI server
(waitress, multi-threaded) on 127.0.0.1 unless told otherwise, never in Dash's debug mode.
The first response (``/_dash-layout``) is only the shell; each page's content, and each map frame, comes
from a callback, which keeps the first payload small.
"""

from __future__ import annotations

from types import ModuleType

from dash import Dash, Input, Output, State, dcc, html
from waitress.server import BaseWSGIServer, MultiSocketServer, create_server

from dashboard.components import error_message
from dashboard.context import DashboardContext
from dashboard.data import Warehouse, WarehouseNotBuilt
from dashboard.figures import COUNTRY_OUTLINES_ASSET
from dashboard.formatting import date_range
from dashboard.pages import spread_map, synthetic_control
from etl_pipeline.core.engines import describe_url
from etl_pipeline.core.errors import WarehouseError
from etl_pipeline.settings import Settings

APP_TITLE = "COVID-19 warehouse"
PAGES = (spread_map, synthetic_control)
#: Public basemap used unless DASH_MAP_STYLE names another (tests use "white-bg", which needs no network).
DEFAULT_MAP_STYLE = "carto-positron"
SERVER_THREADS = 8
SOURCE_NOTE = "Source: JHU CSSE and worldometers via the covid19 warehouse"


def map_style_from_env() -> str:
    return Settings.from_env().dash_map_style or DEFAULT_MAP_STYLE


def _nav_id(page: ModuleType) -> str:
    return "nav-" + page.__name__.rsplit(".", 1)[-1]


def _shell() -> html.Div:
    navigation = html.Nav(
        [html.Span(APP_TITLE, className="brand")]
        + [dcc.Link(page.TITLE, href=page.PATH, id=_nav_id(page)) for page in PAGES],
        className="navbar",
    )
    return html.Div(
        [
            dcc.Location(id="url"),
            dcc.Store(id="page-title"),
            navigation,
            html.Main(dcc.Loading(html.Div(id="page-content"), type="circle", delay_show=200), className="content"),
            html.Footer(f"{SOURCE_NOTE}.", id="footer", className="footer"),
        ]
    )


def _register_router(app: Dash, context: DashboardContext) -> None:
    by_path = {page.PATH: page for page in PAGES}

    @app.callback(
        Output("page-content", "children"),
        Output("page-title", "data"),
        *(Output(_nav_id(page), "className") for page in PAGES),
        Input("url", "pathname"),
        State("url", "search"),
    )
    def route(pathname: str | None, search: str | None):
        page = by_path.get(pathname or "/")
        active = [("nav-link active" if p is page else "nav-link") for p in PAGES]
        if page is None:
            return error_message(f"No page at {pathname}.", id="page-error"), f"Not found · {APP_TITLE}", *active
        try:
            content = page.layout(context, search)
        except WarehouseError as exc:  # its message says what is wrong and what to do, without a traceback
            content = error_message(str(exc), id="page-error")
        return content, f"{page.TITLE} · {APP_TITLE}", *active

    app.clientside_callback("function(title) { if (title) { document.title = title; } }", Input("page-title", "data"))


def footer_text(warehouse: Warehouse) -> str:
    """The source note with the dates the warehouse holds (whatever snapshot was loaded)."""
    try:
        dates = warehouse.dates()["date"]
    except WarehouseNotBuilt:
        return f"{SOURCE_NOTE} (not built yet)."
    except WarehouseError:
        return f"{SOURCE_NOTE} (warehouse unavailable)."
    return f"{SOURCE_NOTE} ({date_range(dates.iat[0], dates.iat[-1])})." if len(dates) else f"{SOURCE_NOTE} (empty)."


def _register_footer(app: Dash, context: DashboardContext) -> None:
    @app.callback(Output("footer", "children"), Input("url", "pathname"))
    def footer(_pathname: str | None) -> str:
        return footer_text(context.warehouse)


def create_app(warehouse_url: str | None = None, *, map_style: str | None = None) -> Dash:
    """The dashboard over the warehouse at ``warehouse_url`` (default: ``WAREHOUSE_DB_URL``), with the map
    style ``map_style`` (default: ``DASH_MAP_STYLE`` or :data:`DEFAULT_MAP_STYLE`)."""
    app = Dash(
        __name__,
        title=APP_TITLE,
        update_title=None,
        # Page components appear only after routing, so callbacks name ids the first layout lacks.
        suppress_callback_exceptions=True,
    )
    context = DashboardContext(
        warehouse=Warehouse(warehouse_url or Settings.from_env().warehouse_db_url),
        map_style=map_style or map_style_from_env(),
        outlines_url=app.get_asset_url(COUNTRY_OUTLINES_ASSET),
    )
    app.layout = _shell()
    _register_router(app, context)
    _register_footer(app, context)
    for page in PAGES:
        page.register_callbacks(app, context)
    return app


def make_server(app: Dash, host: str = "127.0.0.1", port: int = 8050) -> BaseWSGIServer | MultiSocketServer:
    """A waitress server for ``app`` bound to ``host:port``, not yet running (``.run()``; ``.close()`` stops it)."""
    return create_server(app.server, host=host, port=port, threads=SERVER_THREADS)


def serve(host: str = "127.0.0.1", port: int = 8050, warehouse_url: str | None = None) -> None:
    """Serve the dashboard until interrupted."""
    url = warehouse_url or Settings.from_env().warehouse_db_url
    server = make_server(create_app(url), host, port)
    print(f"Dashboard on http://{host}:{port}/ reading {describe_url(url)}; Ctrl-C stops it", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
