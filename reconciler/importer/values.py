"""Read one manifest value from a row, following a field rule.

A cell goes through the rule's steps in order: translation, default for an empty
cell, then reading as the field's type (text, whole number, decimal, date, list of
lot numbers). A cell that can't be read raises ``CellError``, which leaves its lot
out of the import. A cell missing from a closed translation table raises
``UnknownValue``, which stops the import, because the mapping must be completed.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from typing import Any

from reconciler.fields import FieldKind
from reconciler.importer.errors import CellRef
from reconciler.importer.mapping import FieldRule
from reconciler.importer.mapping import NumberFormat
from reconciler.importer.mapping import fold
from reconciler.normalize import normalize_enum

_MINUS_SIGNS = ("-", "\u2212")
_SAMPLE_DATE = datetime.date(2024, 12, 31)

Lookup = Callable[[str], str]


class CellError(Exception):
    """A cell that can't be read as its field's type."""


class UnknownValue(Exception):
    """A cell missing from a translation table that accepts no other value."""

    def __init__(self, message: str, rule: FieldRule) -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class Evaluated:
    """A value read for a field, the rule that read it and the cell it came from.

    ``value`` is None for an empty cell; it is a str, int, Decimal, date, or a tuple
    of lot numbers for annexes.
    """

    value: Any
    source: CellRef
    rule: FieldRule

    @property
    def is_empty(self) -> bool:
        """Return whether the cell gave no value."""
        return self.value is None


def evaluate(rule: FieldRule, lookup: Lookup, source: CellRef) -> Evaluated:
    """Read the value of ``rule`` from a row whose cells ``lookup`` returns."""
    if rule.has_constant:
        return Evaluated(convert(rule, rule.constant), source, rule)
    text = read_text(rule, lookup)
    return Evaluated(read_cell(rule, text), source, rule)


def read_text(rule: FieldRule, lookup: Lookup) -> str:
    """Return the text of the rule's column, or of its rendered template."""
    if rule.template is not None:
        return rule.template.render(lookup)
    if rule.column is not None:
        return lookup(rule.column)
    return ""


def read_cell(rule: FieldRule, text: str) -> Any:
    """Return the value of the cell ``text``: translated, defaulted, then parsed."""
    if text and rule.translate is not None:
        key = fold(text)
        if key in rule.translate:
            return convert(rule, rule.translate[key])
        if not rule.parses_untranslated:
            raise UnknownValue(_unknown_message(rule, text), rule)
    if not text:
        return convert(rule, rule.default)
    return parse(rule, text)


def _unknown_message(rule: FieldRule, text: str) -> str:
    assert rule.translate is not None
    known = ", ".join(f"'{key}'" for key in sorted(rule.translate))
    return (
        f"unknown {rule.target} '{text}'; add it to the mapping's translate list "
        f"(known: {known})"
    )


def convert(rule: FieldRule, value: Any) -> Any:
    """Return a value written in the mapping (constant, default, translation) as the
    field's type; text is read like a cell."""
    if value is None:
        return None
    if isinstance(value, str):
        return parse(rule, value) if value.strip() else None
    if isinstance(value, bool):
        raise CellError(f"{rule.target} can't be {str(value).lower()}")
    if rule.kind in (FieldKind.INTEGER, FieldKind.DECIMAL):
        return _number_value(rule, Decimal(value), str(value))
    return parse(rule, str(value))


def parse(rule: FieldRule, text: str) -> Any:
    """Return the cell ``text`` read as the type of the rule's field."""
    text = text.strip()
    match rule.kind:
        case FieldKind.INTEGER | FieldKind.DECIMAL:
            number = parse_number(text, rule.numbers, rule.units)
            if number is None:
                example = _number_example(rule)
                raise CellError(
                    f"unparsable {rule.target} '{text}': expected a number such as "
                    f"{example}"
                )
            return _number_value(rule, number, text)
        case FieldKind.DATE:
            return _parse_date(rule, text)
        case FieldKind.REFERENCES:
            items = (item.strip() for item in text.split(rule.split))
            return tuple(item for item in items if item)
        case FieldKind.ENUM:
            return normalize_enum(text, rule.spec.choices)
        case _:
            return text


def _number_value(rule: FieldRule, number: Decimal, text: str) -> int | Decimal:
    if rule.scale is not None:
        number *= rule.scale
    if rule.kind is FieldKind.DECIMAL:
        return number
    if number != number.to_integral_value():
        raise CellError(f"unparsable {rule.target} '{text}': expected a whole number")
    return int(number)


def parse_number(
    text: str, numbers: NumberFormat, units: tuple[str, ...] = ()
) -> Decimal | None:
    """Return the number written in ``text``, or None if it isn't one.

    Thousands separators must split the integer part into groups of three digits,
    so a stray space or a dot used as decimal mark is rejected instead of misread.
    """
    text = _strip_unit(text, units)
    if text.startswith(_MINUS_SIGNS):
        sign, text = "-", text[1:]
    else:
        sign, text = "", text.removeprefix("+")
    if not _number_pattern(numbers).fullmatch(text):
        return None
    for separator in numbers.thousands:
        text = text.replace(separator, "")
    try:
        return Decimal(sign + text.replace(numbers.decimal, "."))
    except InvalidOperation:
        return None


def _strip_unit(text: str, units: tuple[str, ...]) -> str:
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            return text[: -len(unit)].strip()
    return text


def _number_pattern(numbers: NumberFormat) -> re.Pattern[str]:
    decimal = re.escape(numbers.decimal)
    if not numbers.thousands:
        return re.compile(rf"[0-9]+(?:{decimal}[0-9]+)?")
    separators = "".join(re.escape(separator) for separator in numbers.thousands)
    grouped = rf"[0-9]{{1,3}}(?:[{separators}][0-9]{{3}})+"
    return re.compile(rf"(?:{grouped}|[0-9]+)(?:{decimal}[0-9]+)?")


def _number_example(rule: FieldRule) -> str:
    separator = rule.numbers.thousands[0] if rule.numbers.thousands else ""
    if rule.kind is FieldKind.INTEGER:
        return "3"
    return f"1{separator}234{rule.numbers.decimal}50"


def _parse_date(rule: FieldRule, text: str) -> datetime.date:
    try:
        return datetime.datetime.strptime(text, rule.date_format).date()
    except ValueError:
        example = _SAMPLE_DATE.strftime(rule.date_format)
        raise CellError(
            f"unparsable {rule.target} '{text}': expected a date such as {example}"
        ) from None
