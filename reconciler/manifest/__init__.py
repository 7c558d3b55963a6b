"""Manifests: find, load, validate and read them into the desired state.

``load_manifests`` is the one entry point. It reports every error of every file in
one ``ManifestError``, so nothing reaches MyNotary while any manifest is invalid.
Each file goes through three stages, and all three run on every file that parses:
reading (``loader``), the JSON Schema (``schema``), and the rules a schema can't
express (``rules``). A field gets one issue, from the earliest stage that found one.
"""

from __future__ import annotations

import logging
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
from reconciler.manifest.loader import load_file
from reconciler.manifest.model import LinkIntent
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.manifest.rules import check_rules
from reconciler.manifest.schema import SUPPORTED_API_VERSIONS
from reconciler.manifest.schema import check_schema
from reconciler.manifest.schema import text_paths

logger = logging.getLogger(__name__)

MANIFEST_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class LoadedManifests:
    """The desired state read from manifests, and the warnings found on the way."""

    programmes: tuple[ProgrammeManifest, ...]
    warnings: tuple[ManifestIssue, ...]
    files: tuple[Path, ...]


def find_manifest_files(paths: Iterable[Path]) -> list[Path]:
    """Return the manifest files named by ``paths`` (files, or folders searched
    recursively), sorted and without repeats.

    Raises ``ManifestError`` naming every path that is neither a file nor a folder.
    """
    files, issues = _find_files(paths)
    if issues:
        raise ManifestError(issues)
    return files


def _find_files(paths: Iterable[Path]) -> tuple[list[Path], list[ManifestIssue]]:
    found: set[Path] = set()
    issues: list[ManifestIssue] = []
    for path in paths:
        if path.is_dir():
            found.update(_files_under(path))
        elif path.is_file():
            found.add(path)
        elif path.exists():
            issues.append(_path_issue(path, "not a regular file; pass manifest files"))
        else:
            message = "no such file or folder; pass manifest files or folders"
            issues.append(_path_issue(path, message))
    return sorted(found), issues


def _files_under(folder: Path) -> Iterator[Path]:
    root = folder.resolve()
    for candidate in folder.rglob("*"):
        if candidate.suffix not in MANIFEST_SUFFIXES or not candidate.is_file():
            continue
        # A symbolic link must not make the loader read outside the given folder.
        if not candidate.resolve().is_relative_to(root):
            logger.warning(
                "skipped %s: it is a symbolic link to %s, outside %s",
                candidate,
                candidate.resolve(),
                folder,
            )
            continue
        yield candidate


def _path_issue(path: Path, message: str) -> ManifestIssue:
    return ManifestIssue(SourceLocation(display_name(path), 1, 1), "", message)


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
    files, issues = _find_files(paths)
    parsed: list[LoadedFile] = []
    for path in files:
        try:
            loaded = _load(path)
        except LoadError as error:
            issues.extend(error.issues)
            if error.loaded is None:
                continue
            loaded = error.loaded
        parsed.append(loaded)
        issues.extend(_new_fields_only(check_schema(loaded), issues))
    issues.extend(_new_fields_only(check_rules(parsed), issues))
    if any(not issue.is_warning for issue in issues):
        raise ManifestError(issues)
    programmes = tuple(_read_programme(loaded) for loaded in parsed)
    return LoadedManifests(programmes, tuple(sorted(issues)), tuple(files))


def _load(path: Path) -> LoadedFile:
    # NOTE: a plain scalar is read as text where the v1 schema expects text. A
    # second apiVersion that changes a field's type needs its version known
    # before reading, or a second reading.
    return load_file(
        path, display_name(path), text_paths=text_paths(SUPPORTED_API_VERSIONS[-1])
    )


def _new_fields_only(
    found: list[ManifestIssue], reported: list[ManifestIssue]
) -> list[ManifestIssue]:
    """Return the issues of ``found`` on fields that no issue of ``reported`` is on.

    A field already reported keeps its first issue: a value that is not a number
    needs no second message about its decimals.
    """
    reported_fields = {(issue.location.file, issue.field_path) for issue in reported}
    return [
        issue
        for issue in found
        if not issue.field_path
        or (issue.location.file, issue.field_path) not in reported_fields
    ]


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
        )
        for lot in data["lots"]
    )
    return ProgrammeManifest(
        up_id=data["upId"],
        file=loaded.file,
        fields=normalize_fields(PROGRAMME_FIELDS, data),
        link=_read_link(data),
        lots=lots,
    )
