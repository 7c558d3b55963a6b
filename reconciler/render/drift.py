"""Render a drift report as text for a terminal, or as Markdown for a GitHub issue."""

from __future__ import annotations

import html
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field

from reconciler.drift import DriftedRecord
from reconciler.drift import DriftReport
from reconciler.drift import OrphanRecord
from reconciler.drift import RecordRef
from reconciler.errors import EXIT_CHANGES
from reconciler.errors import EXIT_OK
from reconciler.render.markdown import MAX_LENGTH
from reconciler.render.markdown import escape
from reconciler.render.markdown import field_cells
from reconciler.render.markdown import fit_sections
from reconciler.render.text import Styler
from reconciler.render.text import format_field

DEFAULT_FULL_REPORT = "the JSON report (`reconciler drift --format json`)"


def drift_exit_status(report: DriftReport) -> int:
    """Return the exit status of ``reconciler drift``: 2 on drift, else 0."""
    return EXIT_CHANGES if report.has_drift else EXIT_OK


def summary_line(report: DriftReport) -> str:
    """Return one sentence with the count of each kind of finding."""
    if not report.has_drift:
        return "No drift: MyNotary matches the manifests for every linked record."
    return (
        f"Drift: {len(report.drifted)} linked record(s) changed on MyNotary, "
        f"{len(report.missing)} missing on MyNotary, {len(report.orphans)} "
        "orphan(s)."
    )


def _pending_line(report: DriftReport) -> str | None:
    if not report.pending_changes and not report.problems:
        return None
    return (
        f"Not drift, but pending: {report.pending_changes} other change(s) and "
        f"{report.problems} problem(s) in the plan; run `reconciler plan`."
    )


def _digest_line(report: DriftReport) -> str:
    return f"Drift digest: {report.digest}"


# Grouping


@dataclass
class _Group:
    heading: str
    drifted: list[DriftedRecord] = field(default_factory=list)
    missing: list[RecordRef] = field(default_factory=list)
    orphans: list[OrphanRecord] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.drifted) + len(self.missing) + len(self.orphans)


def _heading(name: str, up_id: str) -> str:
    return up_id if name == up_id else f"{name} [{up_id}]"


def _groups(report: DriftReport) -> Iterator[_Group]:
    """Yield the findings per programme, programmes in order of first finding."""
    groups: dict[str, _Group] = {}

    def group(name: str, up_id: str) -> _Group:
        return groups.setdefault(up_id, _Group(_heading(name, up_id)))

    for item in report.drifted:
        group(item.record.programme_name, item.record.programme_up_id).drifted.append(
            item
        )
    for ref in report.missing:
        group(ref.programme_name, ref.programme_up_id).missing.append(ref)
    for orphan in report.orphans:
        group(orphan.programme_name, orphan.programme_up_id).orphans.append(orphan)
    yield from groups.values()


def _ref_text(ref: RecordRef) -> str:
    return f"{ref.label} #{ref.mynotary_id} [{ref.up_id}]"


def _orphan_text(orphan: OrphanRecord) -> str:
    number = "without a lot number" if orphan.lot_number is None else orphan.lot_number
    return f"lot {number} #{orphan.mynotary_id} ({orphan.record_type})"


# Text


def render_drift_text(report: DriftReport, styler: Styler | None = None) -> str:
    """Return the report as text; ``styler`` colours the markers on a terminal."""
    style = styler or (lambda text, colour: text)
    lines = [f"Target: {report.target}", ""]
    for group in _groups(report):
        lines.append(f"Programme {group.heading}")
        for item in group.drifted:
            marker = style("~", "yellow")
            lines.append(f"  {marker} changed on MyNotary: {_ref_text(item.record)}")
            for change in item.fields:
                up = format_field(change.name, change.after)
                remote = format_field(change.name, change.before)
                lines.append(f"      {change.name}: Up {up}, MyNotary {remote}")
        for ref in group.missing:
            lines.append(f"  {style('!', 'red')} missing on MyNotary: {_ref_text(ref)}")
        for orphan in group.orphans:
            marker = style("?", "cyan")
            lines.append(
                f"  {marker} orphan, not in the link table: {_orphan_text(orphan)}"
            )
        lines.append("")
    pending = _pending_line(report)
    if pending is not None:
        lines.append(pending)
    lines.append(summary_line(report))
    lines.append(_digest_line(report))
    return "\n".join(lines) + "\n"


# Markdown


def render_drift_markdown(
    report: DriftReport,
    *,
    full_report: str = DEFAULT_FULL_REPORT,
    max_length: int = MAX_LENGTH,
) -> str:
    """Return the report as Markdown of at most ``max_length`` characters."""
    status = drift_exit_status(report)
    head_lines = [
        f"### {escape(summary_line(report))}",
        "",
        f"Target: {escape(str(report.target))}<br>",
        f"Digest: `{report.digest}`<br>",
        f"Exit status: {status} ({'drift' if status else 'no drift'})",
        "",
    ]
    pending = _pending_line(report)
    if pending is not None:
        head_lines.extend([escape(pending), ""])
    head = "\n".join(head_lines) + "\n"
    sections = [(group.count, _section(group)) for group in _groups(report)]
    tail = f"Drift digest: `{report.digest}`\n"
    return fit_sections(head, sections, tail, full_report, max_length, "finding")


def _section(group: _Group) -> str:
    lines = [
        "<details open>",
        f"<summary>{html.escape(group.heading)}: {group.count} finding(s)</summary>",
        "",
    ]
    for item in group.drifted:
        lines.append(f"**~ changed on MyNotary:** {escape(_ref_text(item.record))}")
        lines.extend(["", "| Field | Up value | MyNotary value |", "|---|---|---|"])
        for change in item.fields:
            up, remote = field_cells(change)
            lines.append(f"| {escape(change.name)} | {up} | {remote} |")
        lines.append("")
    for ref in group.missing:
        lines.extend([f"**! missing on MyNotary:** {escape(_ref_text(ref))}", ""])
    for orphan in group.orphans:
        text = escape(_orphan_text(orphan))
        lines.extend([f"**? orphan, not in the link table:** {text}", ""])
    lines.extend(["</details>", "", ""])
    return "\n".join(lines)
