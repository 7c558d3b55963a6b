"""Checks that only an approved plan is applied, and the log that records applies.

Two ways apply what reviewers approved, and both refuse before writing anything:

- ``apply --plan FILE`` applies a saved plan unless it is stale: the manifests or
  the link table changed since it was made, a MyNotary record it touches has a
  newer version or is gone, or the plan file was applied already.
- ``apply --expect-digest DIGEST`` computes a fresh plan and applies it only if its
  digest is DIGEST, or if an apply of DIGEST started and did not finish and the
  fresh plan consists only of that plan's changes not yet done.

The apply log is a JSON-lines file beside the link table (``links.yaml.applied``
for ``links.yaml``). Each line is synced to disk before the first write to
MyNotary. Unlike the link table's journal it is never emptied, so it still
contains an approval after an apply that failed and saved the table.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Protocol

from reconciler.errors import ReconcilerError
from reconciler.links import TargetIdentity
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import Plan
from reconciler.planfile import SavedPlan
from reconciler.planfile import digest_link_table
from reconciler.planfile import digest_manifests
from reconciler.planfile import encode_value
from reconciler.planfile import plan_digest

Record = dict[str, Any]

PLAN_FILE_ENTRY = "plan-file"
APPROVED_ENTRY = "approved"
FINISHED_ENTRY = "finished"


class StalePlanError(ReconcilerError):
    """A saved plan no longer matches its inputs, or was applied already."""


class DigestMismatchError(ReconcilerError):
    """A fresh plan is not the plan whose digest was approved."""


class RecordReader(Protocol):
    """The read of ``MyNotaryClient`` that the version check needs."""

    async def get_record(self, record_id: int) -> Record | None: ...


# The apply log


@dataclass(frozen=True)
class ApprovedChange:
    """The change an approval allows for one record: its action and values written."""

    action: str
    up_id: str
    after: tuple[tuple[str, Any], ...]

    @classmethod
    def of(cls, change: Change) -> ApprovedChange:
        after = tuple(
            (item.name, encode_value(item.name, item.after)) for item in change.fields
        )
        return cls(change.action.value, change.up_id, after)

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "upId": self.up_id,
            "after": [list(pair) for pair in self.after],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ApprovedChange:
        after = tuple((str(name), value) for name, value in data["after"])
        return cls(str(data["action"]), str(data["upId"]), after)

    def covers(self, change: Change) -> bool:
        """Return whether ``change`` is this approved change, or what is left of it.

        A create whose response was lost comes back as a link that adopts the
        created record, so an approved create also covers that link.
        """
        if change.up_id != self.up_id:
            return False
        adopted = self.action == Action.CREATE.value and change.action is Action.LINK
        if change.action.value != self.action and not adopted:
            return False
        return set(ApprovedChange.of(change).after) <= set(self.after)


class ApplyLog:
    """The log of applies beside a link table: plan files applied, approvals."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @classmethod
    def beside(cls, links_path: Path) -> ApplyLog:
        return cls(links_path.with_name(links_path.name + ".applied"))

    def entries(self) -> list[dict[str, Any]]:
        """Return the log's entries; an incomplete last line is skipped."""
        if not self.path.exists():
            return []
        entries = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(entry, dict):
                entries.append(entry)
        return entries

    def applied_at(self, plan_id: str) -> str | None:
        """Return when the plan file ``plan_id`` was applied, or None if never."""
        for entry in self.entries():
            if entry.get("type") == PLAN_FILE_ENTRY and entry.get("planId") == plan_id:
                return str(entry.get("at"))
        return None

    def record_plan_file(self, saved: SavedPlan) -> None:
        self._append(
            {"type": PLAN_FILE_ENTRY, "planId": saved.plan_id, "digest": saved.digest}
        )

    def record_approved(self, digest: str, changes: Iterable[Change]) -> None:
        approved = [ApprovedChange.of(change).to_json() for change in changes]
        self._append({"type": APPROVED_ENTRY, "digest": digest, "changes": approved})

    def record_finished(self, digest: str, *, is_complete: bool) -> None:
        self._append(
            {"type": FINISHED_ENTRY, "digest": digest, "complete": is_complete}
        )

    def unfinished_approval(self, digest: str) -> tuple[ApprovedChange, ...] | None:
        """Return the changes of the last apply of ``digest`` if it did not complete."""
        approved: tuple[ApprovedChange, ...] | None = None
        for entry in self.entries():
            if entry.get("digest") != digest:
                continue
            if entry.get("type") == APPROVED_ENTRY:
                approved = tuple(
                    ApprovedChange.from_json(item) for item in entry["changes"]
                )
            elif entry.get("type") == FINISHED_ENTRY and entry.get("complete"):
                approved = None
        return approved

    def _append(self, entry: dict[str, Any]) -> None:
        entry["at"] = _now()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n")
            log.flush()
            os.fsync(log.fileno())


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


# Saved plans


def check_saved_plan(
    saved: SavedPlan,
    *,
    target: TargetIdentity,
    manifest_files: Iterable[Path],
    links_path: Path,
    log: ApplyLog,
    plan_path: Path,
) -> None:
    """Raise ``StalePlanError`` unless the saved plan may still be applied.

    This checks what can be checked without MyNotary: target, problems, earlier
    applies, manifests and link table. ``check_versions`` checks the records.
    """
    again = _plan_again(plan_path)
    if saved.plan.target != target:
        raise StalePlanError(
            f"plan file {plan_path} was made for {saved.plan.target}, not for "
            f"{target}; {again} for this target"
        )
    if saved.plan.problems:
        raise StalePlanError(
            f"plan file {plan_path} is blocked by {len(saved.plan.problems)} "
            f"problem(s); fix them, then {again}"
        )
    applied_at = log.applied_at(saved.plan_id)
    if applied_at is not None:
        raise StalePlanError(
            f"plan file {plan_path} was already applied ({applied_at}); a plan is "
            f"applied at most once: {again}"
        )
    _check_manifests(saved, manifest_files, plan_path)
    _check_link_table(saved, links_path, plan_path)


