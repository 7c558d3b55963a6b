"""Generate a deterministic estate of manifests for benchmarks.

``write_estate(folder, programmes=500, lots=100)`` writes one manifest per
programme, each with ``lots`` lots: one lot in ten is a parking attached to the
dwelling before it. The same arguments always give the same bytes, so runs can
be compared. ``reprice`` selects lots, by programme and lot index, whose price
is raised by 1,000: the same estate with some lots changed.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

NATURES = ("appartement", "appartement", "duplex", "appartement", "maison")
ORIENTATIONS = ("N", "NE", "E", "SE", "S", "SO", "O", "NO")
STATUSES = ("available", "optioned", "reserved", "sold")
STREETS = (
    "Rue de la Bretonnière",
    "Chemin de Teilleria",
    "Avenue des Mimosas",
    "Rue d'Orio",
    "Boulevard de l'Océan",
)
PROMOTER_SIREN = "918730466"
PRICE_RISE = 1000

# A predicate on (programme index, lot index): True raises that lot's price.
Reprice = Callable[[int, int], bool]


def programme_up_id(programme: int) -> str:
    return f"PRG-BENCH-{programme:04d}"


def lot_up_id(programme: int, lot: int) -> str:
    return f"LOT-BENCH-{programme:04d}-{lot:04d}"


def _lot_lines(
    programme: int, lot: int, lots: int, reprice: Reprice | None
) -> list[str]:
    is_parking = lot % 10 == 9
    rise = PRICE_RISE if reprice is not None and reprice(programme, lot) else 0
    lines = [
        f'  - upId: "{lot_up_id(programme, lot)}"',
        f'    number: "{lot + 1}"',
    ]
    if is_parking:
        lines += [
            "    nature: parking",
            '    building: "A"',
            "    floor: -1",
            f"    price: {12000 + lot * 10 + rise}.00",
            "    vatRate: 20",
            f"    status: {STATUSES[lot % 4]}",
        ]
        return lines
    area = Decimal(30 + (programme * 7 + lot * 13) % 70) + Decimal("0.50")
    annex = lot + 1
    lines += [
        f"    nature: {NATURES[lot % len(NATURES)]}",
        f'    building: "{"AB"[lot % 2]}"',
        f"    floor: {lot // 10}",
        f'    orientation: "{ORIENTATIONS[lot % 8]}"',
        f"    rooms: {1 + lot % 5}",
        f"    livingArea: {area}",
        f"    carrezArea: {area - Decimal('1.25')}",
    ]
    if annex % 10 == 9 and annex < lots:
        lines.append(f'    annexes: ["{lot_up_id(programme, annex)}"]')
    lines += [
        f"    price: {150000 + lot * 1000 + programme + rise}.00",
        f"    vatRate: {'5.5' if lot % 17 == 0 else '20'}",
        f"    status: {STATUSES[(programme + lot) % 4]}",
    ]
    return lines


def render_manifest(programme: int, lots: int, reprice: Reprice | None = None) -> str:
    """Return the manifest text of one generated programme."""
    lines = [
        "apiVersion: v1",
        "kind: Programme",
        f'upId: "{programme_up_id(programme)}"',
        f"name: Résidence Banc d'essai {programme}",
        "address:",
        f'  streetNumber: "{1 + programme % 120}"',
        f"  street: {STREETS[programme % len(STREETS)]}",
        '  postalCode: "64700"',
        "  city: Hendaye",
        "promoter:",
        "  name: Côte Basque Promotion Démo SAS",
        f'  siren: "{PROMOTER_SIREN}"',
        "buildingPermit:",
        f'  number: "PC 064 260 24 B{programme:04d}"',
        "  date: 2024-03-15",
        "expectedDelivery: 2027-06-30",
        "lots:",
    ]
    for lot in range(lots):
        lines += _lot_lines(programme, lot, lots, reprice)
    return "\n".join(lines) + "\n"


def write_estate(
    folder: Path,
    programmes: int = 500,
    lots: int = 100,
    reprice: Reprice | None = None,
) -> list[Path]:
    """Write ``programmes`` manifests of ``lots`` lots each; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for programme in range(programmes):
        path = folder / f"bench-{programme:04d}.yaml"
        text = render_manifest(programme, lots, reprice)
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths
