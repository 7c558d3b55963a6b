"""The audit log: one JSON line per change that an apply carried out or failed.

The log sits beside the link table (``links.audit.jsonl`` for ``links.yaml``) and is
only ever appended to. Each line is flushed and synced to disk before the change's
link is recorded in the journal. A process killed in between makes the next run
repeat the change, so a record may get a second line but never goes without one.

A line holds: ``time`` (UTC, ISO 8601), ``target``, ``planDigest``, ``upId``,
``mynotaryId``, ``action``, ``fields`` (name, before, after), ``result``
(``applied`` or ``failed``), ``error`` for a failure and ``reason`` when the plan
gave one. It contains no API key: the client sends the key only in a header, and
removes it from the error messages that it builds.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC
from datetime import datetime
from pathlib import Path
from typing import Any
from typing import TextIO
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from reconciler.links import TargetIdentity
from reconciler.plan import Change
from reconciler.planfile import encode_value

APPLIED = "applied"
FAILED = "failed"


def audit_path_for(links_path: Path) -> Path:
    """Return the audit log beside the link table at ``links_path``."""
    return links_path.with_name(links_path.stem + ".audit.jsonl")


@dataclass(frozen=True)
class AuditContext:
    """The fields shared by every line of one apply: target and plan digest."""

    target: TargetIdentity
    plan_digest: str


class AuditLog:
    """An append-only audit log file; use it as a context manager, or ``close``."""

    def __init__(self, path: Path, context: AuditContext) -> None:
        self.path = path
        self.context = context
        self._file: TextIO | None = None

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def record_applied(self, change: Change, mynotary_id: int | None) -> None:
        """Append the line of a change that MyNotary accepted."""
        self._append(audit_entry(self.context, change, mynotary_id, None))

    def record_failed(self, change: Change, error: str) -> None:
        """Append the line of a change that failed, with its error message."""
        self._append(audit_entry(self.context, change, change.mynotary_id, error))

    def close(self) -> None:
        """Close the file; a later line opens it again."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def _append(self, entry: dict[str, Any]) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
            if _ends_mid_line(self.path):
                # A process died while writing its last line: end that line, so
                # the next entry stays on a line of its own.
                self._file.write("\n")
        self._file.write(json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())


def audit_entry(
    context: AuditContext,
    change: Change,
    mynotary_id: int | None,
    error: str | None,
) -> dict[str, Any]:
    """Return the audit line of ``change``; ``error`` None means it was applied."""
    entry: dict[str, Any] = {
        "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "target": describe_target(context.target),
        "planDigest": context.plan_digest,
        "upId": change.up_id,
        "kind": change.kind,
        "mynotaryId": mynotary_id,
        "action": change.action.value,
        "fields": [
            {
                "name": field.name,
                "before": encode_value(field.name, field.before),
                "after": encode_value(field.name, field.after),
            }
            for field in change.fields
        ],
        "result": APPLIED if error is None else FAILED,
    }
    if error is not None:
        entry["error"] = error
    if change.reason is not None:
        entry["reason"] = change.reason
    return entry


def read_audit_log(path: Path) -> list[dict[str, Any]]:
    """Return the lines of the audit log at ``path``; none if it does not exist.

    A last line cut short by a killed process is skipped.
    """
    if not path.exists():
        return []

    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return entries


def describe_target(target: TargetIdentity) -> str:
    """Return the target without any user name or password in its URL."""
    parts = urlsplit(target.url)
    if parts.hostname is None:
        return str(target)

    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    if parts.port is not None:
        host += f":{parts.port}"
    url = urlunsplit((parts.scheme, host, parts.path, "", ""))
    return str(TargetIdentity(url, target.organization_id))


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as log:
        if log.seek(0, os.SEEK_END) == 0:
            return False
        log.seek(-1, os.SEEK_END)
        return log.read(1) != b"\n"
