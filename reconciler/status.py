"""The links screen: every programme and lot with its link and sync state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.manifest.model import LinkIntent
from reconciler.manifest.model import ProgrammeManifest
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.render.text import format_field

IN_SYNC = "in sync"
OUT_OF_SYNC = "out of sync"
NOT_ON_MYNOTARY = "not on MyNotary"
NOT_PUSHED = "not pushed"
BLOCKED = "blocked"


@dataclass(frozen=True)
class StatusRow:
    """One line of the links screen."""

    up_id: str
    kind: str
    label: str
    programme_up_id: str
    link: str
    mynotary_id: int | None
    sync: str
    differences: tuple[FieldChange, ...]
    detail: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "upId": self.up_id,
            "kind": self.kind,
            "label": self.label,
            "programme": self.programme_up_id,
            "link": self.link,
            "mynotaryId": self.mynotary_id,
            "sync": self.sync,
            "differences": [
                {
                    "field": item.name,
                    "up": format_field(item.name, item.after),
                    "mynotary": format_field(item.name, item.before),
                }
                for item in self.differences
            ],
            "detail": self.detail,
        }


def compute_status(
    programmes: tuple[ProgrammeManifest, ...], links: LinkTable, plan: Plan
) -> list[StatusRow]:
    """Return a row per programme and lot of the manifests, in manifest order."""
    changes = {change.up_id: change for change in plan.changes}
    problems = {problem.up_id: problem.message for problem in plan.problems}
    rows: list[StatusRow] = []
    for programme in programmes:
        programme_unlinked = programme.link is not None and programme.link.is_unlinked
        if programme.up_id in problems:
            # The plan skips the lots of a blocked programme, so they were never
            # compared and must not show as in sync.
            for lot in programme.lots:
                problems.setdefault(lot.up_id, "not compared: its programme is blocked")
        records = [
            (
                programme.up_id,
                "programme",
                f'programme "{programme.name}"',
                programme.link,
            )
        ]
        records += [
            (lot.up_id, "lot", f"lot {lot.number} ({lot.nature})", lot.link)
            for lot in programme.lots
        ]
        for up_id, kind, label, intent in records:
            if programme_unlinked:
                intent = LinkIntent(is_unlinked=True)
            row = _row(
                up_id, kind, label, programme.up_id, intent, links, changes, problems
            )
            rows.append(row)
    return rows


def _row(
    up_id: str,
    kind: str,
    label: str,
    programme_up_id: str,
    intent: LinkIntent | None,
    links: LinkTable,
    changes: dict[str, Change],
    problems: dict[str, str],
) -> StatusRow:
    link = links.get(up_id)
    change = changes.get(up_id)
    mynotary_id = link.mynotary_id if link is not None else None
    link_text = "not linked" if link is None else link.state.value
    if link is not None and link.state is LinkState.LINKED:
        link_text = f"linked #{mynotary_id}"
    if intent is not None and intent.is_unlinked:
        link_text = "unlinked"
    sync, detail, differences = _sync_state(change, problems.get(up_id), intent)
    return StatusRow(
        up_id,
        kind,
        label,
        programme_up_id,
        link_text,
        mynotary_id,
        sync,
        differences,
        detail,
    )


def _sync_state(
    change: Change | None, problem: str | None, intent: LinkIntent | None
) -> tuple[str, str | None, tuple[FieldChange, ...]]:
    if problem is not None:
        return BLOCKED, problem, ()
    if intent is not None and intent.is_unlinked:
        detail = "will be unlinked" if change is not None else None
        return NOT_PUSHED, detail, ()
    if change is None:
        return IN_SYNC, None, ()
    if change.action is Action.CREATE:
        return NOT_ON_MYNOTARY, None, ()
    if change.action is Action.LINK:
        detail = f"to link to #{change.mynotary_id}"
        sync = OUT_OF_SYNC if change.fields else IN_SYNC
        return sync, detail, change.fields
    return OUT_OF_SYNC, None, change.fields


def render_status(rows: list[StatusRow]) -> str:
    """Return the links screen as an aligned text table."""
    header = ("UP ID", "RECORD", "LINK", "SYNC")
    table = [header] + [(row.up_id, row.label, row.link, row.sync) for row in rows]
    widths = [max(len(line[column]) for line in table) for column in range(4)]
    lines: list[str] = []
    for index, line in enumerate(table):
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=True)]
        lines.append("  ".join(cells).rstrip())
        if index == 0:
            continue
        row = rows[index - 1]
        if row.detail:
            lines.append(f"    {row.detail}")
        for item in row.differences:
            up = format_field(item.name, item.after)
            remote = format_field(item.name, item.before)
            lines.append(f"    {item.name}: Up {up} / MyNotary {remote}")
    in_sync = sum(1 for row in rows if row.sync == IN_SYNC)
    lines.append("")
    lines.append(f"{len(rows)} records: {in_sync} in sync, {len(rows) - in_sync} not.")
    return "\n".join(lines) + "\n"
