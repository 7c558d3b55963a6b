"""Applying plans to the sandbox: order, links, interrupted applies, repeats.

The first tests call ``apply_plan`` with a client on the sandbox app in this
process, which lets them lose a create's response on purpose. The others run the
``reconciler`` command in a subprocess against the sandbox served on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

import httpx
import pytest
import yaml

from reconciler.apply import ApplyResult
from reconciler.apply import apply_plan
from reconciler.errors import RemoteError
from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest import load_manifests
from reconciler.mynotary.client import MyNotaryClient
from reconciler.plan import Action
from reconciler.plan import Plan
from reconciler.plan import compute_plan
from reconciler.remote import read_remote_state
from reconciler.sandbox.app import create_app
from reconciler.sandbox.store import RecordStore

if TYPE_CHECKING:
    from conftest import CliResult
    from conftest import ServedSandbox

TARGET = TargetIdentity("http://sandbox.invalid", 1)
BRETONNIERE = "PRG-TEST-BRET"
ASCOUBIA = "PRG-TEST-ASCO"
CELLAR = "LOT-TEST-BRET-3"

T = TypeVar("T")
RunCli = Callable[..., "CliResult"]


# In process: apply_plan with a client on the sandbox app


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RecordStore]:
    with RecordStore(tmp_path / "sandbox.db") as opened:
        yield opened


@pytest.fixture
def links_path(workdir: Path) -> Path:
    return workdir / "links.yaml"


def with_client(
    store: RecordStore, action: Callable[[MyNotaryClient], Coroutine[Any, Any, T]]
) -> T:
    async def run() -> T:
        transport = httpx.ASGITransport(app=create_app(store))
        async with MyNotaryClient(
            TARGET.url, organization_id=1, creator_id=1, transport=transport
        ) as client:
            return await action(client)

    return asyncio.run(run())


async def plan_with(client: MyNotaryClient, links_path: Path) -> Plan:
    programmes = load_manifests([Path("manifests")]).programmes
    links = LinkTable.load(links_path, TARGET)
    remote = await read_remote_state(client, programmes, links)
    return compute_plan(programmes, links, remote)


async def plan_and_apply(
    client: Any, links_path: Path, reader: MyNotaryClient | None = None
) -> tuple[Plan, ApplyResult]:
    """Plan with ``reader`` (``client`` when None) and apply through ``client``."""
    plan = await plan_with(reader or client, links_path)
    links = LinkTable.load(links_path, TARGET)
    result = await apply_plan(plan, client, links)
    return plan, result


def lots_numbered(store: RecordStore, programme_id: int, number: str) -> list[int]:
    records, _ = store.list(1, programme_id=programme_id, numero_lot=number)
    return [record["id"] for record in records]


def programme_id_of(store: RecordStore, reference: str) -> int:
    records, _ = store.list(1, external_reference=reference)
    assert len(records) == 1
    return int(records[0]["id"])


def edit_manifest(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} is not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@dataclass
class LosingClient:
    """Sends every request, but loses the response to the create of one lot number.

    MyNotary stores the record anyway, as after a timeout whose request landed.
    """

    client: MyNotaryClient
    lost_number: str
    journal: Path
    journal_seen: list[str]

    async def create_record(
        self, record_type: str, questions: dict[str, Any], /, **options: Any
    ) -> dict[str, Any]:
        self.journal_seen.append(self.journal.read_text(encoding="utf-8"))
        record = await self.client.create_record(record_type, questions, **options)
        if questions.get("numero_lot") == self.lost_number:
            raise RemoteError("MyNotary request POST /records failed: timed out")
        return record

    async def update_record(
        self, record_id: int, version: int, questions: dict[str, Any], /
    ) -> dict[str, Any]:
        return await self.client.update_record(record_id, version, questions)


def test_apply_order_and_annexes(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    plan, result = with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)
    parking, flat = (
        lots_numbered(store, bretonniere, "1"),
        lots_numbered(store, bretonniere, "2"),
    )

    assert result.is_success
    assert plan.count(Action.CREATE) == 7
    assert len(result.applied) == 7
    assert parking[0] < flat[0]
    assert store.get(flat[0])["questions"]["lots_annexes"] == parking  # type: ignore[index]


def test_apply_records_links(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))

    links = LinkTable.load(links_path, TARGET)
    bretonniere = programme_id_of(store, BRETONNIERE)

    assert links.get(BRETONNIERE) == Link(
        BRETONNIERE, "programme", LinkState.LINKED, bretonniere
    )
    assert links.get(CELLAR) == Link(
        CELLAR,
        "lot",
        LinkState.LINKED,
        lots_numbered(store, bretonniere, "3")[0],
        BRETONNIERE,
        "3",
    )
    assert not links.has_journal()


def test_apply_then_no_changes(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))

    plan = with_client(store, lambda client: plan_with(client, links_path))

    assert plan.changes == ()
    assert plan.problems == ()


def test_apply_journal_before_create(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    seen: list[str] = []
    journal = links_path.with_name("links.yaml.journal")

    async def scenario(client: MyNotaryClient) -> None:
        losing = LosingClient(client, "none", journal, seen)
        await plan_and_apply(losing, links_path, reader=client)

    with_client(store, scenario)
    first_create = [json.loads(line) for line in seen[0].splitlines()]

    assert first_create == [
        {
            "type": "link",
            "link": {
                "up_id": ASCOUBIA,
                "kind": "programme",
                "state": "creating",
                "mynotary_id": None,
                "programme": None,
                "number": None,
            },
        }
    ]


def test_apply_lost_response_adopted(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    async def interrupted(client: MyNotaryClient) -> ApplyResult:
        journal = links_path.with_name("links.yaml.journal")
        losing = LosingClient(client, "3", journal, [])
        _, result = await plan_and_apply(losing, links_path, reader=client)
        return result

    first = with_client(store, interrupted)
    after_crash = LinkTable.load(links_path, TARGET)
    plan = with_client(store, lambda client: plan_with(client, links_path))
    with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)

    assert [failed.change.up_id for failed in first.failed] == [CELLAR]
    assert after_crash.links[CELLAR].state is LinkState.CREATING
    # The failure stopped the phase of the other lots, so those are still to
    # create. The lost cellar is adopted, not created again.
    assert [(change.action, change.up_id) for change in plan.changes] == [
        (Action.CREATE, "LOT-TEST-ASCO-1"),
        (Action.CREATE, "LOT-TEST-BRET-2"),
        (Action.LINK, CELLAR),
    ]
    assert len(lots_numbered(store, bretonniere, "3")) == 1
    assert LinkTable.load(links_path, TARGET).links[CELLAR].state is LinkState.LINKED


def test_apply_failure_stops_later_phases(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)
    parking = lots_numbered(store, bretonniere, "1")[0]
    flat = lots_numbered(store, bretonniere, "2")[0]
    store.update(parking, 1, {"prix_ttc": 1})
    store.update(flat, 1, {"surface_habitable": 1})

    async def conflicting(client: MyNotaryClient) -> ApplyResult:
        plan = await plan_with(client, links_path)
        store.update(parking, 2, {"etage": 3})
        result = await apply_plan(plan, client, LinkTable.load(links_path, TARGET))
        return result

    result = with_client(store, conflicting)

    assert [failed.change.up_id for failed in result.failed] == ["LOT-TEST-BRET-1"]
    assert result.failed[0].error == (
        f"MyNotary request PATCH /records/{parking} failed with status 409: record "
        f"{parking} is at version 3, not 2; the record changed since it was read "
        "(current version 3), so plan again"
    )
    assert [change.up_id for change in result.not_attempted] == ["LOT-TEST-BRET-2"]
    assert store.get(flat)["version"] == 2  # type: ignore[index]


def test_apply_unlink_keeps_record(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))
    edit_manifest(
        manifests / "residence-bretonniere.yaml",
        "    status: sold\n",
        "    status: sold\n    link: {unlinked: true}\n",
    )

    plan, result = with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)

    assert [(change.action, change.up_id) for change in plan.changes] == [
        (Action.UNLINK, CELLAR)
    ]
    assert result.is_success
    assert len(lots_numbered(store, bretonniere, "3")) == 1
    assert LinkTable.load(links_path, TARGET).links[CELLAR].state is LinkState.UNLINKED


@pytest.mark.parametrize(
    ("old", "new", "question", "expected"),
    [
        (
            "street: Rue de la Bretonnière",
            "street: Rue Neuve",
            "adresse",
            {
                "numero": "12",
                "rue": "Rue Neuve",
                "codePostal": "64700",
                "ville": "Hendaye",
            },
        ),
        ('    building: "A"\n    floor: 0\n', "    floor: 0\n", "batiment", None),
        ("    carrezArea: 44.10\n", "", "mesurage_carrez_statut", "non"),
        ('    annexes: ["LOT-TEST-BRET-1"]\n', "", "lots_annexes", None),
    ],
    ids=["nested", "removed", "carrez", "annexes"],
)
def test_apply_update_then_clean(
    manifests: Path,
    store: RecordStore,
    links_path: Path,
    old: str,
    new: str,
    question: str,
    expected: object,
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)
    flat = lots_numbered(store, bretonniere, "2")[0]
    edit_manifest(manifests / "residence-bretonniere.yaml", old, new)

    plan, result = with_client(store, lambda client: plan_and_apply(client, links_path))
    after = with_client(store, lambda client: plan_with(client, links_path))
    record_id = bretonniere if question == "adresse" else flat
    questions = store.get(record_id)["questions"]  # type: ignore[index]

    assert plan.count(Action.UPDATE) == 1
    assert result.is_success
    assert questions.get(question) == expected
    assert after.changes == ()


def test_apply_attach_updates_fields(
    manifests: Path, store: RecordStore, links_path: Path
) -> None:
    with_client(store, lambda client: plan_and_apply(client, links_path))
    bretonniere = programme_id_of(store, BRETONNIERE)
    existing = store.create(
        1,
        1,
        "RECORD__BIEN__LOT_HORS_HABITATION",
        bretonniere,
        None,
        {"numero_lot": "4", "nature_bien": "nature_bien_cellier", "prix_ttc": 1},
    )
    edit_manifest(
        manifests / "residence-bretonniere.yaml",
        "lots:\n",
        "lots:\n"
        '  - upId: "LOT-TEST-BRET-4"\n'
        '    number: "4"\n'
        "    nature: cellier\n"
        "    price: 4000.00\n"
        "    status: available\n"
        f"    link: {{attach: {existing['id']}}}\n",
    )

    plan, result = with_client(store, lambda client: plan_and_apply(client, links_path))
    after = with_client(store, lambda client: plan_with(client, links_path))
    questions = store.get(existing["id"])["questions"]  # type: ignore[index]

    assert [(change.action, change.up_id) for change in plan.changes] == [
        (Action.LINK, "LOT-TEST-BRET-4")
    ]
    assert result.is_success
    assert questions["prix_ttc"] == Decimal("4000.00")
    assert questions["statut_commercialisation"] == "disponible"
    assert LinkTable.load(links_path, TARGET).links["LOT-TEST-BRET-4"] == Link(
        "LOT-TEST-BRET-4", "lot", LinkState.LINKED, existing["id"], BRETONNIERE, "4"
    )
    assert after.changes == ()
    assert len(lots_numbered(store, bretonniere, "4")) == 1


# End to end: the command line against the sandbox served on 127.0.0.1


def test_apply_then_plan_clean(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()

    before = run_cli("plan", "--detailed-exitcode", *target)
    applied = run_cli("apply", "--auto-approve", *target)
    after = run_cli("plan", "--detailed-exitcode", *target)

    summary = "Plan: 7 to create, 0 to update, 0 to link, 0 to unlink."
    assert before.code == 2
    assert summary in before.stdout.splitlines()
    assert applied.code == 0
    assert "Apply finished: 7 applied, 0 failed, 0 not attempted." in applied.stdout
    assert after.code == 0
    assert "No changes. MyNotary matches the manifests." in after.stdout.splitlines()


def test_apply_twice_creates_once(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()

    first = run_cli("apply", "--auto-approve", *target)
    second = run_cli("apply", "--auto-approve", *target)

    assert first.code == 0
    assert second.code == 0
    assert "No changes. MyNotary matches the manifests." in second.stdout
    assert served_sandbox.programme_count(BRETONNIERE) == 1
    assert served_sandbox.programme_count(ASCOUBIA) == 1
    assert served_sandbox.lot_numbers(BRETONNIERE) == ["1", "2", "3"]
    assert served_sandbox.lot_numbers(ASCOUBIA) == ["1", "2"]


def test_apply_adopts_creating_entry(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli, workdir: Path
) -> None:
    # The simulated crash: the create of lot 3 reached MyNotary, and the process
    # died before the journal got the new id.
    manifest = manifests / "residence-bretonniere.yaml"
    full_text = manifest.read_text(encoding="utf-8")
    manifest.write_text(full_text.split('  - upId: "LOT-TEST-BRET-3"')[0], "utf-8")
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    manifest.write_text(full_text, "utf-8")
    programme_id = served_sandbox.query(
        "SELECT id FROM records WHERE external_reference = ?", BRETONNIERE
    )[0][0]
    response = httpx.post(
        f"{served_sandbox.url}/records",
        json={
            "organizationId": 1,
            "creatorId": 1,
            "type": "RECORD__BIEN__LOT_HORS_HABITATION",
            "programmeId": programme_id,
            "externalReference": None,
            "questions": {"numero_lot": "3", "nature_bien": "nature_bien_cave"},
        },
    )
    assert response.status_code == 201
    created = response.json()
    creating = Link(CELLAR, "lot", LinkState.CREATING, None, BRETONNIERE, "3")
    journal = workdir / "links.yaml.journal"
    journal.write_text(
        json.dumps({"type": "link", "link": creating.to_json()}) + "\n", "utf-8"
    )

    plan = run_cli("plan", *target)
    applied = run_cli("apply", "--auto-approve", *target)
    after = run_cli("plan", "--detailed-exitcode", *target)

    adopted = (
        f"  <= link lot 3 (cave) #{created['id']} [{CELLAR}] "
        "(adopted: created by an interrupted apply)"
    )
    summary = "Plan: 0 to create, 0 to update, 1 to link, 0 to unlink."
    assert plan.code == 0
    assert adopted in plan.stdout.splitlines()
    assert summary in plan.stdout.splitlines()
    assert applied.code == 0
    assert served_sandbox.lot_numbers(BRETONNIERE) == ["1", "2", "3"]
    assert after.code == 0
    assert not journal.exists()


def test_apply_without_approval(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli, workdir: Path
) -> None:
    result = run_cli("apply", *served_sandbox.target_arguments())

    assert result.code == 1
    assert result.stderr == (
        "error: apply needs approval: type 'yes' on a terminal, or pass "
        "--auto-approve\n"
    )
    assert "Apply cancelled; nothing was changed." in result.stdout.splitlines()
    assert served_sandbox.query("SELECT COUNT(*) FROM records") == [(0,)]
    assert not (workdir / "links.yaml").exists()
    assert not (workdir / "links.yaml.journal").exists()


def test_apply_folds_journal_without_changes(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli, workdir: Path
) -> None:
    # The crash came after the journal got the cellar's id and before the table
    # was saved. Nothing is left to send, but the table must still get the link.
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    table = workdir / "links.yaml"
    saved = LinkTable.load(table, TargetIdentity(served_sandbox.url, 1))
    cellar = saved.links.pop(CELLAR)
    saved.save()
    journal = workdir / "links.yaml.journal"
    journal.write_text(
        json.dumps({"type": "link", "link": cellar.to_json()}) + "\n", "utf-8"
    )

    result = run_cli("apply", "--auto-approve", *target)
    entries = yaml.safe_load(table.read_text(encoding="utf-8"))["links"]

    assert result.code == 0
    assert entries[CELLAR]["mynotaryId"] == cellar.mynotary_id
    assert entries[CELLAR]["state"] == "linked"
    assert not journal.exists()
