"""Plans computed from small manifests, a link table and MyNotary records.

Records are built with the adapter's ``encode_questions``, so they have the shape
MyNotary stores. Each plan is rendered as text and compared with a syrupy snapshot,
and asserts beside the snapshot state the fact the case is about.
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from syrupy.assertion import SnapshotAssertion

from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest import load_manifests
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.mynotary import adapter
from reconciler.normalize import Value
from reconciler.plan import Action
from reconciler.plan import Plan
from reconciler.plan import PlanOptions
from reconciler.plan import compute_plan
from reconciler.remote import Record
from reconciler.remote import RemoteState
from reconciler.render.text import render_plan

TARGET = TargetIdentity("https://mynotary.test/api", 1)
PROGRAMME_UP_ID = "PRG-TEST-BRET"
PARKING, FLAT, CELLAR = "LOT-TEST-BRET-1", "LOT-TEST-BRET-2", "LOT-TEST-BRET-3"
PROGRAMME_ID = 1001
LOT_IDS = {PARKING: 1101, FLAT: 1102, CELLAR: 1103}
OTHER_PROGRAMME_ID = 2001
OTHER_LOT_ID = 2002

STREET_NFC = "Rue de la Bretonni\u00e8re"
STREET_NFD = unicodedata.normalize("NFD", STREET_NFC)

Document = dict[str, Any]
WriteManifest = Callable[..., Path]


# Building the three inputs of a plan


def load_programmes(
    write_manifest: WriteManifest, *documents: Document
) -> tuple[ProgrammeManifest, ...]:
    """Write each manifest under ``manifests/`` and load them all."""
    for document in documents:
        write_manifest(document, name=f"{document['upId'].lower()}.yaml")
    return load_manifests([Path("manifests")]).programmes


def lot_of(programme: ProgrammeManifest, up_id: str) -> LotManifest:
    return next(lot for lot in programme.lots if lot.up_id == up_id)


def record(
    record_id: int,
    record_type: str,
    values: dict[str, Value],
    *,
    programme_id: int | None = None,
    reference: str | None = None,
) -> Record:
    """Return a record in MyNotary's shape, with questions encoded by the adapter."""
    return {
        "id": record_id,
        "type": record_type,
        "organizationId": 1,
        "creatorId": 1,
        "programmeId": programme_id,
        "externalReference": reference,
        "version": 3,
        "createdAt": 1733312400000,
        "updatedAt": 1733398800000,
        "questions": adapter.encode_questions(values),
    }


def programme_record(
    programme: ProgrammeManifest, record_id: int = PROGRAMME_ID, **changes: Value
) -> Record:
    values = {**programme.fields, **changes}
    return record(record_id, adapter.PROGRAMME_TYPE, values, reference=programme.up_id)


def lot_record(
    lot: LotManifest,
    record_id: int | None = None,
    programme_id: int = PROGRAMME_ID,
    **changes: Value,
) -> Record:
    values = {**lot.fields, **changes}
    annexes = values.get("annexes")
    if isinstance(annexes, tuple):
        values["annexes"] = tuple(LOT_IDS[str(up_id)] for up_id in annexes)
    record_id = LOT_IDS[lot.up_id] if record_id is None else record_id
    record_type = adapter.lot_type(str(values["nature"]))
    return record(record_id, record_type, values, programme_id=programme_id)


def remote_state(*records: Record) -> RemoteState:
    """Index ``records`` as ``read_remote_state`` does."""
    state = RemoteState()
    for item in records:
        state.records[item["id"]] = item
        if item["type"] == adapter.PROGRAMME_TYPE:
            state.programmes[item["id"]] = item
        else:
            lots = state.lots_by_programme.setdefault(item["programmeId"], [])
            lots.append(item)
    return state


def synced_records(programme: ProgrammeManifest, **lot_changes: Record) -> list[Record]:
    """Return the programme and its lots as MyNotary stores them after an apply.

    ``lot_changes`` replaces the record of a lot, by Up id.
    """
    records = [programme_record(programme)]
    for lot in programme.lots:
        records.append(lot_changes.get(lot.up_id) or lot_record(lot))
    return records


def link_table(tmp_path: Path, *links: Link) -> LinkTable:
    table = LinkTable(tmp_path / "links.yaml", TARGET)
    for link in links:
        table.links[link.up_id] = link
    return table


