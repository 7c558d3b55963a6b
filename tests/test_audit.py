"""The audit log of applied changes: its lines, their order, and appending after a
process was killed while writing one."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from resilience import API_KEY
from resilience import apply_in_process
from resilience import sandbox_settings
from resilience import write_estate

from reconciler.audit import AuditContext
from reconciler.audit import AuditLog
from reconciler.audit import audit_entry
from reconciler.audit import audit_path_for
from reconciler.audit import read_audit_log
from reconciler.links import TargetIdentity
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.sandbox.server import running_sandbox

CHANGE = Change(
    Action.UPDATE,
    kind="lot",
    up_id="LOT-1",
    programme_up_id="PRG-1",
    programme_name="Résidence",
    label="lot 1 (parking)",
    mynotary_id=42,
    version=3,
    fields=(FieldChange("price", None, None),),
)


def test_audit_path_beside_table() -> None:
    assert audit_path_for(Path("state/links.yaml")) == Path("state/links.audit.jsonl")


def test_audit_apply_lines(tmp_path: Path) -> None:
    write_estate(tmp_path / "manifests", programmes=1, lots=4)
    links_path = tmp_path / "links.yaml"

    with running_sandbox(tmp_path / "sandbox.db", API_KEY) as sandbox:
        settings = sandbox_settings(sandbox.url, links_path)
        result = apply_in_process(settings, tmp_path / "manifests")

    entries = read_audit_log(audit_path_for(links_path))
    first = entries[0]
    names = [field["name"] for field in first["fields"]]
    assert result.code == 0
    assert len(entries) == 5
    assert {entry["result"] for entry in entries} == {"applied"}
    assert {entry["action"] for entry in entries} == {"create"}
    assert len({entry["planDigest"] for entry in entries}) == 1
    assert first["upId"] == "PRG-FAULT-1"
    assert first["target"] == f"{sandbox.url} (organization 1)"
    assert datetime.fromisoformat(first["time"]).utcoffset() is not None
    assert "name" in names
    assert first["fields"][names.index("name")] == {
        "name": "name",
        "before": None,
        "after": "Résidence des Pannes 1",
    }


def test_audit_failed_change_line(tmp_path: Path) -> None:
    path = tmp_path / "links.audit.jsonl"
    context = AuditContext(TargetIdentity("https://mynotary.test", 1), "abc123")

    with AuditLog(path, context) as log:
        log.record_failed(CHANGE, "MyNotary request PATCH /records/42 failed")

    [entry] = read_audit_log(path)
    assert entry["result"] == "failed"
    assert entry["error"] == "MyNotary request PATCH /records/42 failed"
    assert entry["mynotaryId"] == 42
    assert entry["action"] == "update"
    assert entry["planDigest"] == "abc123"


def test_audit_appends(tmp_path: Path) -> None:
    path = tmp_path / "links.audit.jsonl"
    context = AuditContext(TargetIdentity("https://mynotary.test", 1), "abc123")
    with AuditLog(path, context) as log:
        log.record_applied(CHANGE, 42)
    first = path.read_text(encoding="utf-8")

    with AuditLog(path, context) as log:
        log.record_applied(CHANGE, 42)

    assert path.read_text(encoding="utf-8").startswith(first)
    assert len(read_audit_log(path)) == 2


def test_audit_after_cut_line(tmp_path: Path) -> None:
    path = tmp_path / "links.audit.jsonl"
    context = AuditContext(TargetIdentity("https://mynotary.test", 1), "abc123")
    path.write_text('{"time": "2024-06-11T08:00', encoding="utf-8")

    with AuditLog(path, context) as log:
        log.record_applied(CHANGE, 42)

    entries = read_audit_log(path)
    assert len(entries) == 1
    assert entries[0]["upId"] == "LOT-1"


def test_audit_target_without_credentials() -> None:
    target = TargetIdentity("https://robot:hunter2@mynotary.test:8443/api", 7)
    context = AuditContext(target, "abc123")

    entry = audit_entry(context, CHANGE, 42, None)

    assert entry["target"] == "https://mynotary.test:8443/api (organization 7)"
