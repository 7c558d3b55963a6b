"""Manifests: find, load, validate and read them into the desired state.

``load_manifests`` is the one entry point. It reports every error of every file in
one ``ManifestError``, so nothing reaches MyNotary while any manifest is invalid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.errors import ManifestError
from reconciler.errors import ManifestIssue
from reconciler.errors import SourceLocation
from reconciler.fields import LOT_FIELDS
from reconciler.fields import PROGRAMME_FIELDS
from reconciler.fields import normalize_fields
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import LoadError
from reconciler.manifest.loader import PathKey
from reconciler.manifest.loader import coerce_to_text
from reconciler.manifest.loader import load_file
from reconciler.manifest.model import LinkIntent
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.manifest.rules import check_rules
from reconciler.manifest.schema import check_schema

MANIFEST_SUFFIXES = (".yaml", ".yml")

# Fields whose value is text in every apiVersion: a plain scalar there is read as
# the characters written, so that 010 stays "010" and NO stays "NO".
_PROGRAMME_TEXT_PATHS: tuple[PathKey, ...] = (
    ("upId",),
    ("name",),
    ("address", "streetNumber"),
    ("address", "street"),
    ("address", "postalCode"),
    ("address", "city"),
    ("address", "country"),
    ("promoter", "name"),
    ("promoter", "siren"),
    ("promoter", "siret"),
    ("buildingPermit", "number"),
    ("buildingPermit", "date"),
    ("expectedDelivery",),
    ("link", "reason"),
)
_LOT_TEXT_KEYS: tuple[PathKey, ...] = (
    ("upId",),
    ("number",),
    ("building",),
    ("orientation",),
    ("link", "reason"),
)


@dataclass(frozen=True)
class LoadedManifests:
    """The desired state read from manifests, and the warnings found on the way."""

    programmes: tuple[ProgrammeManifest, ...]
    warnings: tuple[ManifestIssue, ...]
    files: tuple[Path, ...]


def find_manifest_files(paths: Iterable[Path]) -> list[Path]:
    """Return the manifest files named by ``paths`` (files, or folders searched
    recursively), sorted and without repeats."""
    found: set[Path] = set()
    for path in paths:
        if path.is_dir():
            found.update(_files_under(path))
        elif path.exists():
            found.add(path)
        else:
            raise ManifestError([_missing_path_issue(path)])
    return sorted(found)


def _files_under(folder: Path) -> Iterator[Path]:
    for candidate in folder.rglob("*"):
        if candidate.suffix in MANIFEST_SUFFIXES and candidate.is_file():
            yield candidate


def _missing_path_issue(path: Path) -> ManifestIssue:
    message = "no such file or folder; pass manifest files or folders"
    return ManifestIssue(SourceLocation(str(path), 1, 1), "", message)


def display_name(path: Path) -> str:
    """Return ``path`` relative to the working folder when it lies under it."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def load_manifests(paths: Iterable[Path]) -> LoadedManifests:
    """Load and validate every manifest under ``paths``.

    Raises ``ManifestError`` with all errors of all files, sorted by file and line,
    when any file is invalid.
    """
    files = find_manifest_files(paths)
    issues: list[ManifestIssue] = []
    loaded_files: list[LoadedFile] = []
    for path in files:
        try:
            loaded = load_file(path, display_name(path))
        except LoadError as error:
            issues.extend(error.issues)
            continue
        _coerce_text_fields(loaded)
        schema_issues = check_schema(loaded)
        issues.extend(schema_issues)
        if not schema_issues:
            loaded_files.append(loaded)
    issues.extend(check_rules(loaded_files))
    if any(not issue.is_warning for issue in issues):
        raise ManifestError(issues)
    programmes = tuple(_read_programme(loaded) for loaded in loaded_files)
    return LoadedManifests(programmes, tuple(sorted(issues)), tuple(files))


def _coerce_text_fields(loaded: LoadedFile) -> None:
    data = loaded.data
    if not isinstance(data, dict):
        return
    paths: list[PathKey] = list(_PROGRAMME_TEXT_PATHS)
    lots = data.get("lots")
    if isinstance(lots, list):
        for index, lot in enumerate(lots):
            paths.extend(("lots", index, *key) for key in _LOT_TEXT_KEYS)
            annexes = lot.get("annexes") if isinstance(lot, dict) else None
            if isinstance(annexes, list):
                paths.extend(("lots", index, "annexes", i) for i in range(len(annexes)))
    coerce_to_text(loaded, iter(paths))


def _read_link(data: dict[str, Any]) -> LinkIntent | None:
    link = data.get("link")
    if not link:
        return None
    return LinkIntent(
        attach=link.get("attach"),
        is_unlinked=bool(link.get("unlinked")),
        reason=link.get("reason"),
    )


def _read_programme(loaded: LoadedFile) -> ProgrammeManifest:
    data = loaded.data
    lots = tuple(
        LotManifest(
            up_id=lot["upId"],
            fields=normalize_fields(LOT_FIELDS, lot),
            link=_read_link(lot),
            location=loaded.locate(("lots", index)),
        )
        for index, lot in enumerate(data["lots"])
    )
    return ProgrammeManifest(
        up_id=data["upId"],
        file=loaded.file,
        fields=normalize_fields(PROGRAMME_FIELDS, data),
        link=_read_link(data),
        lots=lots,
        location=loaded.locate(()),
    )
