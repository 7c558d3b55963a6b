"""Plans built by hand for rendering and plan file tests: every action, every kind
of value, and values that only look alike."""

from __future__ import annotations

import datetime
from decimal import Decimal

from reconciler.links import TargetIdentity
from reconciler.normalize import Value
from reconciler.plan import LOT
from reconciler.plan import PROGRAMME
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.plan import Problem

TARGET = TargetIdentity("https://mynotary.test/api", 1)
PROGRAMME_UP_ID = "PRG-TEST-ORIO"
PROGRAMME_NAME = "Résidence d'Orio"

FLAT: dict[str, Value] = {
    "number": "12",
    "nature": "appartement",
    "building": "A",
    "floor": 0,
    "orientation": "S",
    "rooms": 2,
    "livingArea": Decimal("45.50"),
    "carrezArea": Decimal("44.10"),
    "annexes": ("LOT-TEST-ORIO-1",),
    "price": Decimal("198000.00"),
    "vatRate": Decimal("5.5"),
    "status": "available",
}


def _lot(number: str, **changes: object) -> dict[str, object]:
    return {
        "kind": LOT,
        "up_id": f"LOT-TEST-ORIO-{number}",
        "programme_up_id": PROGRAMME_UP_ID,
        "programme_name": PROGRAMME_NAME,
        "label": f"lot {number} (appartement)",
        "lot_number": number,
        **changes,
    }


def programme_update() -> Change:
    """An update whose name differs only by a curly apostrophe."""
    return Change(
        Action.UPDATE,
        kind=PROGRAMME,
        up_id=PROGRAMME_UP_ID,
        programme_up_id=PROGRAMME_UP_ID,
        programme_name=PROGRAMME_NAME,
        label=f'programme "{PROGRAMME_NAME}"',
        mynotary_id=2001,
        version=3,
        fields=(
            FieldChange("name", "Résidence d\u2019Orio", PROGRAMME_NAME),
            FieldChange(
                "buildingPermit.date",
                datetime.date(2017, 1, 21),
                datetime.date(2017, 1, 20),
            ),
        ),
        desired={
            "name": PROGRAMME_NAME,
            "buildingPermit.date": datetime.date(2017, 1, 20),
        },
    )


def lot_update() -> Change:
    return Change(
        Action.UPDATE,
        mynotary_id=2003,
        version=1,
        fields=(
            FieldChange("livingArea", Decimal("57.50"), Decimal("45.50")),
            FieldChange("building", "A\u00a0", "A"),
            FieldChange("status", "sold", "available"),
        ),
        desired=dict(FLAT, number="12"),
        **_lot("12"),  # type: ignore[arg-type]
    )


def lot_create() -> Change:
    desired = dict(FLAT, number="13")
    fields = tuple(
        FieldChange(name, None, value)
        for name, value in desired.items()
        if value is not None
    )
    return Change(
        Action.CREATE,
        fields=fields,
        desired=desired,
        **_lot("13"),  # type: ignore[arg-type]
    )


def lot_link() -> Change:
    return Change(
        Action.LINK,
        mynotary_id=2002,
        version=4,
        fields=(FieldChange("price", Decimal("118001.50"), Decimal("118000.00")),),
        desired=dict(FLAT, number="48"),
        reason="attached by hand",
        **_lot("48"),  # type: ignore[arg-type]
    )


def lot_unlink() -> Change:
    return Change(
        Action.UNLINK,
        mynotary_id=2044,
        previous_id=2044,
        reason="gone from the manifests",
        **_lot("99"),  # type: ignore[arg-type]
    )


def escape_code_update() -> Change:
    """An update whose MyNotary value contains a terminal escape code."""
    return Change(
        Action.UPDATE,
        mynotary_id=2005,
        version=2,
        fields=(FieldChange("building", "\x1b[31mB\x1b[0m", "B"),),
        desired={"building": "B"},
        **_lot("14"),  # type: ignore[arg-type]
    )


def sample_plan() -> Plan:
    """A plan with one change of each action and values of each kind."""
    changes = (
        programme_update(),
        lot_update(),
        lot_create(),
        lot_link(),
        lot_unlink(),
        escape_code_update(),
    )
    return Plan(TARGET, changes, ())


def blocked_plan() -> Plan:
    problem = Problem(
        "LOT-TEST-ORIO-50",
        "lot 50 (appartement)",
        "not linked, but MyNotary already has record #2050 with number 50",
        "attach it (link: {attach: 2050}) or mark it unlinked",
    )
    return Plan(TARGET, (lot_update(),), (problem,))


def empty_plan() -> Plan:
    return Plan(TARGET, (), ())


def programme_plan(programmes: int, lots: int) -> Plan:
    """A plan of creates: ``lots`` lots in each of ``programmes`` programmes."""
    changes = []
    for index in range(programmes):
        up_id = f"PRG-BIG-{index:03d}"
        for number in range(lots):
            changes.append(
                Change(
                    Action.CREATE,
                    kind=LOT,
                    up_id=f"LOT-BIG-{index:03d}-{number}",
                    programme_up_id=up_id,
                    programme_name=f"Résidence {index:03d}",
                    label=f"lot {number} (appartement)",
                    lot_number=str(number),
                    fields=tuple(
                        FieldChange(name, None, value) for name, value in FLAT.items()
                    ),
                    desired=dict(FLAT, number=str(number)),
                )
            )
    return Plan(TARGET, tuple(changes), ())
