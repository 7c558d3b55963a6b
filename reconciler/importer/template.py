"""Templates that build a value from several cells: ``PRG-{id_parcelle[0:5]}``.

A placeholder names a column, optionally with a slice of its text in Python's
``[start:end]`` notation, or one of the names ``lot.number`` and ``programme.upId``.
``{{`` and ``}}`` stand for literal braces.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

LOT_NUMBER = "lot.number"
PROGRAMME_UP_ID = "programme.upId"
REFERENCE_NAMES = (LOT_NUMBER, PROGRAMME_UP_ID)

_TOKEN = re.compile(
    r"(?P<open>\{\{)|(?P<close>\}\})"
    r"|\{(?P<name>[^{}\[\]]+)(?:\[(?P<start>-?\d*):(?P<end>-?\d*)\])?\}"
    r"|(?P<stray>[{}])"
)


@dataclass(frozen=True)
class Placeholder:
    """A name to look up, and the slice of its text to keep."""

    name: str
    start: int | None = None
    end: int | None = None

    def cut(self, text: str) -> str:
        """Return the part of ``text`` this placeholder keeps."""
        return text[self.start : self.end]


Part = str | Placeholder


@dataclass(frozen=True)
class Template:
    """A parsed template: literal texts and placeholders, in order."""

    source: str
    parts: tuple[Part, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Return the names of the placeholders, in order."""
        return tuple(part.name for part in self.parts if isinstance(part, Placeholder))

    def render(self, lookup: Callable[[str], str]) -> str:
        """Fill the placeholders with ``lookup(name)``; empty when every one is empty.

        The result is stripped, so that ``{number} {suffix}`` without a suffix gives
        no trailing space.
        """
        texts = []
        filled = False
        for part in self.parts:
            if isinstance(part, str):
                texts.append(part)
                continue
            value = part.cut(lookup(part.name))
            filled = filled or bool(value)
            texts.append(value)
        return "".join(texts).strip() if filled else ""


def parse_template(source: str) -> Template:
    """Parse ``source``; raise ValueError on a stray brace or an empty placeholder."""
    parts: list[Part] = []
    position = 0
    for match in _TOKEN.finditer(source):
        if match.start() > position:
            parts.append(source[position : match.start()])
        position = match.end()
        parts.append(_part(match, source))
    if position < len(source):
        parts.append(source[position:])
    if not any(isinstance(part, Placeholder) for part in parts):
        raise ValueError(f"template '{source}' has no {{placeholder}}")
    return Template(source, tuple(parts))


def _part(match: re.Match[str], source: str) -> Part:
    if match.group("open"):
        return "{"
    if match.group("close"):
        return "}"
    if match.group("stray"):
        message = f"template '{source}' has an unmatched '{match.group('stray')}'"
        raise ValueError(message + "; write {{ or }} for a literal brace")
    name = match.group("name").strip()
    return Placeholder(name, _bound(match.group("start")), _bound(match.group("end")))


def _bound(text: str | None) -> int | None:
    return int(text) if text else None
