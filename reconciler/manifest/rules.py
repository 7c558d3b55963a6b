"""Checks that a JSON Schema can't express: uniqueness across lots and files,
references between lots, check digits, and consistency between fields.

Every check reads only values of the type the schema expects and skips the others,
so the rules run on files with schema errors too and a single run reports both.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stdnum.exceptions import ValidationError as NumberError
from stdnum.fr import siren as siren_number
from stdnum.fr import siret as siret_number

from reconciler.errors import ManifestIssue
from reconciler.fields import ANNEX_NATURES
from reconciler.fields import DWELLING_NATURES
from reconciler.fields import LOT_NATURES
from reconciler.manifest.communes import department_of_commune
from reconciler.manifest.communes import departments_of_postal_code
from reconciler.manifest.communes import postal_prefix_of
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import PathKey
from reconciler.manifest.messages import format_path
from reconciler.manifest.messages import show_value
from reconciler.normalize import normalize_text

# Below this surface habitable, in square metres, a dwelling is suspicious but
# possible (a studio under the roof): a warning, not an error.
MIN_DWELLING_AREA = Decimal(9)
# Decimal places of surfaces (square metres) and prices (euros).
MAX_DECIMAL_PLACES = 2
DECIMAL_FIELDS = ("livingArea", "carrezArea", "price")
FRANCE_NAMES = frozenset({"france", "fr"})

_SIREN = re.compile(r"[0-9]{9}")
_SIRET = re.compile(r"[0-9]{14}")
_POSTAL_CODE = re.compile(r"[0-9]{5}")

Record = dict[str, Any]


@dataclass
class _Seen:
    """An id seen once, and where it was first written."""

    file: LoadedFile
    path: PathKey


def check_rules(files: list[LoadedFile]) -> list[ManifestIssue]:
    """Return the issues of rules spanning fields, lots and files."""
    issues: list[ManifestIssue] = []
    for loaded in files:
        if isinstance(loaded.data, dict):
            issues.extend(_check_programme(loaded, loaded.data))
            issues.extend(_check_lots(loaded))
            issues.extend(_check_attach_under_unlinked(loaded, loaded.data))
    issues.extend(_check_unique_up_ids(files))
    issues.extend(_check_unique_attach(files))
    return issues


def _check_attach_under_unlinked(
    loaded: LoadedFile, data: Record
) -> Iterator[ManifestIssue]:
    """Reject a lot attached by hand in a programme marked unlinked: the
    programme's mark takes its lots with it, so the attach would be ignored."""
    if _mapping(data, "link").get("unlinked") is not True:
        return
    lots = data.get("lots")
    if not isinstance(lots, list):
        return
    for index, lot in enumerate(lots):
        if _mapping(lot, "link").get("attach") is None:
            continue
        message = (
            "the programme is marked unlinked, so this attach would be ignored; "
            "remove the attach, or the programme's unlinked mark"
        )
        yield _issue(loaded, ("lots", index, "link", "attach"), message)


def _issue(
    loaded: LoadedFile, path: PathKey, message: str, *, is_warning: bool = False
) -> ManifestIssue:
    return ManifestIssue(loaded.locate(path), format_path(path), message, is_warning)


def _text(record: Any, key: str) -> str | None:
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, str) else None


def _number(record: Any, key: str) -> Decimal | None:
    value = record.get(key) if isinstance(record, dict) else None
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        return None
    return Decimal(value)


def _mapping(record: Any, key: str) -> Record:
    value = record.get(key) if isinstance(record, dict) else None
    return value if isinstance(value, dict) else {}


def _lots(data: Any) -> list[tuple[int, Record]]:
    lots = data.get("lots") if isinstance(data, dict) else None
    if not isinstance(lots, list):
        return []
    return [(index, lot) for index, lot in enumerate(lots) if isinstance(lot, dict)]


# Programme


def _check_programme(loaded: LoadedFile, data: Record) -> Iterator[ManifestIssue]:
    yield from _check_siren(loaded, _mapping(data, "promoter"))
    yield from _check_siret(loaded, _mapping(data, "promoter"))
    yield from _check_postal_code(loaded, _mapping(data, "address"))
    yield from _check_delivery(loaded, data)


def _check_siren(loaded: LoadedFile, promoter: Record) -> Iterator[ManifestIssue]:
    siren = _text(promoter, "siren")
    if siren is None or not _SIREN.fullmatch(siren):
        return
    try:
        siren_number.validate(siren)
    except NumberError:
        message = f"{show_value(siren)} is not a valid SIREN: its check digit is wrong"
        yield _issue(loaded, ("promoter", "siren"), message)


