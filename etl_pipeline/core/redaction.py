"""Redaction of secrets in text that is printed, logged or recorded (URLs with a password)."""

from __future__ import annotations

import re

# The password runs to the last "@" before the host (it may itself hold an unescaped "@" or "/").
_URL_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s]*:)(?P<password>\S*?)(?=@[^@\s]*(?:\s|$))")


def redact(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text`` by ``***``."""
    return _URL_PASSWORD.sub(lambda m: m.group("head") + "***", text)
