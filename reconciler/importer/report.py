"""Render the summary of an import: files, lots, values left out, and every row."""

from __future__ import annotations

from collections import Counter

from reconciler.importer.build import LotOutcome
from reconciler.importer.build import LotState
from reconciler.importer.build import ProgrammeOutcome
from reconciler.importer.rows import SkipKind
from reconciler.importer.rows import SkippedRow
from reconciler.importer.run import ImportReport

_LOT_SYMBOLS = {
    LotState.CREATED: "+",
    LotState.CHANGED: "~",
    LotState.REMOVED: "-",
    LotState.ABSENT: "?",
    LotState.LEFT_OUT: "!",
}
# Skips that a reviewer checks row by row; the others are counted only, because an
# export can hold thousands of rows of other programmes.
_LISTED_SKIPS = (
    SkipKind.DUPLICATE,
    SkipKind.NO_LOT_NUMBER,
    SkipKind.ERROR,
    SkipKind.LEFT_OUT,
)
_COUNTED_SKIPS = {
    SkipKind.EMPTY: "empty",
    SkipKind.NOT_SELECTED: "not selected by the mapping's conditions",
    SkipKind.OTHER_PROGRAMME: "of programmes not selected with --programme",
}


def render_report(report: ImportReport) -> str:
    """Return the summary as text, one fact per line."""
    lines = [f"Read {report.export} ({report.reading}): {report.row_count} row(s)."]
    for outcome in report.outcomes:
        lines.extend(_programme_lines(report, outcome))
    lines.append(_lot_totals(report))
    lines.extend(_left_out_lines(report))
    lines.extend(_row_lines(report))
    lines.extend(str(warning) for warning in report.warnings)
    lines.append(_written_line(report))
    return "\n".join(lines)


def _programme_lines(report: ImportReport, outcome: ProgrammeOutcome) -> list[str]:
    path = report.into / outcome.relative_path
    if outcome.is_new:
        created = sum(1 for lot in outcome.lots if lot.state is LotState.CREATED)
        head = f"{path}: created, programme {outcome.up_id}, {created} lot(s)"
        return [head, *_lot_lines(outcome, {LotState.LEFT_OUT})]
    state = "changed" if outcome.is_changed else "unchanged"
    lines = [f"{path}: {state}, programme {outcome.up_id}"]
    if outcome.fields:
        lines.append(f"  ~ programme fields: {', '.join(outcome.fields)}")
    return lines + _lot_lines(outcome, set(_LOT_SYMBOLS))


def _lot_lines(outcome: ProgrammeOutcome, states: set[LotState]) -> list[str]:
    return [_lot_line(lot) for lot in outcome.lots if lot.state in states]


def _lot_line(lot: LotOutcome) -> str:
    line = f"  {_LOT_SYMBOLS[lot.state]} lot {lot.number} [{lot.up_id}]"
    if lot.state is LotState.CHANGED:
        return f"{line}: {', '.join(lot.fields)}"
    if lot.state is LotState.ABSENT:
        return f"{line}: not in the export; kept (pass --prune to remove it)"
    if lot.state is LotState.REMOVED:
        return f"{line}: not in the export; removed"
    if lot.state is LotState.LEFT_OUT:
        return f"{line}: left out because of an error (see the rows below)"
    return line


def _lot_totals(report: ImportReport) -> str:
    counts = Counter(lot.state for outcome in report.outcomes for lot in outcome.lots)
    parts = [f"{counts[state]} {state.value}" for state in LotState]
    return "Lots: " + ", ".join(parts) + "."


def _left_out_lines(report: ImportReport) -> list[str]:
    rejections = report.rejections
    lines = []
    for up_id, issue in sorted(rejections.programmes.items()):
        lines.append(f"Programme {up_id} left out: {issue}")
    if rejections.omitted:
        lines.append(f"Values left out (onInvalid: omit): {len(rejections.omitted)}")
        lines.extend(f"  {issue}" for issue in sorted(rejections.omitted.values()))
    return lines


def _row_lines(report: ImportReport) -> list[str]:
    skipped = report.skipped
    lines = [
        f"Rows: {report.imported_rows} imported, {len(skipped)} skipped"
        + (":" if skipped else ".")
    ]
    counts = Counter(row.kind for row in skipped)
    for kind, label in _COUNTED_SKIPS.items():
        if counts[kind]:
            lines.append(f"  {counts[kind]} {label}")
    lines.extend(_skip_line(row) for row in skipped if row.kind in _LISTED_SKIPS)
    return lines


def _skip_line(row: SkippedRow) -> str:
    if row.kind is SkipKind.ERROR:
        return f"  {row.detail}"
    return f"  row {row.row}: {row.detail}"


def _written_line(report: ImportReport) -> str:
    if not report.written:
        return "No manifest changed; nothing was written."
    return f"Wrote {len(report.written)} manifest(s)."
