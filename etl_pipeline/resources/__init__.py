"""IO managers and resources: one storage rule per IO manager, its parts (SQL text, database backends, bulk
loads) in small modules beside it."""
