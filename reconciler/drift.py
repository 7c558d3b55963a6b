"""Drift: where MyNotary no longer matches the manifests for linked records.

A drift report only reads. It lists linked records whose MyNotary values differ
from the manifests (someone edited MyNotary, or a push was missed), linked records
missing on MyNotary, and orphans: lot records on MyNotary, in a programme the link
table links, whose id the link table does not hold in any state. A record left
behind by an unlink keeps its id in the table, so it is not an orphan.

Value differences come from ``compute_plan``: a plan's updates of linked records
are drift. The report also counts the plan's other changes (creates, links,
unlinks) and problems, which are not drift but mean a plan is pending.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reconciler.errors import ReconcilerError
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest.model import ProgrammeManifest
from reconciler.mynotary import adapter
from reconciler.plan import LOT
from reconciler.plan import PROGRAMME
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.plan import compute_plan
from reconciler.planfile import canonical_json
from reconciler.planfile import decode_value
from reconciler.planfile import encode_value
from reconciler.remote import RemoteState

REPORT_FORMAT_VERSION = 1
DIGEST_LENGTH = 16


class DriftReportError(ReconcilerError):
    """A drift report file can't be read."""


@dataclass(frozen=True)
class RecordRef:
    """A linked record of the manifests, as reports name it."""

    up_id: str
    kind: str
    label: str
    programme_up_id: str
    programme_name: str
    mynotary_id: int


@dataclass(frozen=True)
class DriftedRecord:
    """A linked record whose MyNotary values differ from its manifest's."""

    record: RecordRef
    fields: tuple[FieldChange, ...]


@dataclass(frozen=True)
class OrphanRecord:
    """A lot record on MyNotary, in a linked programme, unknown to the link table."""

    mynotary_id: int
    programme_up_id: str
    programme_name: str
    programme_id: int
    lot_number: str | None
    record_type: str | None


@dataclass(frozen=True)
class DriftReport:
    """The findings of a drift check for one target."""

    target: TargetIdentity
    drifted: tuple[DriftedRecord, ...]
    missing: tuple[RecordRef, ...]
    orphans: tuple[OrphanRecord, ...]
    pending_changes: int = 0
    problems: int = 0

    @property
    def has_drift(self) -> bool:
        return bool(self.drifted or self.missing or self.orphans)

    @property
    def digest(self) -> str:
        """A digest of the findings, equal for two reports that found the same."""
        findings = {
            key: value
            for key, value in to_json(self, with_digest=False).items()
            if key in ("target", "drifted", "missing", "orphans")
        }
        body = canonical_json(findings).encode("utf-8")
        return hashlib.sha256(body).hexdigest()[:DIGEST_LENGTH]


def compute_drift(
    programmes: tuple[ProgrammeManifest, ...], links: LinkTable, remote: RemoteState
) -> DriftReport:
    """Return the drift between ``remote`` and ``programmes`` for linked records."""
    plan = compute_plan(programmes, links, remote)
    drifted = tuple(_drifted(plan, links))
    missing = tuple(_missing(programmes, links, remote))
    orphans = tuple(_orphans(programmes, links, remote, plan))
    drift_ids = {item.record.up_id for item in drifted}
    pending = sum(1 for change in plan.changes if change.up_id not in drift_ids)
    missing_ids = {item.up_id for item in missing}
    problems = sum(1 for problem in plan.problems if problem.up_id not in missing_ids)
    return DriftReport(
        plan.target,
        drifted,
        missing,
        orphans,
        pending_changes=pending,
        problems=problems,
    )


def _drifted(plan: Plan, links: LinkTable) -> list[DriftedRecord]:
    found = []
    for change in plan.changes:
        link = links.get(change.up_id)
        is_linked = (
            link is not None
            and link.state is LinkState.LINKED
            and link.mynotary_id == change.mynotary_id
        )
        if change.action is Action.UPDATE and is_linked:
            found.append(DriftedRecord(_ref_of_change(change), change.fields))
    return found


def _ref_of_change(change: Change) -> RecordRef:
    return RecordRef(
        change.up_id,
        change.kind,
        change.label,
        change.programme_up_id,
        change.programme_name,
        change.mynotary_id or 0,
    )


def _missing(
    programmes: tuple[ProgrammeManifest, ...], links: LinkTable, remote: RemoteState
) -> list[RecordRef]:
    found = []
    for programme in programmes:
        if programme.link is not None and programme.link.is_unlinked:
            continue
        records = [(programme.up_id, PROGRAMME, f'programme "{programme.name}"')]
        records += [
            (lot.up_id, LOT, f"lot {lot.number} ({lot.nature})")
            for lot in programme.lots
            if lot.link is None or not lot.link.is_unlinked
        ]
        for up_id, kind, label in records:
            link = links.get(up_id)
            if link is None or link.state is not LinkState.LINKED:
                continue
            if link.mynotary_id is None or remote.record(link.mynotary_id) is None:
                ref = RecordRef(
                    up_id,
                    kind,
                    label,
                    programme.up_id,
                    programme.name,
                    link.mynotary_id or 0,
                )
                found.append(ref)
    return found