def _check_siret(loaded: LoadedFile, promoter: Record) -> Iterator[ManifestIssue]:
    siret = _text(promoter, "siret")
    siren = _text(promoter, "siren")
    if siret is None or not _SIRET.fullmatch(siret):
        return
    path = ("promoter", "siret")
    try:
        siret_number.validate(siret)
    except NumberError:
        message = f"{show_value(siret)} is not a valid SIRET: its check digit is wrong"
        yield _issue(loaded, path, message)
        return
    if siren is not None and not siret.startswith(siren):
        message = f"{show_value(siret)} does not start with the SIREN {siren}"
        yield _issue(loaded, path, message)


def _check_postal_code(loaded: LoadedFile, address: Record) -> Iterator[ManifestIssue]:
    postal_code = _text(address, "postalCode")
    country = normalize_text(_text(address, "country"))
    if postal_code is None or not _POSTAL_CODE.fullmatch(postal_code):
        return
    if country is not None and country.casefold() not in FRANCE_NAMES:
        return
    path = ("address", "postalCode")
    departments = departments_of_postal_code(postal_code)
    if not departments:
        message = (
            f"{show_value(postal_code)} does not start with a French department "
            "number (01 to 95, 20 for Corsica, 971 to 976, 986 to 988)"
        )
        yield _issue(loaded, path, message)
        return
    yield from _check_commune(loaded, postal_code, _text(address, "city"), departments)


def _check_commune(
    loaded: LoadedFile, postal_code: str, city: str | None, departments: frozenset[str]
) -> Iterator[ManifestIssue]:
    department = department_of_commune(city) if city is not None else None
    if department is None or department in departments:
        return
    message = (
        f"{show_value(postal_code)} is not a postal code of {city}: {city} is in "
        f"department {department}, whose postal codes start with "
        f"{postal_prefix_of(department)}"
    )
    yield _issue(loaded, ("address", "postalCode"), message)


def _check_delivery(loaded: LoadedFile, data: Record) -> Iterator[ManifestIssue]:
    permit_date = _date(_text(_mapping(data, "buildingPermit"), "date"))
    delivery = _date(_text(data, "expectedDelivery"))
    if permit_date is None or delivery is None or delivery > permit_date:
        return
    permit_line = loaded.locate(("buildingPermit", "date")).line
    message = (
        f"expected delivery {delivery.isoformat()} is not after the building permit "
        f"date {permit_date.isoformat()} (line {permit_line})"
    )
    yield _issue(loaded, ("expectedDelivery",), message)


def _date(text: str | None) -> datetime.date | None:
    if text is None:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


# Lots


def _check_lots(loaded: LoadedFile) -> Iterator[ManifestIssue]:
    lots = _lots(loaded.data)
    yield from _check_lot_numbers(loaded, lots)
    for index, lot in lots:
        yield from _check_lot_values(loaded, ("lots", index), lot)
    yield from _check_annexes(loaded, lots)


def _check_lot_numbers(
    loaded: LoadedFile, lots: list[tuple[int, Record]]
) -> Iterator[ManifestIssue]:
    # Numbers compare as normalized text, as MyNotary's copy will: "12" and " 12"
    # are the same lot number.
    first_index: dict[str, int] = {}
    for index, lot in lots:
        number = normalize_text(_text(lot, "number"))
        if number is None:
            continue
        if number not in first_index:
            first_index[number] = index
            continue
        first_line = loaded.locate(("lots", first_index[number], "number")).line
        message = (
            f"lot number {show_value(number)} is used twice in this programme "
            f"(first at line {first_line})"
        )
        yield _issue(loaded, ("lots", index, "number"), message)


def _check_lot_values(
    loaded: LoadedFile, path: PathKey, lot: Record
) -> Iterator[ManifestIssue]:
    for name in DECIMAL_FIELDS:
        value = _number(lot, name)
        if value is not None and _has_too_many_places(value):
            message = (
                f"{show_value(value)} has more than {MAX_DECIMAL_PLACES} decimals; "
                f"round it to {MAX_DECIMAL_PLACES}"
            )
            yield _issue(loaded, (*path, name), message)
    yield from _check_surfaces(loaded, path, lot)


def _has_too_many_places(value: Decimal) -> bool:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -MAX_DECIMAL_PLACES:
        # Written with at most two decimals: the common case, decided at once.
        return False
    return _decimal_places(value) > MAX_DECIMAL_PLACES


def _decimal_places(value: Decimal) -> int:
    """Return the decimal places ``value`` needs: 2 for 45.50, 1 for 45.5."""
    _, digits, exponent = value.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    if not isinstance(exponent, int) or exponent >= 0 or not significant:
        return 0
    trailing_zeros = len(digits) - len(significant)
    return max(0, -exponent - trailing_zeros)


