"""One module per page, each with ``PATH``, ``TITLE``, ``layout(context)`` and ``register_callbacks(app, context)``."""