def _orphans(
    programmes: tuple[ProgrammeManifest, ...],
    links: LinkTable,
    remote: RemoteState,
    plan: Plan,
) -> list[OrphanRecord]:
    known = set(links.by_mynotary_id())
    # A record that the plan links (attached by hand, or adopted after an
    # interrupted create) is known to the manifests even if not to the table.
    known |= {
        change.mynotary_id
        for change in plan.changes
        if change.action is Action.LINK and change.mynotary_id is not None
    }
    found = []
    for programme in programmes:
        link = links.get(programme.up_id)
        if link is None or link.state is not LinkState.LINKED:
            continue
        programme_id = link.mynotary_id or 0
        for record in remote.lots_by_programme.get(programme_id, []):
            if record["id"] in known:
                continue
            orphan = OrphanRecord(
                int(record["id"]),
                programme.up_id,
                programme.name,
                programme_id,
                adapter.lot_number_of(record),
                record.get("type"),
            )
            found.append(orphan)
    return found


# JSON


def to_json(report: DriftReport, *, with_digest: bool = True) -> dict[str, Any]:
    """Return the report as the JSON document that ``drift --format json`` prints."""
    document: dict[str, Any] = {
        "formatVersion": REPORT_FORMAT_VERSION,
        "target": {
            "url": report.target.url,
            "organizationId": report.target.organization_id,
        },
        "hasDrift": report.has_drift,
        "drifted": [
            {
                **_ref_to_json(item.record),
                "fields": [_field_to_json(field) for field in item.fields],
            }
            for item in report.drifted
        ],
        "missing": [_ref_to_json(item) for item in report.missing],
        "orphans": [_orphan_to_json(item) for item in report.orphans],
        "pendingChanges": report.pending_changes,
        "problems": report.problems,
    }
    if with_digest:
        document["digest"] = report.digest
    return document


def _ref_to_json(ref: RecordRef) -> dict[str, Any]:
    return {
        "upId": ref.up_id,
        "kind": ref.kind,
        "label": ref.label,
        "programme": {"upId": ref.programme_up_id, "name": ref.programme_name},
        "mynotaryId": ref.mynotary_id,
    }


def _field_to_json(field: FieldChange) -> dict[str, Any]:
    # "up" is the manifest's value, "mynotary" the value found on MyNotary.
    return {
        "name": field.name,
        "up": encode_value(field.name, field.after),
        "mynotary": encode_value(field.name, field.before),
    }


def _orphan_to_json(orphan: OrphanRecord) -> dict[str, Any]:
    return {
        "mynotaryId": orphan.mynotary_id,
        "programme": {
            "upId": orphan.programme_up_id,
            "name": orphan.programme_name,
            "mynotaryId": orphan.programme_id,
        },
        "lotNumber": orphan.lot_number,
        "type": orphan.record_type,
    }


def from_json(document: Any, where: str) -> DriftReport:
    """Return the report of a ``drift --format json`` document."""
    if (
        not isinstance(document, dict)
        or document.get("formatVersion") != REPORT_FORMAT_VERSION
    ):
        raise DriftReportError(
            f"{where} is not a drift report of format version "
            f"{REPORT_FORMAT_VERSION}; write it with `reconciler drift --format json`"
        )
    try:
        return _read_report(document, where)
    except (KeyError, TypeError, ValueError) as error:
        raise DriftReportError(
            f"{where} is not a valid drift report: {type(error).__name__} {error}; "
            "write it again with `reconciler drift --format json`"
        ) from None


def _read_report(document: Mapping[str, Any], where: str) -> DriftReport:
    target = document["target"]
    drifted = tuple(
        DriftedRecord(
            _ref_from_json(item),
            tuple(_field_from_json(field, where) for field in item["fields"]),
        )
        for item in document["drifted"]
    )
    return DriftReport(
        TargetIdentity(str(target["url"]), int(target["organizationId"])),
        drifted,
        tuple(_ref_from_json(item) for item in document["missing"]),
        tuple(_orphan_from_json(item) for item in document["orphans"]),
        pending_changes=int(document["pendingChanges"]),
        problems=int(document["problems"]),
    )


def _ref_from_json(item: Mapping[str, Any]) -> RecordRef:
    return RecordRef(
        str(item["upId"]),
        str(item["kind"]),
        str(item["label"]),
        str(item["programme"]["upId"]),
        str(item["programme"]["name"]),
        int(item["mynotaryId"]),
    )


def _field_from_json(item: Mapping[str, Any], where: str) -> FieldChange:
    name = str(item["name"])
    return FieldChange(
        name,
        decode_value(name, item["mynotary"], where),
        decode_value(name, item["up"], where),
    )


def _orphan_from_json(item: Mapping[str, Any]) -> OrphanRecord:
    programme = item["programme"]
    number = item.get("lotNumber")
    record_type = item.get("type")
    return OrphanRecord(
        int(item["mynotaryId"]),
        str(programme["upId"]),
        str(programme["name"]),
        int(programme["mynotaryId"]),
        None if number is None else str(number),
        None if record_type is None else str(record_type),
    )
