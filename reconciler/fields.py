"""The fields of a programme and of a lot that the reconciler compares and pushes.

Each field has a name (its path in the manifest, such as ``address.street``), a kind
that selects its normalization, and for decimals the number of places they are
compared and shown at. The MyNotary side of each field is in
``reconciler.mynotary.adapter``.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reconciler import normalize
from reconciler.normalize import Value

DWELLING_NATURES = ("appartement", "duplex", "triplex", "maison")
ANNEX_NATURES = ("cave", "cellier", "garage", "parking")
LOT_NATURES = (*DWELLING_NATURES, *ANNEX_NATURES, "local")
ORIENTATIONS = ("N", "NE", "E", "SE", "S", "SO", "O", "NO")
SALE_STATUSES = ("available", "optioned", "reserved", "sold")


class FieldKind(enum.Enum):
    TEXT = "text"
    INTEGER = "integer"
    DECIMAL = "decimal"
    DATE = "date"
    ENUM = "enum"
    REFERENCES = "references"


@dataclass(frozen=True)
class FieldSpec:
    """One comparable field: its manifest path, kind and decimal places.

    ``places`` is the number of decimal places a DECIMAL field is compared, sent
    and shown at; None keeps the value exact (VAT rates: 20 and 5.5).
    """

    name: str
    kind: FieldKind
    places: int | None = None
    choices: tuple[str, ...] = ()

    def normalize(self, raw: object) -> Value:
        """Return ``raw`` in the normalized form of this field's kind.

        A value that doesn't fit the kind, which only MyNotary can hold since
        manifests are validated first, is returned as normalized text: it then
        differs from every value of the kind and the plan shows it.
        """
        try:
            return self._normalizer(raw)
        except ValueError:
            return normalize.normalize_text(raw)

    @functools.cached_property
    def path(self) -> tuple[str, ...]:
        """The keys of the nested mappings that lead to the field's value."""
        return _split(self.name)

    @functools.cached_property
    def _normalizer(self) -> Callable[[object], Value]:
        match self.kind:
            case FieldKind.TEXT:
                return normalize.normalize_text
            case FieldKind.INTEGER:
                return normalize.normalize_integer
            case FieldKind.DECIMAL:
                return functools.partial(
                    normalize.normalize_decimal, places=self.places
                )
            case FieldKind.DATE:
                return normalize.normalize_date
            case FieldKind.ENUM:
                return functools.partial(
                    normalize.normalize_enum, canonical=self.choices
                )
            case FieldKind.REFERENCES:
                return _normalize_references

    def format(self, value: Value) -> str:
        """Return ``value`` as renderings show it; decimals at this field's places."""
        if isinstance(value, Decimal) and self.places is not None:
            rounded = normalize.normalize_decimal(value, self.places)
            if rounded == value and rounded is not None:
                return normalize.format_decimal(rounded)
        return normalize.format_value(value)


def _normalize_references(raw: object) -> Value:
    if raw is not None and not isinstance(raw, list | tuple):
        raise ValueError(f"{raw!r} is not a list of references")
    return normalize.normalize_references(raw)


def _text(name: str) -> FieldSpec:
    return FieldSpec(name, FieldKind.TEXT)


PROGRAMME_FIELDS: tuple[FieldSpec, ...] = (
    _text("name"),
    _text("address.streetNumber"),
    _text("address.street"),
    _text("address.postalCode"),
    _text("address.city"),
    _text("address.country"),
    _text("promoter.name"),
    _text("promoter.siren"),
    _text("promoter.siret"),
    _text("buildingPermit.number"),
    FieldSpec("buildingPermit.date", FieldKind.DATE),
    FieldSpec("expectedDelivery", FieldKind.DATE),
)

LOT_FIELDS: tuple[FieldSpec, ...] = (
    _text("number"),
    FieldSpec("nature", FieldKind.ENUM, choices=LOT_NATURES),
    _text("building"),
    FieldSpec("floor", FieldKind.INTEGER),
    FieldSpec("orientation", FieldKind.ENUM, choices=ORIENTATIONS),
    FieldSpec("rooms", FieldKind.INTEGER),
    FieldSpec("livingArea", FieldKind.DECIMAL, places=2),
    FieldSpec("carrezArea", FieldKind.DECIMAL, places=2),
    FieldSpec("annexes", FieldKind.REFERENCES),
    FieldSpec("price", FieldKind.DECIMAL, places=2),
    FieldSpec("vatRate", FieldKind.DECIMAL),
    FieldSpec("status", FieldKind.ENUM, choices=SALE_STATUSES),
)

FIELDS_BY_NAME: dict[str, FieldSpec] = {
    spec.name: spec for spec in (*PROGRAMME_FIELDS, *LOT_FIELDS)
}

FieldValues = Mapping[str, Value]


def read_path(data: Mapping[str, Any], dotted: str) -> object:
    """Return the value at a dotted path of nested mappings, or None if absent."""
    return _read_parts(data, _split(dotted))


@functools.cache
def _split(dotted: str) -> tuple[str, ...]:
    return tuple(dotted.split("."))


def _read_parts(data: Mapping[str, Any], parts: tuple[str, ...]) -> object:
    current: object = data
    for part in parts:
        if current.__class__ is not dict and not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current


def normalize_fields(
    specs: tuple[FieldSpec, ...], data: Mapping[str, Any]
) -> dict[str, Value]:
    """Return the normalized value of every field in ``specs`` read from ``data``."""
    values: dict[str, Value] = {}
    for spec in specs:
        raw = _read_parts(data, spec.path)
        # Every kind normalizes an absent value to None; many fields are absent.
        values[spec.name] = None if raw is None else spec.normalize(raw)
    return values
