"""Errors shared by the storage floor and its readers (the warehouse IO manager and the dashboard)."""

from __future__ import annotations


class WarehouseError(RuntimeError):
    """A warehouse load or read failed (unreachable, not built yet, or bad input); the message names the table
    where one is concerned and the database by its redacted URL, never a password."""
