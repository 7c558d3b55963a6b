"""The one normalization applied to manifest values, MyNotary values and requests.

Two values compare equal exactly when their normalized forms are equal. The rules,
explained for users in ``docs/comparison.md``:

- text: Unicode NFC, surrounding whitespace removed, empty text is absent;
- numbers: exact decimals, rounded half up to the field's decimal places where it
  has some, so 45.5 equals 45.50 and 198000 equals 198000.0;
- integers: exact integers (a whole decimal such as 3.0 is 3);
- enumerations: one canonical spelling per value, matched ignoring case, accents
  and surrounding whitespace;
- dates: calendar dates; MyNotary timestamps are read in the Europe/Paris time zone;
- lists of references: sorted and without repeats, empty is absent;
- absent and null are the same value.
"""

from __future__ import annotations

import datetime
import functools
import unicodedata
from collections.abc import Iterable
from decimal import ROUND_HALF_UP
from decimal import Context
from decimal import Decimal
from decimal import InvalidOperation
from zoneinfo import ZoneInfo

PARIS = ZoneInfo("Europe/Paris")

Value = str | int | Decimal | datetime.date | tuple[str, ...] | tuple[int, ...] | None

# Enough digits to round any number of a manifest or of MyNotary to its places.
_ROUNDING = Context(prec=100, rounding=ROUND_HALF_UP)
# Decimals whose exponent is beyond this are shown in scientific notation, because
# fixed notation of 1E+999999 would be a million digits long.
_MAX_FIXED_EXPONENT = 30


def normalize_text(value: object) -> str | None:
    """Return ``value`` as NFC text without surrounding whitespace, or None if empty."""
    if value is None:
        return None
    if value.__class__ is str and value.isascii():
        # ASCII text is already in NFC: skip the normalization, the costly part.
        return value.strip() or None
    text = unicodedata.normalize("NFC", str(value)).strip()
    return text or None


def normalize_decimal(value: object, places: int | None = None) -> Decimal | None:
    """Return ``value`` as a decimal, rounded half up to ``places`` if given.

    Floats go through their shortest repr, so 45.5 gives Decimal("45.5") and not
    the binary value. Raises ValueError if ``value`` is not a finite number.
    """
    # Decimals and ints first, the types of valid manifests and of MyNotary's JSON.
    if value.__class__ is Decimal or value.__class__ is int:
        number = value if value.__class__ is Decimal else Decimal(value)
        if not number.is_finite():
            raise ValueError(f"{value!r} is not a finite number")
        return number if places is None else _round(number, places)
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
    return number if places is None else _round(number, places)


def _round(number: Decimal, places: int) -> Decimal:
    try:
        return number.quantize(_quantum(places), context=_ROUNDING)
    except InvalidOperation:
        # More than 100 digits: far beyond any field's maximum, kept exact.
        return number


@functools.cache
def _quantum(places: int) -> Decimal:
    return Decimal(1).scaleb(-places)


def normalize_integer(value: object) -> int | None:
    """Return ``value`` as an int; a decimal with no fractional part is accepted.

    Raises ValueError if ``value`` is not a whole number.
    """
    if value.__class__ is int:
        return value
    number = normalize_decimal(value)
    if number is None:
        return None
    if number != number.to_integral_value(context=_ROUNDING):
        raise ValueError(f"{value!r} is not a whole number")
    return int(number)


def fold_enum(text: str) -> str:
    """Return ``text`` without case and accents, as enumeration values are matched."""
    decomposed = unicodedata.normalize("NFD", text.strip())
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain.casefold()


def normalize_enum(value: object, canonical: Iterable[str]) -> str | None:
    """Return the canonical spelling of ``value`` among ``canonical``.

    Matching ignores case, accents and surrounding whitespace. A value outside
    ``canonical`` is returned as normalized text, so the difference shows.
    """
    text = normalize_text(value)
    if text is None:
        return None
    choices = canonical if isinstance(canonical, tuple) else tuple(canonical)
    if text in choices:
        return text
    return _folded_choices(choices).get(fold_enum(text), text)


@functools.cache
def _folded_choices(choices: tuple[str, ...]) -> dict[str, str]:
    return {fold_enum(choice): choice for choice in choices}


def normalize_date(value: object) -> datetime.date | None:
    """Return ``value`` as a calendar date.

    Accepts a date, an ISO ``YYYY-MM-DD`` string, an ISO date-time string, or a
    Unix timestamp in milliseconds (MyNotary's form). Timestamps and date-times with
    a time zone are read as a date in Europe/Paris. Raises ValueError otherwise.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime.datetime):
        return _paris_date(value)
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a date")
    if isinstance(value, int | float | Decimal):
        return _timestamp_date(value)
    if isinstance(value, str):
        return _iso_date(value.strip())
    raise ValueError(f"{value!r} is not a date")


def _paris_date(value: datetime.datetime) -> datetime.date:
    if value.tzinfo is None:
        return value.date()
    return value.astimezone(PARIS).date()


def _timestamp_date(milliseconds: int | float | Decimal) -> datetime.date:
    try:
        instant = datetime.datetime.fromtimestamp(float(milliseconds) / 1000, tz=PARIS)
    except (OverflowError, OSError, ValueError) as error:
        raise ValueError(f"{milliseconds!r} is not a timestamp: {error}") from None
    return instant.date()


def _iso_date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    return _paris_date(datetime.datetime.fromisoformat(text))


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
        return format_decimal(value)
    if isinstance(value, tuple):
        return "[" + ", ".join(str(item) for item in value) + "]"
    if isinstance(value, str):
        return repr(value) if value != value.strip() else f'"{value}"'
    return str(value)


def format_decimal(value: Decimal) -> str:
    """Return ``value`` in fixed notation, or scientific when it is huge or tiny."""
    exponent = value.as_tuple().exponent
    is_fixed = isinstance(exponent, int) and abs(exponent) <= _MAX_FIXED_EXPONENT
    if is_fixed and abs(value.adjusted()) <= _MAX_FIXED_EXPONENT:
        return format(value, "f")
    return str(value)