def programme_link(
    state: LinkState = LinkState.LINKED, mynotary_id: int | None = PROGRAMME_ID
) -> Link:
    return Link(PROGRAMME_UP_ID, "programme", state, mynotary_id)


def lot_link(
    up_id: str,
    state: LinkState = LinkState.LINKED,
    mynotary_id: int | None = None,
) -> Link:
    if mynotary_id is None and state is not LinkState.CREATING:
        mynotary_id = LOT_IDS[up_id]
    number = up_id.rsplit("-", 1)[1]
    return Link(up_id, "lot", state, mynotary_id, PROGRAMME_UP_ID, number)


def linked_table(tmp_path: Path, *overrides: Link) -> LinkTable:
    """Return a table linking the programme and its three lots, then ``overrides``."""
    links = [programme_link(), *(lot_link(up_id) for up_id in LOT_IDS), *overrides]
    return link_table(tmp_path, *links)


def plan_of(
    programmes: tuple[ProgrammeManifest, ...],
    links: LinkTable,
    remote: RemoteState,
    options: PlanOptions | None = None,
) -> Plan:
    return compute_plan(programmes, links, remote, options or PlanOptions())


def actions(plan: Plan) -> list[tuple[Action, str]]:
    return [(change.action, change.up_id) for change in plan.changes]


# Creates and updates


def test_plan_new_programme(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)

    plan = plan_of(programmes, link_table(tmp_path), RemoteState())

    assert actions(plan) == [
        (Action.CREATE, PROGRAMME_UP_ID),
        (Action.CREATE, PARKING),
        (Action.CREATE, FLAT),
        (Action.CREATE, CELLAR),
    ]
    assert plan.problems == ()
    assert render_plan(plan) == snapshot


