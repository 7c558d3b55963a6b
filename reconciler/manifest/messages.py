"""Formatting of values and field paths in manifest messages."""

from __future__ import annotations

import datetime
from decimal import Decimal
from typing import Any

from reconciler.manifest.loader import format_path
from reconciler.normalize import format_decimal

__all__ = ["format_path", "show_value"]

# Characters of a value shown in a message; a longer value is cut with "…".
MAX_SHOWN_CHARACTERS = 60


def show_value(value: Any) -> str:
    """Return ``value`` as a message shows it: text in quotes, numbers as written,
    null, true and false as in YAML, and long values cut."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return _cut(format_decimal(value))
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return _cut(str(value))


def _quote(text: str) -> str:
    # Escapes make invisible characters visible: a tab, a non-breaking space.
    escaped = "".join(_escape(character) for character in _cut(text))
    return "'" + escaped + "'"


def _escape(character: str) -> str:
    if character == "'":
        return "\\'"
    if character == " " or character.isprintable():
        return character
    return character.encode("unicode_escape").decode("ascii")


def _cut(text: str) -> str:
    if len(text) <= MAX_SHOWN_CHARACTERS:
        return text
    return text[: MAX_SHOWN_CHARACTERS - 1] + "…"
