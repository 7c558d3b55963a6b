"""Import a CSV export into manifests: the steps behind ``reconciler import csv``."""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from reconciler.errors import ManifestIssue
from reconciler.importer.build import BuildOptions
from reconciler.importer.build import BuildResult
from reconciler.importer.build import Output
from reconciler.importer.build import ProgrammeOutcome
from reconciler.importer.build import Rejections
from reconciler.importer.build import build_documents
from reconciler.importer.errors import LotGridError
from reconciler.importer.errors import RowIssue
from reconciler.importer.existing import ExistingManifest
from reconciler.importer.existing import load_existing
from reconciler.importer.grid import Grid
from reconciler.importer.grid import read_grid
from reconciler.importer.mapping import UP_ID
from reconciler.importer.mapping import Mapping
from reconciler.importer.mapping import load_mapping
from reconciler.importer.merge import ImportedProgramme
from reconciler.importer.merge import merge_records
from reconciler.importer.rows import ReadResult
from reconciler.importer.rows import RowRecord
from reconciler.importer.rows import Selection
from reconciler.importer.rows import SkipKind
from reconciler.importer.rows import SkippedRow
from reconciler.importer.rows import read_records
from reconciler.importer.validation import check_outputs

HEADER = (
    "Imported from {export} with the mapping {mapping} by `reconciler import csv`.\n"
    "A later import keeps comments, link intents and the fields the export lacks."
)


@dataclass(frozen=True)
class ImportRequest:
    """Import settings: the export, its mapping, the target folder and options."""

    export: Path
    mapping: Path
    into: Path = Path("manifests")
    programmes: tuple[str, ...] = ()
    prune: bool = False
    strict: bool = False
    encoding: str | None = None
    separator: str | None = None


@dataclass
class ImportReport:
    """Outcome of an import: rows read and skipped, lots changed, files written."""

    export: str
    reading: str
    into: Path
    row_count: int
    outcomes: list[ProgrammeOutcome] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    rejections: Rejections = field(default_factory=Rejections)
    warnings: list[ManifestIssue] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)

    @property
    def imported_rows(self) -> int:
        """Return how many rows went into the manifests."""
        return self.row_count - len(self.skipped)


def import_csv(request: ImportRequest) -> ImportReport:
    """Import the export of ``request``; raise ``LotGridError`` and write nothing
    when it can't be imported."""
    mapping = load_mapping(request.mapping)
    grid = read_grid(
        request.export,
        request.encoding or mapping.encoding,
        request.separator or mapping.separator,
    )
    read = read_records(grid, mapping, _selection(mapping, request))
    if read.fatal:
        raise LotGridError(read.fatal)
    programmes, fatal = merge_records(read.records, mapping)
    fatal.extend(_missing_programmes(request, programmes))
    if fatal:
        raise LotGridError(fatal)
    existing = load_existing(request.into)
    rejections = Rejections(dict(read.errors.lots), dict(read.errors.programmes))
    options = BuildOptions(_header(grid, mapping), request.prune)
    build, warnings = _build_valid(
        programmes, existing, rejections, options, (mapping, request.into)
    )
    _check_errors(request, read, rejections)
    report = ImportReport(grid.file, grid.description, request.into, len(grid.rows))
    report.outcomes = build.outcomes
    report.rejections = rejections
    report.warnings = warnings
    report.skipped = _skipped_rows(read, programmes, rejections)
    report.written = _write_outputs(request.into, build.outputs)
    return report


def _selection(mapping: Mapping, request: ImportRequest) -> Selection:
    if UP_ID in mapping.programme:
        return Selection(programmes=frozenset(request.programmes))
    if len(request.programmes) != 1:
        message = (
            f"the mapping {mapping.file} reads no programme Up id, so the export is "
            "one programme: name it with one --programme UP_ID"
        )
        raise LotGridError([RowIssue(None, message)])
    return Selection(single=request.programmes[0])


def _missing_programmes(
    request: ImportRequest, programmes: dict[str, ImportedProgramme]
) -> list[RowIssue]:
    issues = []
    for up_id in request.programmes:
        if up_id not in programmes:
            message = f"programme {up_id} has no rows in {request.export.name}"
            issues.append(RowIssue(None, f"{message}; check --programme"))
    return issues


def _header(grid: Grid, mapping: Mapping) -> str:
    return HEADER.format(export=grid.file, mapping=Path(mapping.file).name)


def _build_valid(
    programmes: dict[str, ImportedProgramme],
    existing: dict[str, ExistingManifest],
    rejections: Rejections,
    options: BuildOptions,
    target: tuple[Mapping, Path],
) -> tuple[BuildResult, list[ManifestIssue]]:
    """Build the documents, leaving out what makes them invalid, until they pass.

    Each round leaves out at least one more lot, programme or value, so the loop
    ends.
    """
    mapping, folder = target
    while True:
        build = build_documents(programmes, existing, rejections, options)
        if build.unresolved:
            rejections.lots.update(build.unresolved)
            continue
        verdict = check_outputs(folder, build.outputs, mapping)
        if verdict.fatal:
            raise LotGridError(verdict.fatal)
        if not verdict.rejections.count:
            return build, verdict.warnings
        before = rejections.count
        _add_rejections(rejections, verdict.rejections)
        if rejections.count == before:
            raise AssertionError("validation failed on values already left out")


def _add_rejections(rejections: Rejections, new: Rejections) -> None:
    for key, issue in new.lots.items():
        rejections.lots.setdefault(key, issue)
    for up_id, issue in new.programmes.items():
        rejections.programmes.setdefault(up_id, issue)
    for value_key, issue in new.omitted.items():
        rejections.omitted.setdefault(value_key, issue)


def _check_errors(
    request: ImportRequest, read: ReadResult, rejections: Rejections
) -> None:
    """Stop the import on row errors with --strict, and before pruning."""
    issues = [
        *read.errors.unplaced,
        *rejections.lots.values(),
        *rejections.programmes.values(),
    ]
    if not issues:
        return
    if request.strict:
        raise LotGridError(issues)
    if request.prune:
        note = RowIssue(None, "--prune needs an export without row errors")
        raise LotGridError([*issues, note])


def _skipped_rows(
    read: ReadResult, programmes: dict[str, ImportedProgramme], rejections: Rejections
) -> list[SkippedRow]:
    """Return every skipped row: those skipped while reading, and those whose lots
    were all left out."""
    skipped = list(read.skipped)
    for record in read.records:
        reason = _left_out_reason(record, rejections)
        if reason is not None:
            skipped.append(reason)
    return sorted(skipped, key=lambda row: row.row)


def _left_out_reason(record: RowRecord, rejections: Rejections) -> SkippedRow | None:
    issues = []
    for lot in record.lots:
        issue = rejections.lots.get((record.programme_id, lot.number))
        issue = rejections.programmes.get(record.programme_id, issue)
        if issue is None:
            return None
        issues.append(issue)
    first = min(issues, key=lambda issue: issue.where.row if issue.where else 0)
    if first.where is not None and first.where.row == record.row:
        return SkippedRow(record.row, SkipKind.ERROR, str(first))
    cause = f"row {first.where.row}" if first.where is not None else "an error"
    detail = f"its lot is left out because of {cause}"
    return SkippedRow(record.row, SkipKind.LEFT_OUT, detail)


def _write_outputs(folder: Path, outputs: list[Output]) -> list[Path]:
    """Write each output through a temporary file, so a file is whole or unchanged."""
    written = []
    for output in outputs:
        path = folder / output.relative_path
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as stream:
            stream.write(output.text)
        os.replace(temporary, path)
        written.append(path)
    return written
