"""Every MyNotary-specific shape: record types, field ids and value spellings.

``FIELD_TABLE`` maps each reconciler field to its MyNotary question. Field ids seen
in MyNotary's public API are marked public; the others are assumptions, listed in
``docs/mynotary-api.md``, to be matched to the real API in this module alone.
"""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from reconciler import normalize
from reconciler.fields import DWELLING_NATURES
from reconciler.fields import FIELDS_BY_NAME
from reconciler.normalize import Value

PROGRAMME_TYPE = "RECORD__PROGRAMME"  # assumption
DWELLING_LOT_TYPE = "RECORD__BIEN__LOT_HABITATION"  # public
OTHER_LOT_TYPE = "RECORD__BIEN__LOT_HORS_HABITATION"  # public


@dataclass(frozen=True)
class Question:
    """Where a field sits in a record's ``questions``: a field id and, for nested
    objects such as ``adresse``, the key inside it."""

    field_id: str
    key: str | None = None
    is_public: bool = False


FIELD_TABLE: dict[str, Question] = {
    # Programme
    "name": Question("nom_programme"),
    "address.streetNumber": Question("adresse", "numero", is_public=True),
    "address.street": Question("adresse", "rue", is_public=True),
    "address.postalCode": Question("adresse", "codePostal", is_public=True),
    "address.city": Question("adresse", "ville", is_public=True),
    "address.country": Question("adresse", "pays", is_public=True),
    "promoter.name": Question("promoteur", "personne_morale_denomination"),
    "promoter.siren": Question("promoteur", "siren"),
    "promoter.siret": Question("promoteur", "siret"),
    "buildingPermit.number": Question("permis_construire", "numero"),
    "buildingPermit.date": Question("permis_construire", "date"),
    "expectedDelivery": Question("date_livraison_prevue"),
    # Lot
    "number": Question("numero_lot", is_public=True),
    "nature": Question("nature_bien", is_public=True),
    "building": Question("batiment"),
    "floor": Question("etage"),
    "orientation": Question("orientation"),
    "rooms": Question("nombre_pieces_principales"),
    "livingArea": Question("surface_habitable", is_public=True),
    "carrezArea": Question("mesurage_carrez_superficie", is_public=True),
    "annexes": Question("lots_annexes"),
    "price": Question("prix_ttc"),
    "vatRate": Question("taux_tva"),
    "status": Question("statut_commercialisation"),
}

CARREZ_STATUS_ID = "mesurage_carrez_statut"  # public: "oui" or "non"

NATURE_PREFIX = "nature_bien_"  # public: nature_bien_appartement, …

SALE_STATUS_VALUES = {  # assumption
    "available": "disponible",
    "optioned": "option",
    "reserved": "reserve",
    "sold": "vendu",
}
SALE_STATUS_FROM_MYNOTARY = {value: key for key, value in SALE_STATUS_VALUES.items()}


def lot_type(nature: str | None) -> str:
    """Return the MyNotary record type of a lot of this nature."""
    return DWELLING_LOT_TYPE if nature in DWELLING_NATURES else OTHER_LOT_TYPE


def _encode_value(name: str, value: Value) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime.date):
        return normalize.date_to_timestamp(value)
    if isinstance(value, Decimal):
        return value
    if name == "nature":
        return f"{NATURE_PREFIX}{value}"
    if name == "status":
        return SALE_STATUS_VALUES.get(str(value), value)
    if isinstance(value, tuple):
        return list(value)
    return value


def _decode_value(name: str, raw: Any) -> object:
    if raw is None:
        return None
    if name == "nature" and isinstance(raw, str) and raw.startswith(NATURE_PREFIX):
        return raw.removeprefix(NATURE_PREFIX)
    if name == "status" and isinstance(raw, str):
        return SALE_STATUS_FROM_MYNOTARY.get(raw, raw)
    return raw


def encode_questions(
    values: Mapping[str, Value], names: Iterable[str] | None = None
) -> dict[str, Any]:
    """Return the ``questions`` object that sets the fields ``names`` to ``values``.

    With ``names`` given (an update), a nested question such as ``adresse`` is sent
    whole, built from ``values``, because MyNotary replaces a question as a unit.
    Decimals stay ``Decimal`` so the JSON encoder writes them exactly. Annexes must
    already be MyNotary ids.
    """
    selected = set(values) if names is None else set(names)
    touched_ids = {FIELD_TABLE[name].field_id for name in selected}
    questions: dict[str, Any] = {}
    for name, value in values.items():
        question = FIELD_TABLE[name]
        if question.field_id not in touched_ids:
            continue
        encoded = _encode_value(name, value)
        if question.key is None:
            questions[question.field_id] = encoded
            continue
        nested = questions.setdefault(question.field_id, {})
        if encoded is not None:
            nested[question.key] = encoded
    if "carrezArea" in selected:
        has_carrez = values.get("carrezArea") is not None
        questions[CARREZ_STATUS_ID] = "oui" if has_carrez else "non"
    for field_id, question_value in questions.items():
        if question_value == {}:
            questions[field_id] = None
    return questions


def decode_questions(
    questions: Mapping[str, Any], names: Iterable[str]
) -> dict[str, Value]:
    """Return the normalized value of each field in ``names`` held in ``questions``.

    Annexes come back as MyNotary ids (a tuple of ints); the caller maps them to Up
    ids through the link table.
    """
    values: dict[str, Value] = {}
    for name, field_id, key, decode in _decoders(tuple(names)):
        raw = questions.get(field_id)
        if key is not None:
            raw = raw.get(key) if isinstance(raw, Mapping) else None
        values[name] = decode(raw)
    return values


_Decoder = tuple[str, str, str | None, Callable[[Any], Value]]


@functools.cache
def _decoders(names: tuple[str, ...]) -> tuple[_Decoder, ...]:
    """Return, per field, where its question sits and how to read its value."""
    decoders: list[_Decoder] = []
    for name in names:
        question = FIELD_TABLE[name]
        decode: Callable[[Any], Value]
        if name == "annexes":
            decode = _decode_annex_ids
        elif name in ("nature", "status"):
            decode = functools.partial(_decode_and_normalize, name)
        else:
            decode = FIELDS_BY_NAME[name].normalize
        decoders.append((name, question.field_id, question.key, decode))
    return tuple(decoders)


def _decode_and_normalize(name: str, raw: Any) -> Value:
    return FIELDS_BY_NAME[name].normalize(_decode_value(name, raw))


def _decode_annex_ids(raw: Any) -> tuple[int, ...] | None:
    if not raw:
        return None
    return tuple(sorted({int(item) for item in raw}))


def lot_number_of(record: Mapping[str, Any]) -> str | None:
    """Return the lot number of a MyNotary lot record, its natural key."""
    questions = record.get("questions") or {}
    return normalize.normalize_text(questions.get(FIELD_TABLE["number"].field_id))
