"""One module per page, each with ``PATH``, ``TITLE``, ``layout(context, search)`` (``search``: the URL's query
string) and ``register_callbacks(app, context)``."""