def _check_manifests(
    saved: SavedPlan, manifest_files: Iterable[Path], plan_path: Path
) -> None:
    names, digest = digest_manifests(manifest_files)
    if digest == saved.sources.manifests_digest:
        return
    added = sorted(set(names) - set(saved.sources.manifest_files))
    removed = sorted(set(saved.sources.manifest_files) - set(names))
    detail = "their content changed"
    if added or removed:
        detail = ", ".join(
            [f"added {name}" for name in added]
            + [f"removed {name}" for name in removed]
        )
    raise StalePlanError(
        f"plan file {plan_path} is stale: the manifests changed since it was made "
        f"({detail}); nothing was applied: {_plan_again(plan_path)}"
    )


def _check_link_table(saved: SavedPlan, links_path: Path, plan_path: Path) -> None:
    if digest_link_table(links_path) == saved.sources.links_digest:
        return
    raise StalePlanError(
        f"plan file {plan_path} is stale: the link table {links_path} changed since "
        f"it was made (plan made with {saved.sources.links_path}); nothing was "
        f"applied: {_plan_again(plan_path)}"
    )


async def check_versions(plan: Plan, client: RecordReader, plan_path: Path) -> None:
    """Raise ``StalePlanError`` naming each record that moved since the plan.

    A record moved when its version on MyNotary is not the one the plan saw, or
    when it is gone. Only the records an update or a link writes are read.
    """
    touched = [
        change
        for change in plan.changes
        if change.action in (Action.UPDATE, Action.LINK)
        and change.mynotary_id is not None
    ]
    records = await asyncio.gather(
        *(client.get_record(change.mynotary_id or 0) for change in touched)
    )
    moved = [
        _describe_move(change, record)
        for change, record in zip(touched, records, strict=True)
        if record is None or record.get("version") != change.version
    ]
    if moved:
        raise StalePlanError(
            f"plan file {plan_path} is stale: {'; '.join(moved)}; nothing was "
            f"applied: {_plan_again(plan_path)}"
        )


def check_fresh_plan(saved: Plan, fresh: Plan, plan_path: Path) -> None:
    """Raise ``StalePlanError`` unless a plan made now has the saved plan's changes.

    Versions only cover the records a plan updates; a plan made now also sees a
    record created on MyNotary since (a create would make a duplicate), a record
    gone, or a new problem.
    """
    if not fresh.problems and plan_digest(fresh) == plan_digest(saved):
        return
    saved_keys = {_change_key(change) for change in saved.changes}
    fresh_keys = {_change_key(change) for change in fresh.changes}
    reasons = [problem.message for problem in fresh.problems]
    reasons += [
        f"{key[1]} [{key[2]}] is no longer to {key[0]}"
        for key in sorted(saved_keys - fresh_keys)
    ]
    reasons += [
        f"{key[1]} [{key[2]}] is now to {key[0]}"
        for key in sorted(fresh_keys - saved_keys)
    ]
    if not reasons:
        reasons = ["the values to write changed"]
    raise StalePlanError(
        f"plan file {plan_path} is stale: MyNotary changed since it was made "
        f"({'; '.join(reasons)}); nothing was applied: {_plan_again(plan_path)}"
    )


def _change_key(change: Change) -> tuple[str, str, str]:
    return (change.action.value, change.label, change.up_id)


def _describe_move(change: Change, record: Record | None) -> str:
    name = f"{change.label} [{change.up_id}] #{change.mynotary_id}"
    if record is None:
        return f"{name} is missing on MyNotary"
    return (
        f"{name} is at version {record.get('version')} on MyNotary, the plan saw "
        f"version {change.version}"
    )


def _plan_again(plan_path: Path) -> str:
    return f"run `reconciler plan --out {plan_path}` again"


# Approved digests


@dataclass(frozen=True)
class DigestDecision:
    """Whether a fresh plan may be applied under an approved digest, and why."""

    is_exact: bool
    is_resume: bool = False


def decide_expected_digest(plan: Plan, expected: str, log: ApplyLog) -> DigestDecision:
    """Return how ``plan`` relates to the approved digest ``expected``.

    Raises ``DigestMismatchError`` when the plan has changes that the approval
    does not cover.
    """
    digest = plan_digest(plan)
    if digest == expected:
        return DigestDecision(is_exact=True)
    if not plan.changes:
        return DigestDecision(is_exact=False)
    approved = log.unfinished_approval(expected)
    if approved is not None and _is_covered(plan.changes, approved):
        return DigestDecision(is_exact=False, is_resume=True)
    raise DigestMismatchError(
        f"the plan's digest is {digest}, not the approved {expected}: the manifests, "
        "the link table or MyNotary changed since that plan was approved (a branch "
        "behind main, an edit after approval, or an edit on MyNotary); nothing was "
        "applied: review the plan above and approve its digest"
    )


def _is_covered(
    changes: Iterable[Change], approved: tuple[ApprovedChange, ...]
) -> bool:
    return all(any(item.covers(change) for item in approved) for change in changes)
