"""Checks that a JSON Schema can't express: uniqueness across files, references
between lots, checksums, and consistency between fields."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from stdnum.fr import siren as siren_number
from stdnum.fr import siret as siret_number

from reconciler.errors import ManifestIssue
from reconciler.fields import ANNEX_NATURES
from reconciler.fields import DWELLING_NATURES
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import PathKey
from reconciler.manifest.schema import format_path

MIN_DWELLING_AREA = Decimal(9)  # below this a dwelling is suspicious, not invalid
MAX_DECIMAL_PLACES = 2

# Departments have two-digit prefixes 01 to 95 (20 is Corsica, departments 2A and
# 2B); overseas postal codes start with 97 or 98.
_VALID_POSTAL_PREFIXES = {f"{number:02d}" for number in range(1, 96)} | {"97", "98"}


@dataclass
class _Seen:
    """An Up id or MyNotary id seen once, where it was first written."""

    file: LoadedFile
    path: PathKey


def check_rules(files: list[LoadedFile]) -> list[ManifestIssue]:
    """Return the issues of rules spanning fields, lots and files."""
    issues: list[ManifestIssue] = []
    for loaded in files:
        issues.extend(_check_programme(loaded))
        issues.extend(_check_lots(loaded))
    issues.extend(_check_unique_up_ids(files))
    issues.extend(_check_unique_attach(files))
    return issues


def _issue(
    loaded: LoadedFile, path: PathKey, message: str, *, is_warning: bool = False
) -> ManifestIssue:
    location = loaded.locate(path)
    return ManifestIssue(location, format_path(path), message, is_warning)


def _check_programme(loaded: LoadedFile) -> Iterator[ManifestIssue]:
    data = loaded.data
    promoter = data["promoter"]
    if not siren_number.is_valid(promoter["siren"]):
        message = f"'{promoter['siren']}' is not a valid SIREN (wrong check digit)"
        yield _issue(loaded, ("promoter", "siren"), message)
    siret = promoter.get("siret")
    if siret is not None:
        yield from _check_siret(loaded, siret, promoter["siren"])
    postal_code = data["address"]["postalCode"]
    if postal_code[:2] not in _VALID_POSTAL_PREFIXES:
        message = f"'{postal_code}' does not start with a French department number"
        yield _issue(loaded, ("address", "postalCode"), message)
    yield from _check_dates(loaded)


def _check_siret(loaded: LoadedFile, siret: str, siren: str) -> Iterator[ManifestIssue]:
    path = ("promoter", "siret")
    if not siret_number.is_valid(siret):
        yield _issue(loaded, path, f"'{siret}' is not a valid SIRET (wrong check digit)")
    elif not siret.startswith(siren):
        yield _issue(loaded, path, f"'{siret}' does not start with the SIREN {siren}")


def _check_dates(loaded: LoadedFile) -> Iterator[ManifestIssue]:
    permit = loaded.data.get("buildingPermit")
    delivery = loaded.data.get("expectedDelivery")
    if not permit or not delivery:
        return
    permit_date = datetime.date.fromisoformat(permit["date"])
    delivery_date = datetime.date.fromisoformat(delivery)
    if delivery_date <= permit_date:
        message = (
            f"expected delivery {delivery} is not after the building permit date "
            f"{permit['date']}"
        )
        yield _issue(loaded, ("expectedDelivery",), message)


def _check_lots(loaded: LoadedFile) -> Iterator[ManifestIssue]:
    lots: list[dict[str, Any]] = loaded.data["lots"]
    numbers: dict[str, int] = {}
    up_ids = {lot["upId"]: index for index, lot in enumerate(lots)}
    annex_owner: dict[str, int] = {}
    for index, lot in enumerate(lots):
        path: PathKey = ("lots", index)
        number = lot["number"]
        if number in numbers:
            first = loaded.locate(("lots", numbers[number], "number")).line
            message = f"lot number '{number}' is used twice (first at line {first})"
            yield _issue(loaded, (*path, "number"), message)
        else:
            numbers[number] = index
        yield from _check_lot_values(loaded, path, lot)
        yield from _check_annexes(loaded, path, lot, lots, up_ids, annex_owner)


def _check_lot_values(
    loaded: LoadedFile, path: PathKey, lot: dict[str, Any]
) -> Iterator[ManifestIssue]:
    for name in ("livingArea", "carrezArea", "price"):
        value = lot.get(name)
        if isinstance(value, Decimal) and value.as_tuple().exponent < -MAX_DECIMAL_PLACES:  # type: ignore[operator]
            message = f"{value} has more than {MAX_DECIMAL_PLACES} decimals"
            yield _issue(loaded, (*path, name), message)
    living = lot.get("livingArea")
    carrez = lot.get("carrezArea")
    if living is not None and carrez is not None and carrez > living:
        message = f"Carrez surface {carrez} is above the surface habitable {living}"
        yield _issue(loaded, (*path, "carrezArea"), message)
    is_dwelling = lot["nature"] in DWELLING_NATURES
    if is_dwelling and living is not None and living < MIN_DWELLING_AREA:
        message = f"surface habitable {living} m² is small for a dwelling; check it"
        yield _issue(loaded, (*path, "livingArea"), message, is_warning=True)


def _check_annexes(
    loaded: LoadedFile,
    path: PathKey,
    lot: dict[str, Any],
    lots: list[dict[str, Any]],
    up_ids: dict[str, int],
    annex_owner: dict[str, int],
) -> Iterator[ManifestIssue]:
    for position, annex in enumerate(lot.get("annexes") or []):
        annex_path = (*path, "annexes", position)
        if annex == lot["upId"]:
            yield _issue(loaded, annex_path, f"lot '{annex}' lists itself as an annex")
            continue
        if annex not in up_ids:
            message = f"annex '{annex}' is not a lot of this programme"
            yield _issue(loaded, annex_path, message)
            continue
        nature = lots[up_ids[annex]]["nature"]
        if nature not in ANNEX_NATURES:
            kinds = ", ".join(ANNEX_NATURES)
            message = f"annex '{annex}' is a lot of nature {nature}; annexes are {kinds}"
            yield _issue(loaded, annex_path, message)
        if annex in annex_owner:
            owner = lots[annex_owner[annex]]["upId"]
            message = f"annex '{annex}' already belongs to lot '{owner}'"
            yield _issue(loaded, annex_path, message)
        else:
            annex_owner[annex] = up_ids[lot["upId"]]


def _records(loaded: LoadedFile) -> Iterator[tuple[PathKey, dict[str, Any]]]:
    yield (), loaded.data
    for index, lot in enumerate(loaded.data["lots"]):
        yield ("lots", index), lot


def _check_unique_up_ids(files: list[LoadedFile]) -> Iterator[ManifestIssue]:
    seen: dict[str, _Seen] = {}
    for loaded in files:
        for path, record in _records(loaded):
            up_id = record["upId"]
            first = seen.get(up_id)
            if first is None:
                seen[up_id] = _Seen(loaded, path)
                continue
            where = first.file.locate((*first.path, "upId"))
            message = f"Up id '{up_id}' is used twice (first at {where})"
            yield _issue(loaded, (*path, "upId"), message)


def _check_unique_attach(files: list[LoadedFile]) -> Iterator[ManifestIssue]:
    seen: dict[int, _Seen] = {}
    for loaded in files:
        for path, record in _records(loaded):
            attach = (record.get("link") or {}).get("attach")
            if attach is None:
                continue
            first = seen.get(attach)
            if first is None:
                seen[attach] = _Seen(loaded, path)
                continue
            where = first.file.locate((*first.path, "link", "attach"))
            message = (
                f"MyNotary record {attach} is attached twice (first at {where}); "
                "one MyNotary record links to one Up record"
            )
            yield _issue(loaded, (*path, "link", "attach"), message)