def _check_surfaces(
    loaded: LoadedFile, path: PathKey, lot: Record
) -> Iterator[ManifestIssue]:
    living = _number(lot, "livingArea")
    carrez = _number(lot, "carrezArea")
    if living is not None and carrez is not None and carrez > living:
        message = (
            f"Carrez surface {show_value(carrez)} is above the surface habitable "
            f"{show_value(living)}; the Carrez surface can't be larger, check both"
        )
        yield _issue(loaded, (*path, "carrezArea"), message)
    nature = _text(lot, "nature")
    is_dwelling = nature in DWELLING_NATURES
    if is_dwelling and living is not None and 0 < living < MIN_DWELLING_AREA:
        message = (
            f"surface habitable {show_value(living)} m² is under "
            f"{MIN_DWELLING_AREA} m² for a lot of nature {nature}; check it"
        )
        yield _issue(loaded, (*path, "livingArea"), message, is_warning=True)


def _check_annexes(
    loaded: LoadedFile, lots: list[tuple[int, Record]]
) -> Iterator[ManifestIssue]:
    index_of = {up_id: index for index, lot in lots if (up_id := _text(lot, "upId"))}
    # A nature outside the schema's list has its own schema error and is skipped.
    nature_of = {
        index: nature
        for index, lot in lots
        if (nature := _text(lot, "nature")) in LOT_NATURES
    }
    owner_of: dict[str, int] = {}
    for index, lot in lots:
        annexes = lot.get("annexes")
        if not isinstance(annexes, list):
            continue
        for position, annex in enumerate(annexes):
            if not isinstance(annex, str):
                continue
            annex_path = ("lots", index, "annexes", position)
            message = _annex_problem(lot, annex, index_of, nature_of)
            if message is None:
                message = _second_owner_problem(loaded, annex, index, owner_of)
            if message is not None:
                yield _issue(loaded, annex_path, message)


def _annex_problem(
    lot: Record,
    annex: str,
    index_of: dict[str, int],
    nature_of: dict[int, str],
) -> str | None:
    shown = show_value(annex)
    if annex == _text(lot, "upId"):
        return f"lot {shown} lists itself as an annex"
    if annex not in index_of:
        return f"annex {shown} is not the Up id of a lot of this programme"
    nature = nature_of.get(index_of[annex])
    if nature is not None and nature not in ANNEX_NATURES:
        kinds = ", ".join(ANNEX_NATURES)
        return f"annex {shown} is a lot of nature {nature}; an annex is one of: {kinds}"
    return None


def _second_owner_problem(
    loaded: LoadedFile, annex: str, index: int, owner_of: dict[str, int]
) -> str | None:
    owner = owner_of.setdefault(annex, index)
    if owner == index:
        return None
    owner_path = ("lots", owner)
    owner_id = _text(loaded.data["lots"][owner], "upId")
    line = loaded.locate(owner_path).line
    return (
        f"annex {show_value(annex)} already belongs to lot {show_value(owner_id)} "
        f"(line {line}); an annex belongs to one lot"
    )


# Across files


def _records(loaded: LoadedFile) -> Iterator[tuple[PathKey, Record]]:
    if not isinstance(loaded.data, dict):
        return
    yield (), loaded.data
    for index, lot in _lots(loaded.data):
        yield ("lots", index), lot


def _check_unique_up_ids(files: list[LoadedFile]) -> Iterator[ManifestIssue]:
    seen: dict[str, _Seen] = {}
    for loaded in files:
        for path, record in _records(loaded):
            up_id = _text(record, "upId")
            if up_id is None:
                continue
            first = seen.setdefault(up_id, _Seen(loaded, path))
            if first.file is loaded and first.path == path:
                continue
            where = first.file.locate((*first.path, "upId"))
            message = f"Up id {show_value(up_id)} is used twice (first at {where})"
            yield _issue(loaded, (*path, "upId"), message)


def _check_unique_attach(files: list[LoadedFile]) -> Iterator[ManifestIssue]:
    seen: dict[int, _Seen] = {}
    for loaded in files:
        for path, record in _records(loaded):
            attach = _mapping(record, "link").get("attach")
            if isinstance(attach, bool) or not isinstance(attach, int):
                continue
            first = seen.setdefault(attach, _Seen(loaded, path))
            if first.file is loaded and first.path == path:
                continue
            where = first.file.locate((*first.path, "link", "attach"))
            message = (
                f"MyNotary record {attach} is attached twice (first at {where}); "
                "one MyNotary record links to one Up record"
            )
            yield _issue(loaded, (*path, "link", "attach"), message)