def test_plan_in_sync(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert plan.changes == ()
    assert plan.problems == ()
    assert (
        "No changes. MyNotary matches the manifests." in render_plan(plan).splitlines()
    )


def test_plan_surface_change(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    changed = lot_record(flat, livingArea=Decimal("47.00"))
    remote = remote_state(*synced_records(programmes[0], **{FLAT: changed}))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert actions(plan) == [(Action.UPDATE, FLAT)]
    assert [item.name for item in plan.changes[0].fields] == ["livingArea"]
    assert plan.changes[0].version == 3
    assert render_plan(plan) == snapshot


def test_plan_name_corrected(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = synced_records(programmes[0])
    records[0] = programme_record(programmes[0], name="Résidence BretonniereS")

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert actions(plan) == [(Action.UPDATE, PROGRAMME_UP_ID)]
    assert (
        '      name: "Résidence BretonniereS" → "Résidence Bretonnière"'
        in render_plan(plan).splitlines()
    )
    assert render_plan(plan) == snapshot


def test_plan_unicode_only_difference(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    manifest_document["address"]["street"] = STREET_NFD
    path = write_manifest(manifest_document, name="prg-test-bret.yaml")
    programmes = load_manifests([path]).programmes
    records = synced_records(programmes[0])
    address = records[0]["questions"]["adresse"]
    address["rue"] = STREET_NFC

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert STREET_NFD in path.read_text(encoding="utf-8")
    assert plan.changes == ()
    assert render_plan(plan) == snapshot


def test_plan_unicode_decomposed_on_mynotary(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = synced_records(programmes[0])
    records[0]["questions"]["adresse"]["rue"] = STREET_NFD

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert plan.changes == ()


@pytest.mark.parametrize("is_absent_in_manifest", [True, False])
def test_plan_absent_equals_null(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    is_absent_in_manifest: bool,
) -> None:
    cellar = manifest_document["lots"][2]
    if is_absent_in_manifest:
        del cellar["building"]
    else:
        cellar["building"] = None
    programmes = load_programmes(write_manifest, manifest_document)
    records = synced_records(programmes[0])
    questions = records[-1]["questions"]
    if is_absent_in_manifest:
        questions["batiment"] = None
    else:
        del questions["batiment"]

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert plan.changes == ()


def test_plan_decimal_places_ignored(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    same = lot_record(flat, livingArea=Decimal("45.500"), price=Decimal("198000"))
    remote = remote_state(*synced_records(programmes[0], **{FLAT: same}))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert plan.changes == ()


def test_plan_annex_of_other_record(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    changed = lot_record(flat)
    changed["questions"]["lots_annexes"] = [LOT_IDS[CELLAR]]
    remote = remote_state(*synced_records(programmes[0], **{FLAT: changed}))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert actions(plan) == [(Action.UPDATE, FLAT)]
    assert "      annexes: [LOT-TEST-BRET-3] → [LOT-TEST-BRET-1]" in render_plan(plan)


# Unlinks


def test_plan_lot_marked_unlinked(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    manifest_document["lots"][2]["link"] = {
        "unlinked": True,
        "reason": "sale file opened by hand on MyNotary",
    }
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert actions(plan) == [(Action.UNLINK, CELLAR)]
    assert plan.changes[0].previous_id == LOT_IDS[CELLAR]
    assert render_plan(plan) == snapshot


def test_plan_unlinked_lot_already_unlinked(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][2]["link"] = {"unlinked": True}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = linked_table(tmp_path, lot_link(CELLAR, LinkState.UNLINKED))

    plan = plan_of(programmes, links, remote)

    assert plan.changes == ()


def test_plan_lot_removed(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    full = load_programmes(write_manifest, manifest_document)
    del manifest_document["lots"][2]
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(full[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert actions(plan) == [(Action.UNLINK, CELLAR)]
    assert plan.changes[0].reason == "gone from the manifests"
    assert "Programme Résidence Bretonnière [PRG-TEST-BRET]" in render_plan(plan)
    assert render_plan(plan) == snapshot


def test_plan_programme_removed(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    other = _renamed_programme(manifest_document, "PRG-OTHER")
    write_manifest(other, name="other.yaml")
    remaining = tuple(
        programme
        for programme in load_manifests([Path("manifests")]).programmes
        if programme.up_id == "PRG-OTHER"
    )

    plan = plan_of(remaining, linked_table(tmp_path), remote)

    assert [item for item in actions(plan) if item[0] is Action.UNLINK] == [
        (Action.UNLINK, PROGRAMME_UP_ID),
        (Action.UNLINK, PARKING),
        (Action.UNLINK, FLAT),
        (Action.UNLINK, CELLAR),
    ]


def _renamed_programme(document: Document, up_id: str) -> Document:
    """Return a copy of ``document`` as another programme, with other Up ids."""
    copy: Document = json.loads(json.dumps(document))
    copy["upId"] = up_id
    for lot in copy["lots"]:
        lot["upId"] = f"{up_id}-{lot['upId']}"
        lot["annexes"] = [f"{up_id}-{annex}" for annex in lot.get("annexes", [])]
        if not lot["annexes"]:
            del lot["annexes"]
    return copy


def test_plan_no_manifests_refused(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of((), linked_table(tmp_path), remote)

    assert plan.changes == ()
    assert [problem.message for problem in plan.problems] == [
        "no manifest was read, so all 4 linked records would be unlinked"
    ]


def test_plan_scope_keeps_other_programmes(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    other = _renamed_programme(manifest_document, "PRG-OTHER")
    write_manifest(other, name="other.yaml")
    remaining = tuple(
        programme
        for programme in load_manifests([Path("manifests")]).programmes
        if programme.up_id == "PRG-OTHER"
    )
    options = PlanOptions(scope=frozenset({"PRG-OTHER"}))

    plan = compute_plan(remaining, linked_table(tmp_path), remote, options)

    assert [item for item in actions(plan) if item[0] is Action.UNLINK] == []


def test_plan_programme_marked_unlinked(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    manifest_document["link"] = {"unlinked": True}
    programmes = load_programmes(write_manifest, manifest_document)
    links = linked_table(tmp_path, lot_link(CELLAR, LinkState.UNLINKED))

    plan = plan_of(programmes, links, RemoteState())

    assert actions(plan) == [
        (Action.UNLINK, PROGRAMME_UP_ID),
        (Action.UNLINK, PARKING),
        (Action.UNLINK, FLAT),
    ]
    assert plan.problems == ()
    assert render_plan(plan) == snapshot


def test_plan_unlinked_programme_not_linked(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["link"] = {"unlinked": True}
    programmes = load_programmes(write_manifest, manifest_document)

    plan = plan_of(programmes, link_table(tmp_path), RemoteState())

    assert plan.changes == ()
    assert plan.problems == ()


# Links set by hand


def test_plan_attach_differing_fields(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    attached = lot_record(flat, price=Decimal("205000.00"), status="reserved")
    remote = remote_state(*synced_records(programmes[0], **{FLAT: attached}))
    links = link_table(tmp_path, programme_link(), lot_link(PARKING), lot_link(CELLAR))

    plan = plan_of(programmes, links, remote)

    assert actions(plan) == [(Action.LINK, FLAT)]
    assert [item.name for item in plan.changes[0].fields] == ["price", "status"]
    assert render_plan(plan) == snapshot


def test_plan_attach_already_linked(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert plan.changes == ()


def test_plan_reattach_unlinked_record(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = linked_table(tmp_path, lot_link(FLAT, LinkState.UNLINKED))

    plan = plan_of(programmes, links, remote)

    assert actions(plan) == [(Action.LINK, FLAT)]
    assert (
        "  <= link lot 2 (appartement) #1102 [LOT-TEST-BRET-2] (attached by hand)"
        in render_plan(plan).splitlines()
    )


def test_plan_attach_other_id(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": 1105}
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    records = [*synced_records(programmes[0]), lot_record(flat, record_id=1105)]

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert actions(plan) == [(Action.LINK, FLAT)]
    assert plan.changes[0].previous_id == LOT_IDS[FLAT]
    assert (
        "  <= link lot 2 (appartement) #1102 → #1105 [LOT-TEST-BRET-2] "
        "(attached by hand)" in render_plan(plan).splitlines()
    )
    assert render_plan(plan) == snapshot


def test_plan_attach_lot_of_other_programme(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": OTHER_LOT_ID}
    programmes = load_programmes(write_manifest, manifest_document)
    flat = lot_of(programmes[0], FLAT)
    foreign = lot_record(flat, OTHER_LOT_ID, programme_id=OTHER_PROGRAMME_ID)
    records = [*synced_records(programmes[0]), foreign]

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert plan.changes == ()
    assert [problem.message for problem in plan.problems] == [
        "attach: 2002 is a lot of programme #2001, not of #1001"
    ]
    assert [problem.fix for problem in plan.problems] == [
        "attach a lot of this programme, or attach the programme first"
    ]


def test_plan_attach_lot_to_programme_record(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": PROGRAMME_ID}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert [problem.message for problem in plan.problems] == [
        "attach: 1001 is a programme record, not a lot"
    ]


def test_plan_attach_programme_to_lot_record(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, link_table(tmp_path), remote)

    assert [problem.message for problem in plan.problems] == [
        "attach: 1102 is a RECORD__BIEN__LOT_HABITATION record, not a programme"
    ]
    assert [problem.fix for problem in plan.problems] == [
        "attach the MyNotary id of the programme in manifests/prg-test-bret.yaml"
    ]
    assert plan.changes == ()


def test_plan_attach_missing_record(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"attach": 9999}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert [problem.message for problem in plan.problems] == [
        "attach: 9999 does not exist on MyNotary"
    ]


def test_plan_attach_programme(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["link"] = {"attach": PROGRAMME_ID}
    programmes = load_programmes(write_manifest, manifest_document)
    records = synced_records(programmes[0])
    records[0]["externalReference"] = None

    plan = plan_of(programmes, link_table(tmp_path), remote_state(*records))

    # The lots of an attached programme that are already on MyNotary are
    # duplicate candidates until each is attached or marked unlinked.
    assert actions(plan) == [(Action.LINK, PROGRAMME_UP_ID)]
    assert [problem.up_id for problem in plan.problems] == [PARKING, FLAT, CELLAR]


# Problems that block the plan


def test_plan_duplicate_candidate(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = link_table(tmp_path, programme_link(), lot_link(PARKING), lot_link(FLAT))

    plan = plan_of(programmes, links, remote)

    assert [problem.up_id for problem in plan.problems] == [CELLAR]
    assert plan.problems[0].message == (
        "not linked, but MyNotary already has record #1103 with number 3"
    )
    assert plan.problems[0].fix == (
        "attach it (link: {attach: 1103}) or mark it unlinked (link: {unlinked: true})"
    )
    assert render_plan(plan) == snapshot


def test_plan_duplicate_candidate_unlinked_before(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = linked_table(tmp_path, lot_link(CELLAR, LinkState.UNLINKED))

    plan = plan_of(programmes, links, remote)

    assert [problem.message for problem in plan.problems] == [
        "not linked, but MyNotary already has record #1103 with number 3, "
        "to which it was linked before (unlinked #1103)"
    ]


def test_plan_duplicate_programme(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(programme_record(programmes[0]))

    plan = plan_of(programmes, link_table(tmp_path), remote)

    assert [problem.message for problem in plan.problems] == [
        "not linked, but MyNotary already has record #1001 with reference "
        "'PRG-TEST-BRET'"
    ]
    assert plan.changes == ()


def test_plan_number_of_removed_lot(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    # Up replaced the cellar by a lot with a new Up id and the same number. The
    # old record keeps number 3 on MyNotary, so a create would make a duplicate.
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    old = Link("LOT-TEST-OLD-3", "lot", LinkState.LINKED, 1103, PROGRAMME_UP_ID, "3")
    links = link_table(
        tmp_path, programme_link(), lot_link(PARKING), lot_link(FLAT), old
    )

    plan = plan_of(programmes, links, remote)

    assert [problem.message for problem in plan.problems] == [
        "not linked, but MyNotary already has record #1103 with number 3"
    ]
    assert plan.count(Action.CREATE) == 0


def test_plan_number_of_renumbered_lot(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    # The flat becomes lot 4 and a new lot takes its number 2. Record #1102 stays
    # the flat's, so the new lot is created.
    manifest_document["lots"][1]["number"] = "4"
    manifest_document["lots"].append(
        {
            "upId": "LOT-TEST-BRET-5",
            "number": "2",
            "nature": "cellier",
            "status": "available",
        }
    )
    programmes = load_programmes(write_manifest, manifest_document)
    programme = programmes[0]
    records = [
        programme_record(programme),
        lot_record(lot_of(programme, PARKING)),
        lot_record(lot_of(programme, FLAT), number="2"),
        lot_record(lot_of(programme, CELLAR)),
    ]

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert plan.problems == ()
    assert actions(plan) == [
        (Action.UPDATE, FLAT),
        (Action.CREATE, "LOT-TEST-BRET-5"),
    ]


def test_plan_linked_record_missing(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = [item for item in synced_records(programmes[0]) if item["id"] != 1102]

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records))

    assert [problem.message for problem in plan.problems] == [
        "linked record #1102 is missing on MyNotary"
    ]
    assert [problem.fix for problem in plan.problems] == [
        "mark it unlinked, attach another id, or pass --recreate-missing"
    ]
    assert plan.changes == ()
    assert render_plan(plan) == snapshot


def test_plan_recreate_missing(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = [item for item in synced_records(programmes[0]) if item["id"] != 1102]
    options = PlanOptions(recreate_missing=True)

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records), options)

    assert plan.problems == ()
    assert actions(plan) == [(Action.CREATE, FLAT)]
    assert plan.changes[0].reason == "linked record #1102 is missing on MyNotary"
    assert render_plan(plan) == snapshot


def test_plan_programme_problem_skips_lots(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0])[1:])

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert [problem.up_id for problem in plan.problems] == [PROGRAMME_UP_ID]


# Interrupted applies


def test_plan_creating_lot_adopted(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    snapshot: SnapshotAssertion,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = linked_table(tmp_path, lot_link(CELLAR, LinkState.CREATING))

    plan = plan_of(programmes, links, remote)

    assert actions(plan) == [(Action.LINK, CELLAR)]
    assert plan.changes[0].mynotary_id == LOT_IDS[CELLAR]
    assert plan.changes[0].reason == "adopted: created by an interrupted apply"
    assert render_plan(plan) == snapshot


def test_plan_creating_programme_adopted(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(programme_record(programmes[0]))
    links = link_table(tmp_path, programme_link(LinkState.CREATING, None))

    plan = plan_of(programmes, links, remote)

    assert actions(plan) == [
        (Action.LINK, PROGRAMME_UP_ID),
        (Action.CREATE, PARKING),
        (Action.CREATE, FLAT),
        (Action.CREATE, CELLAR),
    ]
    assert plan.changes[0].mynotary_id == PROGRAMME_ID


def test_plan_creating_lot_not_landed(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = [item for item in synced_records(programmes[0]) if item["id"] != 1103]
    links = linked_table(tmp_path, lot_link(CELLAR, LinkState.CREATING))

    plan = plan_of(programmes, links, remote_state(*records))

    assert actions(plan) == [(Action.CREATE, CELLAR)]
    assert plan.changes[0].reason == "the create of an interrupted apply did not land"
    assert plan.problems == ()


def test_plan_creating_programme_not_landed(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    links = link_table(tmp_path, programme_link(LinkState.CREATING, None))

    plan = plan_of(programmes, links, RemoteState())

    assert actions(plan)[0] == (Action.CREATE, PROGRAMME_UP_ID)
    assert plan.count(Action.CREATE) == 4


# Output


def test_plan_deterministic(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    second = dict(manifest_document, upId="PRG-TEST-OTHER", name="Résidence Autre")
    second["lots"] = [
        {"upId": lot["upId"].replace("BRET", "OTHER"), "number": lot["number"]}
        | {"nature": "cave", "status": "available"}
        for lot in manifest_document["lots"]
    ]
    programmes = load_programmes(write_manifest, manifest_document, second)
    flat = lot_of(programmes[0], FLAT)
    changed = lot_record(flat, livingArea=Decimal("47.00"), price=Decimal(1))
    remote = remote_state(*synced_records(programmes[0], **{FLAT: changed}))

    renderings = {
        render_plan(plan_of(programmes, linked_table(tmp_path), remote)).encode()
        for _ in range(3)
    }

    assert len(renderings) == 1


@pytest.mark.parametrize("recreate_missing", [False, True])
def test_plan_summary_counts(
    write_manifest: WriteManifest,
    manifest_document: Document,
    tmp_path: Path,
    recreate_missing: bool,
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    records = [item for item in synced_records(programmes[0]) if item["id"] != 1102]
    options = PlanOptions(recreate_missing=recreate_missing)

    plan = plan_of(programmes, linked_table(tmp_path), remote_state(*records), options)

    expected = (
        "Plan: 1 to create, 0 to update, 0 to link, 0 to unlink."
        if recreate_missing
        else "Plan blocked: 1 problem(s) to fix before any change is applied "
        "(0 to create, 0 to update, 0 to link, 0 to unlink planned)."
    )
    assert expected in render_plan(plan).splitlines()


# Links that would make two Up records share one MyNotary record


def test_plan_attach_linked_elsewhere(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][2]["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert [problem.message for problem in plan.problems] == [
        f"attach: {LOT_IDS[FLAT]} is already linked to {FLAT}"
    ]


def test_plan_attach_from_record_marked_unlinked(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["lots"][1]["link"] = {"unlinked": True}
    manifest_document["lots"][2]["link"] = {"attach": LOT_IDS[FLAT]}
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))

    plan = plan_of(programmes, linked_table(tmp_path), remote)

    assert plan.problems == ()
    assert (Action.LINK, CELLAR) in actions(plan)
    assert (Action.UNLINK, FLAT) in actions(plan)


def test_plan_link_table_shared_id(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    programmes = load_programmes(write_manifest, manifest_document)
    remote = remote_state(*synced_records(programmes[0]))
    links = linked_table(tmp_path, lot_link(CELLAR, mynotary_id=LOT_IDS[FLAT]))

    plan = plan_of(programmes, links, remote)

    assert [problem.message for problem in plan.problems][:1] == [
        f"the link table links record #{LOT_IDS[FLAT]} to {FLAT}, {CELLAR}"
    ]


def test_plan_attach_other_organization(
    write_manifest: WriteManifest, manifest_document: Document, tmp_path: Path
) -> None:
    manifest_document["link"] = {"attach": 3001}
    programmes = load_programmes(write_manifest, manifest_document)
    foreign = programme_record(programmes[0], record_id=3001)
    foreign["organizationId"] = 2

    plan = plan_of(programmes, link_table(tmp_path), remote_state(foreign))

    assert [problem.message for problem in plan.problems] == [
        "attach: 3001 is a record of organization 2, not of 1"
    ]
