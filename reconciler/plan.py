"""Plans: the changes that make MyNotary match the manifests.

A plan is a plain value. ``compute_plan`` builds it from the desired state, the link
table and the remote state, without any I/O; renderers print it and ``apply``
carries it out.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from reconciler.fields import LOT_FIELDS
from reconciler.fields import PROGRAMME_FIELDS
from reconciler.fields import FieldSpec
from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.mynotary import adapter
from reconciler.normalize import Value
from reconciler.remote import Record
from reconciler.remote import RemoteState

PROGRAMME = "programme"
LOT = "lot"


class Action(enum.Enum):
    CREATE = "create"
    UPDATE = "update"
    LINK = "link"
    UNLINK = "unlink"


@dataclass(frozen=True)
class FieldChange:
    """One field whose MyNotary value (before) differs from the manifest (after)."""

    name: str
    before: Value
    after: Value


@dataclass(frozen=True)
class Change:
    """One change to one record.

    ``mynotary_id`` is the record the change acts on (None for a create);
    ``previous_id`` is the id the link table had before a link or unlink;
    ``version`` is the MyNotary version the plan saw, which an update must match.
    ``desired`` holds every field of the record as the manifest has it, which a
    create and an update of a nested question need.
    """

    action: Action
    kind: str
    up_id: str
    programme_up_id: str
    programme_name: str
    label: str
    mynotary_id: int | None = None
    previous_id: int | None = None
    version: int | None = None
    fields: tuple[FieldChange, ...] = ()
    desired: Mapping[str, Value] = field(default_factory=dict)
    reason: str | None = None
    lot_number: str | None = None


@dataclass(frozen=True)
class Problem:
    """A condition that blocks the whole plan, with the fix to apply."""

    up_id: str
    where: str
    message: str
    fix: str


@dataclass(frozen=True)
class Plan:
    """The changes and the problems found for one target."""

    target: TargetIdentity
    changes: tuple[Change, ...]
    problems: tuple[Problem, ...]

    @property
    def has_changes(self) -> bool:
        return bool(self.changes)

    def count(self, action: Action) -> int:
        return sum(1 for change in self.changes if change.action is action)


@dataclass(frozen=True)
class PlanOptions:
    """Choices that change what a plan does with unusual remote states."""

    recreate_missing: bool = False
    # Up ids of the programmes this plan covers, when the manifests read are a
    # subset of the estate (files named one by one): records of other programmes
    # gone from the manifests read are left alone instead of unlinked. None
    # covers the whole estate.
    scope: frozenset[str] | None = None


def compute_plan(
    programmes: tuple[ProgrammeManifest, ...],
    links: LinkTable,
    remote: RemoteState,
    options: PlanOptions = PlanOptions(),
) -> Plan:
    """Return the plan that makes ``remote`` match ``programmes``."""
    planner = _Planner(links, remote, options, programmes)
    planner.check_shared_links()
    for programme in programmes:
        planner.plan_programme(programme)
    planner.plan_removed(programmes)
    return Plan(links.target, tuple(planner.changes), tuple(planner.problems))


def _display_name(link: Link | None) -> str:
    return "not linked" if link is None else f"{link.state.value} #{link.mynotary_id}"


def _up_ids_of(programmes: tuple[ProgrammeManifest, ...]) -> frozenset[str]:
    up_ids = {programme.up_id for programme in programmes}
    up_ids.update(lot.up_id for programme in programmes for lot in programme.lots)
    return frozenset(up_ids)


def _pushed_up_ids(programmes: tuple[ProgrammeManifest, ...]) -> frozenset[str]:
    """Return the Up ids of the manifests that are not marked unlinked."""
    pushed: set[str] = set()
    for programme in programmes:
        if programme.link is not None and programme.link.is_unlinked:
            continue
        pushed.add(programme.up_id)
        for lot in programme.lots:
            if lot.link is None or not lot.link.is_unlinked:
                pushed.add(lot.up_id)
    return frozenset(pushed)


class _Planner:
    def __init__(
        self,
        links: LinkTable,
        remote: RemoteState,
        options: PlanOptions,
        programmes: tuple[ProgrammeManifest, ...],
    ) -> None:
        self.links = links
        self.remote = remote
        self.options = options
        self.present_up_ids = _up_ids_of(programmes)
        self.pushed_up_ids = _pushed_up_ids(programmes)
        self.changes: list[Change] = []
        self.problems: list[Problem] = []
        self.up_ids_by_mynotary_id = {
            mynotary_id: link.up_id
            for mynotary_id, link in links.by_mynotary_id().items()
        }
        self.linked_owners: dict[int, list[str]] = {}
        for link in links:
            if link.state is LinkState.LINKED and link.mynotary_id is not None:
                owners = self.linked_owners.setdefault(link.mynotary_id, [])
                owners.append(link.up_id)

    def check_shared_links(self) -> None:
        """Report MyNotary records that the link table links to several Up ids."""
        for mynotary_id, owners in sorted(self.linked_owners.items()):
            if len(owners) < 2:
                continue
            names = ", ".join(sorted(owners))
            self.problems.append(
                Problem(
                    sorted(owners)[0],
                    f"MyNotary record #{mynotary_id}",
                    f"the link table links record #{mynotary_id} to {names}",
                    "keep one link: mark the others unlinked, or repair the link "
                    "table by hand",
                )
            )

    # Programmes

    def plan_programme(self, programme: ProgrammeManifest) -> None:
        intent = programme.link
        link = self.links.get(programme.up_id)
        label = f'programme "{programme.name}"'
        base = {
            "kind": PROGRAMME,
            "up_id": programme.up_id,
            "label": label,
            "programme_up_id": programme.up_id,
            "programme_name": programme.name,
        }
        if intent is not None and intent.is_unlinked:
            self._unlink_if_linked(link, base, "marked unlinked in its manifest")
            for lot in programme.lots:
                lot_link = self.links.get(lot.up_id)
                reason = "its programme is marked unlinked"
                self._unlink_if_linked(lot_link, self._lot_base(programme, lot), reason)
            return
        problems_before = len(self.problems)
        programme_id = self._resolve_programme(programme, link, base)
        if len(self.problems) > problems_before:
            # The programme's own problem must be fixed first; its lots would
            # only repeat it.
            return
        for lot in programme.lots:
            self.plan_lot(programme, lot, programme_id)

    def _resolve_programme(
        self, programme: ProgrammeManifest, link: Link | None, base: dict[str, Any]
    ) -> int | None:
        """Plan the programme's own change; return its MyNotary id if it has one."""
        desired = programme.fields
        intent = programme.link
        if intent is not None and intent.attach is not None:
            record = self._attached_record(programme, intent.attach, base)
            if record is None or not self._is_programme(record, programme, base):
                return None
            if not self._is_free(intent.attach, base):
                return None
            self._link_or_update(link, record, desired, PROGRAMME_FIELDS, base)
            return int(record["id"])
        if link is not None and link.state is LinkState.LINKED:
            return self._compare_linked(link, desired, PROGRAMME_FIELDS, base)
        if link is not None and link.state is LinkState.CREATING:
            twin = self.remote.programme_by_reference(programme.up_id)
            return self._adopt_or_create(twin, desired, PROGRAMME_FIELDS, base)
        twin = self.remote.programme_by_reference(programme.up_id)
        if twin is not None:
            self._twin_problem(base, twin, link, f"with reference '{programme.up_id}'")
            return int(twin["id"])
        self._create(desired, PROGRAMME_FIELDS, base)
        return None

    def _is_programme(
        self, record: Record, programme: ProgrammeManifest, base: dict[str, Any]
    ) -> bool:
        if record.get("type") == adapter.PROGRAMME_TYPE:
            return True
        self._problem(
            base,
            f"attach: {record['id']} is a {record.get('type')} record, not a programme",
            f"attach the MyNotary id of the programme in {programme.file}",
        )
        return False

    # Lots

    def _lot_base(
        self, programme: ProgrammeManifest, lot: LotManifest
    ) -> dict[str, Any]:
        return {
            "kind": LOT,
            "up_id": lot.up_id,
            "programme_up_id": programme.up_id,
            "programme_name": programme.name,
            "label": f"lot {lot.number} ({lot.nature})",
            "lot_number": lot.number,
        }

    def plan_lot(
        self, programme: ProgrammeManifest, lot: LotManifest, programme_id: int | None
    ) -> None:
        base = self._lot_base(programme, lot)
        link = self.links.get(lot.up_id)
        intent = lot.link
        desired = self._desired_lot_fields(lot)
        if intent is not None and intent.is_unlinked:
            self._unlink_if_linked(link, base, "marked unlinked in its manifest")
            return
        if intent is not None and intent.attach is not None:
            self._attach_lot(lot, intent.attach, programme_id, desired, link, base)
            return
        if link is not None and link.state is LinkState.LINKED:
            if self._is_in_programme(link, programme_id, base):
                self._compare_linked(link, desired, LOT_FIELDS, base)
            return
        twin = self._lot_twin(programme_id, lot)
        if link is not None and link.state is LinkState.CREATING:
            self._adopt_or_create(twin, desired, LOT_FIELDS, base)
            return
        if twin is not None:
            self._twin_problem(base, twin, link, f"with number {lot.number}")
            return
        self._create(desired, LOT_FIELDS, base)

    def _is_in_programme(
        self, link: Link, programme_id: int | None, base: dict[str, Any]
    ) -> bool:
        """Check that a linked lot's record belongs to the lot's programme."""
        record = self.remote.record(link.mynotary_id or 0)
        if record is None or programme_id is None:
            return True
        owner = record.get("programmeId")
        if owner == programme_id:
            return True
        self._problem(
            base,
            f"linked record #{link.mynotary_id} is a lot of programme #{owner}, "
            f"not of #{programme_id}",
            "attach the lot of this programme, or mark this lot unlinked",
        )
        return False

    def _desired_lot_fields(self, lot: LotManifest) -> dict[str, Value]:
        return dict(lot.fields)

    def _attach_lot(
        self,
        lot: LotManifest,
        attach: int,
        programme_id: int | None,
        desired: Mapping[str, Value],
        link: Link | None,
        base: dict[str, Any],
    ) -> None:
        record = self._attached_record(lot, attach, base)
        if record is None:
            return
        owner = record.get("programmeId")
        if record.get("type") == adapter.PROGRAMME_TYPE:
            self._problem(
                base,
                f"attach: {attach} is a programme record, not a lot",
                "attach the MyNotary id of the lot itself",
            )
            return
        if programme_id is None or owner != programme_id:
            expected = (
                "a programme not yet on MyNotary"
                if programme_id is None
                else f"#{programme_id}"
            )
            self._problem(
                base,
                f"attach: {attach} is a lot of programme #{owner}, not of {expected}",
                "attach a lot of this programme, or attach the programme first",
            )
            return
        if not self._is_free(attach, base):
            return
        self._link_or_update(link, record, desired, LOT_FIELDS, base)

    def _lot_twin(self, programme_id: int | None, lot: LotManifest) -> Record | None:
        if programme_id is None:
            return None
        for record in self.remote.lots_by_programme.get(programme_id, []):
            if adapter.lot_number_of(record) != lot.number:
                continue
            owner = self.up_ids_by_mynotary_id.get(record["id"])
            owner_link = self.links.get(owner) if owner else None
            # A record linked to another lot of the manifests belongs to it, even
            # while it still has this number (that lot is being renumbered). A
            # record linked to a lot gone from the manifests is only forgotten,
            # so it keeps its number and is a twin.
            if (
                owner_link is not None
                and owner != lot.up_id
                and owner_link.state is LinkState.LINKED
                and owner in self.present_up_ids
            ):
                continue
            return record
        return None

    # Shared steps

    def _attached_record(
        self, record: Any, attach: int, base: dict[str, Any]
    ) -> Record | None:
        found = self.remote.record(attach)
        if found is None:
            self._problem(
                base,
                f"attach: {attach} does not exist on MyNotary",
                "check the id on MyNotary's links screen, or remove the attach",
            )
            return None
        if not self._is_of_organization(found, base, f"attach: {attach}"):
            return None
        return found

    def _is_free(self, attach: int, base: dict[str, Any]) -> bool:
        """Check that no other record pushed by the manifests is linked to it."""
        owners = [
            owner
            for owner in self.linked_owners.get(attach, [])
            if owner != base["up_id"] and owner in self.pushed_up_ids
        ]
        if not owners:
            return True
        self._problem(
            base,
            f"attach: {attach} is already linked to {', '.join(owners)}",
            f"attach another record, or mark {owners[0]} unlinked in the same change",
        )
        return False

    def _is_of_organization(
        self, record: Record, base: dict[str, Any], what: str
    ) -> bool:
        organization = record.get("organizationId")
        if organization is None or organization == self.links.target.organization_id:
            return True
        self._problem(
            base,
            f"{what} is a record of organization {organization}, not of "
            f"{self.links.target.organization_id}",
            "attach a record of this organization, or check --organization",
        )
        return False

    def _compare_linked(
        self,
        link: Link,
        desired: Mapping[str, Value],
        specs: tuple[FieldSpec, ...],
        base: dict[str, Any],
    ) -> int | None:
        record = self.remote.record(link.mynotary_id or 0)
        if record is None:
            self._missing(link, desired, specs, base)
            return None
        what = f"linked record #{link.mynotary_id}"
        if not self._is_of_organization(record, base, what):
            return None
        fields = self._differences(record, desired, specs)
        if fields:
            self._add(Action.UPDATE, base, record, fields, desired)
        return int(record["id"])

    def _missing(
        self,
        link: Link,
        desired: Mapping[str, Value],
        specs: tuple[FieldSpec, ...],
        base: dict[str, Any],
    ) -> None:
        if self.options.recreate_missing:
            reason = f"linked record #{link.mynotary_id} is missing on MyNotary"
            self._create(desired, specs, base, reason=reason)
            return
        self._problem(
            base,
            f"linked record #{link.mynotary_id} is missing on MyNotary",
            "mark it unlinked, attach another id, or pass --recreate-missing",
        )

    def _link_or_update(
        self,
        link: Link | None,
        record: Record,
        desired: Mapping[str, Value],
        specs: tuple[FieldSpec, ...],
        base: dict[str, Any],
    ) -> None:
        fields = self._differences(record, desired, specs)
        is_same_link = (
            link is not None
            and link.state is LinkState.LINKED
            and link.mynotary_id == record["id"]
        )
        if is_same_link:
            if fields:
                self._add(Action.UPDATE, base, record, fields, desired)
            return
        previous = link.mynotary_id if link is not None else None
        self._add(
            Action.LINK,
            base,
            record,
            fields,
            desired,
            previous_id=previous,
            reason="attached by hand",
        )

    def _adopt_or_create(
        self,
        twin: Record | None,
        desired: Mapping[str, Value],
        specs: tuple[FieldSpec, ...],
        base: dict[str, Any],
    ) -> int | None:
        if twin is None:
            reason = "the create of an interrupted apply did not land"
            self._create(desired, specs, base, reason=reason)
            return None
        fields = self._differences(twin, desired, specs)
        reason = "adopted: created by an interrupted apply"
        self._add(Action.LINK, base, twin, fields, desired, reason=reason)
        return int(twin["id"])

    def _create(
        self,
        desired: Mapping[str, Value],
        specs: tuple[FieldSpec, ...],
        base: dict[str, Any],
        reason: str | None = None,
    ) -> None:
        fields = tuple(
            FieldChange(spec.name, None, desired[spec.name])
            for spec in specs
            if desired.get(spec.name) is not None
        )
        self.changes.append(
            Change(Action.CREATE, fields=fields, desired=desired, reason=reason, **base)
        )

    def _add(
        self,
        action: Action,
        base: dict[str, Any],
        record: Record,
        fields: tuple[FieldChange, ...],
        desired: Mapping[str, Value],
        previous_id: int | None = None,
        reason: str | None = None,
    ) -> None:
        change = Change(
            action,
            mynotary_id=int(record["id"]),
            previous_id=previous_id,
            version=record.get("version"),
            fields=fields,
            desired=desired,
            reason=reason,
            **base,
        )
        self.changes.append(change)

    def _unlink_if_linked(
        self, link: Link | None, base: dict[str, Any], reason: str
    ) -> None:
        if link is None or link.state is LinkState.UNLINKED:
            return
        change = Change(
            Action.UNLINK,
            mynotary_id=link.mynotary_id,
            previous_id=link.mynotary_id,
            reason=reason,
            **base,
        )
        self.changes.append(change)

    def _twin_problem(
        self, base: dict[str, Any], twin: Record, link: Link | None, key: str
    ) -> None:
        known = ""
        if link is not None and link.mynotary_id == twin["id"]:
            known = f", to which it was linked before ({_display_name(link)})"
        self._problem(
            base,
            f"not linked, but MyNotary already has record #{twin['id']} {key}{known}",
            f"attach it (link: {{attach: {twin['id']}}}) or mark it unlinked "
            "(link: {unlinked: true})",
        )

    def _problem(self, base: dict[str, Any], message: str, fix: str) -> None:
        self.problems.append(Problem(base["up_id"], base["label"], message, fix))

    def _differences(
        self, record: Record, desired: Mapping[str, Value], specs: tuple[FieldSpec, ...]
    ) -> tuple[FieldChange, ...]:
        names = [spec.name for spec in specs]
        current = adapter.decode_questions(record.get("questions") or {}, names)
        if "annexes" in current:
            current["annexes"] = self._annex_up_ids(current["annexes"])
        return tuple(
            FieldChange(name, current.get(name), desired.get(name))
            for name in names
            if current.get(name) != desired.get(name)
        )

    def _annex_up_ids(self, mynotary_ids: Value) -> tuple[str, ...] | None:
        if not isinstance(mynotary_ids, tuple) or not mynotary_ids:
            return None
        names = {
            self.up_ids_by_mynotary_id.get(int(item), f"#{item}")
            for item in mynotary_ids
        }
        return tuple(sorted(names))

    # Records gone from the manifests

    def plan_removed(self, programmes: tuple[ProgrammeManifest, ...]) -> None:
        present = {programme.up_id for programme in programmes}
        present.update(lot.up_id for programme in programmes for lot in programme.lots)
        # A lot gone from a manifest that is still there goes under its
        # programme's heading, whether or not the programme has changes itself.
        names = {programme.up_id: programme.name for programme in programmes}
        if not programmes:
            self._block_empty_estate()
            return
        scope = self.options.scope
        for link in sorted(self.links, key=_removal_order):
            if link.up_id in present or link.state is LinkState.UNLINKED:
                continue
            programme_up_id = link.programme or link.up_id
            if scope is not None and programme_up_id not in scope:
                continue
            label = (
                f"lot {link.number}" if link.kind == LOT else f"programme {link.up_id}"
            )
            base = {
                "kind": link.kind,
                "up_id": link.up_id,
                "programme_up_id": programme_up_id,
                "programme_name": names.get(programme_up_id, programme_up_id),
                "label": label,
                "lot_number": link.number,
            }
            if link.state is LinkState.CREATING:
                self._forget_interrupted_create(link, base)
            else:
                self._unlink_if_linked(link, base, "gone from the manifests")

    def _block_empty_estate(self) -> None:
        linked = sum(1 for link in self.links if link.state is LinkState.LINKED)
        if linked == 0:
            return
        self.problems.append(
            Problem(
                "",
                "the manifests",
                f"no manifest was read, so all {linked} linked records would be "
                "unlinked",
                "check the paths given; to unlink a programme, mark it unlinked "
                "in its manifest",
            )
        )

    def _forget_interrupted_create(self, link: Link, base: dict[str, Any]) -> None:
        """Unlink a record whose create was interrupted and that left the manifests.

        If the create landed, the record found by its natural key is kept as the
        unlinked id, so it is known and never taken for an orphan.
        """
        twin = self._natural_key_match(link)
        twin_id = int(twin["id"]) if twin is not None else None
        reason = "gone from the manifests while its create was in flight"
        change = Change(
            Action.UNLINK,
            mynotary_id=twin_id,
            previous_id=twin_id,
            reason=reason,
            **base,
        )
        self.changes.append(change)

    def _natural_key_match(self, link: Link) -> Record | None:
        if link.kind == PROGRAMME:
            return self.remote.programme_by_reference(link.up_id)
        programme_link = self.links.get(link.programme or "")
        if programme_link is None or programme_link.mynotary_id is None:
            return None
        for record in self.remote.lots_by_programme.get(programme_link.mynotary_id, []):
            if adapter.lot_number_of(record) == link.number:
                return record
        return None


def _removal_order(link: Link) -> tuple[str, int, str]:
    return (
        link.programme or link.up_id,
        0 if link.kind == PROGRAMME else 1,
        link.up_id,
    )


def iter_changes_by_programme(plan: Plan) -> Iterator[tuple[str, list[Change]]]:
    """Yield a heading for each programme (name and Up id) with its changes."""
    groups: dict[str, list[Change]] = {}
    names: dict[str, str] = {}
    for change in plan.changes:
        groups.setdefault(change.programme_up_id, []).append(change)
        names.setdefault(change.programme_up_id, change.programme_name)
    for up_id, changes in groups.items():
        name = names[up_id]
        heading = up_id if name == up_id else f"{name} [{up_id}]"
        yield heading, changes
