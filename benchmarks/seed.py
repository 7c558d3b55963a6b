"""Seed a sandbox store and link tables so that MyNotary matches the manifests.

Every programme and lot gets a record holding the manifest's values, encoded as
the apply would send them, and a link. Records attached by hand in a manifest
keep their attached id. Records marked unlinked get neither record nor link. A plan
of the same manifests then has no changes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.mynotary import adapter
from reconciler.normalize import Value
from reconciler.sandbox.store import RecordStore

USER_ID = 1

# Above any id that the example manifests attach by hand.
FIRST_ID = 1_000_000


@dataclass
class SeededEstate:
    """The records and links seeded for one organization.

    ``links`` maps each programme's Up id to its links and those of its lots, so
    that a link table can be written for any subset of the programmes.
    ``lot_counts`` is the number of lot records of each programme record.
    """

    organization_id: int
    records: list[dict[str, Any]] = field(default_factory=list)
    links: dict[str, list[Link]] = field(default_factory=dict)
    lot_counts: list[int] = field(default_factory=list)

    @property
    def programme_count(self) -> int:
        return len(self.lot_counts)

    def write_links(
        self, path: Path, target: TargetIdentity, programmes: Iterable[str]
    ) -> int:
        """Write the link table of ``programmes`` (Up ids); return its links."""
        table = LinkTable(path, target)
        for up_id in programmes:
            for link in self.links.get(up_id, []):
                table.links[link.up_id] = link
        table.save()
        return len(table.links)


def seed_matching(
    programmes: Iterable[ProgrammeManifest], organization_id: int
) -> SeededEstate:
    """Return the records and links that make MyNotary match ``programmes``."""
    seeded = SeededEstate(organization_id)
    next_id = FIRST_ID
    for programme in programmes:
        if programme.link is not None and programme.link.is_unlinked:
            continue
        next_id = _seed_programme(programme, seeded, next_id)
    return seeded


def insert_seeded(seeded: SeededEstate, database: Path) -> None:
    """Insert the seeded records into the sandbox database, in one transaction."""
    database.parent.mkdir(parents=True, exist_ok=True)
    with RecordStore(database) as store:
        store.insert_many(seeded.records)


def _seed_programme(
    programme: ProgrammeManifest, seeded: SeededEstate, next_id: int
) -> int:
    programme_id, next_id = _take_id(programme.link, next_id)
    seeded.records.append(
        _record(
            programme_id,
            adapter.PROGRAMME_TYPE,
            programme.fields,
            seeded.organization_id,
            external_reference=programme.up_id,
        )
    )
    links = [Link(programme.up_id, "programme", LinkState.LINKED, programme_id)]

    ids: dict[str, int] = {}
    for lot in programme.lots:
        if lot.link is not None and lot.link.is_unlinked:
            continue
        ids[lot.up_id], next_id = _take_id(lot.link, next_id)

    for lot in programme.lots:
        if lot.up_id not in ids:
            continue
        seeded.records.append(
            _record(
                ids[lot.up_id],
                adapter.lot_type(lot.nature),
                _lot_values(lot, ids),
                seeded.organization_id,
                programme_id=programme_id,
            )
        )
        links.append(
            Link(
                lot.up_id,
                "lot",
                LinkState.LINKED,
                ids[lot.up_id],
                programme=programme.up_id,
                number=lot.number,
            )
        )

    seeded.links[programme.up_id] = links
    seeded.lot_counts.append(len(ids))
    return next_id


def _take_id(intent: Any, next_id: int) -> tuple[int, int]:
    """Return the record id (the attached one, or the next free one) and the next."""
    if intent is not None and intent.attach is not None:
        return int(intent.attach), next_id
    return next_id, next_id + 1


def _lot_values(lot: LotManifest, ids: dict[str, int]) -> dict[str, Value]:
    values = dict(lot.fields)
    annexes = values.get("annexes")
    if isinstance(annexes, tuple):
        values["annexes"] = tuple(sorted(ids[str(up_id)] for up_id in annexes))
    return values


def _record(
    record_id: int,
    record_type: str,
    values: dict[str, Value],
    organization_id: int,
    *,
    programme_id: int | None = None,
    external_reference: str | None = None,
) -> dict[str, Any]:
    return {
        "id": record_id,
        "organizationId": organization_id,
        "creatorId": USER_ID,
        "type": record_type,
        "programmeId": programme_id,
        "externalReference": external_reference,
        "questions": adapter.encode_questions(values),
    }
