"""Check the manifests an import would write, and trace each problem to its cell.

The would-be folder (existing manifests plus the import's output) is written to a
temporary folder and loaded with ``load_manifests``, the check behind ``reconciler
validate``, so the import never writes a manifest that command rejects. Each error
is traced back to the row and column of the value that causes it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from reconciler.errors import ManifestError
from reconciler.errors import ManifestIssue
from reconciler.errors import SourceLocation
from reconciler.importer.build import Output
from reconciler.importer.build import Rejections
from reconciler.importer.document import LOTS
from reconciler.importer.errors import CellRef
from reconciler.importer.errors import RowIssue
from reconciler.importer.mapping import FieldRule
from reconciler.importer.mapping import Mapping
from reconciler.importer.merge import ImportedLot
from reconciler.importer.merge import ImportedProgramme
from reconciler.importer.values import Evaluated
from reconciler.manifest import find_manifest_files
from reconciler.manifest import load_manifests

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_REQUIRED_FIELD = re.compile(r"missing required field '([^']+)'")


@dataclass
class Verdict:
    """The result of one check: what to leave out, what stops the import, and the
    warnings of the written files."""

    rejections: Rejections = field(default_factory=Rejections)
    fatal: list[RowIssue] = field(default_factory=list)
    warnings: list[ManifestIssue] = field(default_factory=list)


def check_outputs(folder: Path, outputs: list[Output], mapping: Mapping) -> Verdict:
    """Validate ``folder`` as it would be after writing ``outputs``."""
    with tempfile.TemporaryDirectory(prefix="reconciler-import-") as scratch:
        root = Path(scratch)
        _copy_manifests(folder, root)
        for output in outputs:
            target = root / output.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(output.text, encoding="utf-8")
        try:
            loaded = load_manifests([root])
        except ManifestError as error:
            return _trace(error.issues, root, outputs, mapping)
        return Verdict(warnings=_relocate(loaded.warnings, root, folder, outputs))


def _copy_manifests(folder: Path, root: Path) -> None:
    if not folder.is_dir():
        return
    for path in find_manifest_files([folder]):
        target = root / path.relative_to(folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)


def _relative(issue: ManifestIssue, root: Path) -> Path | None:
    path = Path(issue.location.file)
    if not path.is_absolute():
        path = Path(os.getcwd()) / path
    try:
        return path.resolve().relative_to(root.resolve())
    except ValueError:
        return None


def _relocate(
    issues: Iterable[ManifestIssue], root: Path, folder: Path, outputs: list[Output]
) -> list[ManifestIssue]:
    """Return the warnings of written files, placed in ``folder`` instead of
    the temporary one."""
    written = {output.relative_path for output in outputs}
    placed = []
    for issue in issues:
        relative = _relative(issue, root)
        if relative is None or relative not in written:
            continue
        location = SourceLocation(
            str(folder / relative), issue.location.line, issue.location.column
        )
        placed.append(
            ManifestIssue(location, issue.field_path, issue.message, issue.is_warning)
        )
    return placed


def _trace(
    issues: Iterable[ManifestIssue], root: Path, outputs: list[Output], mapping: Mapping
) -> Verdict:
    by_path = {output.relative_path: output for output in outputs}
    verdict = Verdict()
    for issue in issues:
        if issue.is_warning:
            continue
        relative = _relative(issue, root)
        output = by_path.get(relative) if relative is not None else None
        if output is None or not _place(issue, output, mapping, verdict.rejections):
            where = (
                f"{relative}:{issue.location.line}" if relative else issue.location.file
            )
            path = f" {issue.field_path}" if issue.field_path else ""
            message = f"the import would make {where}{path} invalid: {issue.message}"
            verdict.fatal.append(RowIssue(None, message))
    return verdict


def parse_field_path(text: str) -> tuple[str | int, ...]:
    """Return the keys of a field path as messages write it: ``lots[3].floor``."""
    return tuple(
        int(index) if index else name for name, index in _PATH_PART.findall(text)
    )


def _place(
    issue: ManifestIssue, output: Output, mapping: Mapping, rejections: Rejections
) -> bool:
    """Record what ``issue`` leaves out; return False if no imported value causes it."""
    path = parse_field_path(issue.field_path)
    programme = output.programme
    if len(path) >= 2 and path[0] == LOTS and isinstance(path[1], int):
        lot = _lot_at(output, path[1])
        if lot is None:
            return False
        target = _target(path[2:], issue.message)
        _reject_lot(programme, lot, target, issue.message, mapping, rejections)
        return True
    target = _target(path, issue.message)
    _reject_programme(programme, target, issue.message, rejections)
    return True


def _lot_at(output: Output, index: int) -> ImportedLot | None:
    nodes = output.document.get(LOTS) or []
    if index >= len(nodes):
        return None
    up_id = str(nodes[index].get("upId"))
    for lot in output.programme.lots.values():
        if lot.up_id == up_id:
            return lot
    return None


def _target(path: tuple[str | int, ...], message: str) -> str:
    """Return the field an issue is about: its path, or the field a "missing
    required field" message names."""
    names = [str(part) for part in path if isinstance(part, str)]
    required = _REQUIRED_FIELD.search(message)
    if required is not None:
        names.append(required.group(1))
    return ".".join(names)


def _reject_lot(
    programme: ImportedProgramme,
    lot: ImportedLot,
    target: str,
    message: str,
    mapping: Mapping,
    rejections: Rejections,
) -> None:
    evaluated = _value_for(lot.values, target)
    if (
        evaluated is not None
        and evaluated.rule.omits_invalid
        and not evaluated.is_empty
    ):
        key = (programme.up_id, lot.number, evaluated.rule.target)
        rejections.omitted.setdefault(key, RowIssue(evaluated.source, message))
        return
    where = _cell(evaluated, lot.rows[0], mapping.lot_rule(target))
    rejections.lots.setdefault((programme.up_id, lot.number), RowIssue(where, message))


def _reject_programme(
    programme: ImportedProgramme, target: str, message: str, rejections: Rejections
) -> None:
    evaluated = _value_for(programme.values, target)
    where = _cell(evaluated, programme.rows[0], None)
    rejections.programmes.setdefault(programme.up_id, RowIssue(where, message))


def _value_for(values: dict[str, Evaluated], target: str) -> Evaluated | None:
    """Return the value of ``target``, or of the first field under it."""
    if target in values:
        return values[target]
    for name, evaluated in values.items():
        if target and name.startswith(target + "."):
            return evaluated
    return None


def _cell(evaluated: Evaluated | None, row: int, rule: FieldRule | None) -> CellRef:
    if evaluated is not None:
        return evaluated.source
    return CellRef(row, rule.shown_column if rule is not None else None)
