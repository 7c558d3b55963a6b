"""A scenario for the sandbox: MyNotary records and links that make the example
manifests' first plan show every kind of change.

With the manifests sorted by file name:

- the first programme is linked, with its name spelt differently on MyNotary, and
  all its lots are linked; one lot has a different surface on MyNotary, one lot
  that its manifest marks unlinked is still linked, and one linked lot is gone
  from the manifest (two unlinks);
- the second programme is linked and equal; its lot attached by hand in the
  manifest exists on MyNotary with other values, but is not in the link table;
- the other programmes are not on MyNotary (creates).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest
from reconciler.mynotary import adapter
from reconciler.normalize import Value
from reconciler.sandbox.store import RecordStore

ORGANIZATION_ID = 1
USER_ID = 1
FIRST_PROGRAMME_ID = 1001
SECOND_PROGRAMME_ID = 2001
SURFACE_OFFSET = Decimal("1.50")


class DemoError(Exception):
    """The manifests don't have the shape the scenario needs."""


def load_demo(
    programmes: tuple[ProgrammeManifest, ...], store: RecordStore, links: LinkTable
) -> list[str]:
    """Seed ``store`` and ``links``; return one line per record seeded by hand."""
    if len(programmes) < 2:
        raise DemoError("the demo needs at least two programme manifests")
    first, second = sorted(programmes, key=lambda programme: programme.file)[:2]
    notes = _seed_first(first, store, links)
    notes += _seed_second(second, store, links)
    links.save()
    return notes


def _insert(
    store: RecordStore,
    record_id: int,
    record_type: str,
    values: dict[str, Value],
    *,
    programme_id: int | None = None,
    external_reference: str | None = None,
) -> None:
    store.insert(
        {
            "id": record_id,
            "organizationId": ORGANIZATION_ID,
            "creatorId": USER_ID,
            "type": record_type,
            "programmeId": programme_id,
            "externalReference": external_reference,
            "questions": adapter.encode_questions(values),
        }
    )


def _link(
    links: LinkTable, up_id: str, kind: str, mynotary_id: int, **key: Any
) -> None:
    links.links[up_id] = Link(up_id, kind, LinkState.LINKED, mynotary_id, **key)


def _lot_ids(programme: ProgrammeManifest, first_id: int) -> dict[str, int]:
    return {lot.up_id: first_id + index for index, lot in enumerate(programme.lots)}


def _lot_values(lot: LotManifest, ids: dict[str, int]) -> dict[str, Value]:
    values = dict(lot.fields)
    annexes = values.get("annexes")
    if isinstance(annexes, tuple):
        values["annexes"] = tuple(sorted(ids[str(up_id)] for up_id in annexes))
    return values


def _misspell(name: str) -> str:
    """Return ``name`` without its accents, as an old manual entry would have it."""
    decomposed = unicodedata.normalize("NFD", name)
    plain = "".join(char for char in decomposed if not unicodedata.combining(char))
    return plain if plain != name else name + "S"


def _seed_first(
    programme: ProgrammeManifest, store: RecordStore, links: LinkTable
) -> list[str]:
    values = dict(programme.fields)
    values["name"] = _misspell(programme.name)
    _insert(
        store,
        FIRST_PROGRAMME_ID,
        adapter.PROGRAMME_TYPE,
        values,
        external_reference=programme.up_id,
    )
    _link(links, programme.up_id, "programme", FIRST_PROGRAMME_ID)
    ids = _lot_ids(programme, FIRST_PROGRAMME_ID + 1)
    changed = _first_dwelling(programme.lots)
    for lot in programme.lots:
        lot_values = _lot_values(lot, ids)
        if lot is changed:
            lot_values["livingArea"] = _shifted(lot_values["livingArea"])
        _insert_lot(store, lot, ids[lot.up_id], FIRST_PROGRAMME_ID, lot_values)
        _link(
            links,
            lot.up_id,
            "lot",
            ids[lot.up_id],
            programme=programme.up_id,
            number=lot.number,
        )
    removed_id = FIRST_PROGRAMME_ID + len(programme.lots) + 1
    _seed_removed_lot(programme, store, links, removed_id)
    return [
        f"programme {programme.up_id}: linked as #{FIRST_PROGRAMME_ID}, name "
        f"'{values['name']}' on MyNotary",
        f"lot {changed.up_id}: surface {lot_values_of(changed, ids)} on MyNotary",
        f"lot {_removed_lot_up_id(programme)}: linked as #{removed_id}, "
        "absent from the manifests",
    ]


def lot_values_of(lot: LotManifest, ids: dict[str, int]) -> str:
    return str(_shifted(lot.fields["livingArea"]))


def _shifted(value: Value) -> Value:
    return value + SURFACE_OFFSET if isinstance(value, Decimal) else value


def _first_dwelling(lots: tuple[LotManifest, ...]) -> LotManifest:
    for lot in lots:
        if lot.fields.get("livingArea") is not None and lot.link is None:
            return lot
    raise DemoError("the first programme needs a dwelling lot with a surface")


def _insert_lot(
    store: RecordStore,
    lot: LotManifest,
    record_id: int,
    programme_id: int,
    values: dict[str, Value],
) -> None:
    record_type = adapter.lot_type(lot.nature)
    _insert(store, record_id, record_type, values, programme_id=programme_id)


def _seed_removed_lot(
    programme: ProgrammeManifest, store: RecordStore, links: LinkTable, record_id: int
) -> None:
    number = "999"
    values: dict[str, Value] = {
        "number": number,
        "nature": "cave",
        "status": "available",
    }
    _insert(
        store,
        record_id,
        adapter.OTHER_LOT_TYPE,
        values,
        programme_id=FIRST_PROGRAMME_ID,
    )
    up_id = _removed_lot_up_id(programme)
    _link(links, up_id, "lot", record_id, programme=programme.up_id, number=number)


def _removed_lot_up_id(programme: ProgrammeManifest) -> str:
    return "LOT-" + programme.up_id.removeprefix("PRG-") + "-999"


def _seed_second(
    programme: ProgrammeManifest, store: RecordStore, links: LinkTable
) -> list[str]:
    _insert(
        store,
        SECOND_PROGRAMME_ID,
        adapter.PROGRAMME_TYPE,
        dict(programme.fields),
        external_reference=programme.up_id,
    )
    _link(links, programme.up_id, "programme", SECOND_PROGRAMME_ID)
    attached = next(_attached_lots(programme), None)
    if attached is None:
        raise DemoError("the second programme needs a lot with 'link: {attach: ID}'")
    lot, record_id = attached
    values = _lot_values(lot, {})
    values["price"] = _shifted(values.get("price"))
    values["status"] = "available"
    values["annexes"] = None
    _insert_lot(store, lot, record_id, SECOND_PROGRAMME_ID, values)
    return [
        f"programme {programme.up_id}: linked as #{SECOND_PROGRAMME_ID}",
        f"lot {lot.up_id}: on MyNotary as #{record_id}, not in the link table",
    ]


def _attached_lots(programme: ProgrammeManifest) -> Iterator[tuple[LotManifest, int]]:
    for lot in programme.lots:
        if lot.link is not None and lot.link.attach is not None:
            yield lot, lot.link.attach
