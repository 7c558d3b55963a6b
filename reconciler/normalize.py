"""The one normalization applied to manifest values, MyNotary values and requests.

Two values compare equal exactly when their normalized forms are equal. The rules,
explained for users in ``docs/comparison.md``:

- text: Unicode NFC, surrounding whitespace removed, empty text is absent;
- numbers: exact decimals, so 45.5 equals 45.50 and 198000 equals 198000.0;
- integers: exact integers (a whole decimal such as 3.0 is 3);
- enumerations: one canonical spelling per value;
- dates: calendar dates; MyNotary timestamps are read in the Europe/Paris time zone;
- lists of references: sorted and without repeats;
- absent and null are the same value.
"""

from __future__ import annotations

import datetime
import unicodedata
from collections.abc import Iterable
from decimal import Decimal
from decimal import InvalidOperation
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

Value = str | int | Decimal | datetime.date | tuple[str, ...] | tuple[int, ...] | None


def normalize_text(value: object) -> str | None:
    """Return ``value`` as NFC text without surrounding whitespace, or None if empty."""
    if value is None:
        return None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def normalize_decimal(value: object) -> Decimal | None:
    """Return ``value`` as an exact decimal; floats go through their shortest repr."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, float):
        value = repr(value)
    try:
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValueError(f"{value!r} is not a number") from None
    if not number.is_finite():
        raise ValueError(f"{value!r} is not a finite number")
    return number


def normalize_integer(value: object) -> int | None:
    """Return ``value`` as an int; a decimal with no fractional part is accepted."""
    number = normalize_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value():
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def normalize_enum(value: object, canonical: Iterable[str]) -> str | None:
    """Return the canonical spelling of ``value`` among ``canonical``.

    Matching ignores case, accents of the NFC form and surrounding whitespace; a value
    outside ``canonical`` is returned as normalized text so the difference shows.
    """
    text = normalize_text(value)
    if text is None:
        return None
    folded = text.casefold()
    for choice in canonical:
        if choice.casefold() == folded:
            return choice
    return text


def normalize_date(value: object) -> datetime.date | None:
    """Return ``value`` as a calendar date.

    Accepts a date, an ISO ``YYYY-MM-DD`` string, or a Unix timestamp in milliseconds
    (MyNotary's form), which is read as a date in Europe/Paris.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return value.astimezone(PARIS).date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        instant = datetime.datetime.fromtimestamp(int(value) / 1000, tz=PARIS)
        return instant.date()
    if isinstance(value, str):
        return datetime.date.fromisoformat(value.strip())
    raise ValueError(f"{value!r} is not a date")


def date_to_timestamp(value: datetime.date) -> int:
    """Return the Unix timestamp in milliseconds of midnight in Paris on ``value``."""
    midnight = datetime.datetime.combine(value, datetime.time(), tzinfo=PARIS)
    return int(midnight.timestamp()) * 1000


def normalize_references(values: Iterable[object] | None) -> tuple[str, ...] | None:
    """Return a sorted tuple of distinct normalized references, or None if empty."""
    if values is None:
        return None
    references = {normalize_text(value) for value in values}
    cleaned = sorted(reference for reference in references if reference is not None)
    return tuple(cleaned) or None


def format_value(value: Value) -> str:
    """Return ``value`` as plan renderings print it (dates ISO, decimals as written)."""
    if value is None:
        return "(none)"
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value) if value != value.strip() else f'"{value}"'
    return str(value)
