"""Group row records into programmes and lots, following the mapping's ``sameLot``.

With ``error``, a lot number may appear in one row only, and the rows of a programme
must agree on its values. With ``latest``, rows are taken in ``orderBy`` order and
each later non-empty value replaces the earlier one, field by field, so a value that
the latest row lacks is taken from the latest earlier row that has it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field

from reconciler.importer.errors import RowIssue
from reconciler.importer.mapping import NUMBER
from reconciler.importer.mapping import SAME_LOT_LATEST
from reconciler.importer.mapping import UP_ID
from reconciler.importer.mapping import Mapping
from reconciler.importer.rows import RowRecord
from reconciler.importer.values import Evaluated


@dataclass
class ImportedLot:
    """A lot as the export describes it, and the rows that describe it."""

    programme_id: str
    number: str
    values: dict[str, Evaluated] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)

    @property
    def up_id(self) -> str:
        """Return the lot's Up id."""
        return str(self.values[UP_ID].value)


@dataclass
class ImportedProgramme:
    """A programme as the export describes it, with its lots by number."""

    up_id: str
    values: dict[str, Evaluated] = field(default_factory=dict)
    lots: dict[str, ImportedLot] = field(default_factory=dict)
    rows: list[int] = field(default_factory=list)


def merge_records(
    records: Iterable[RowRecord], mapping: Mapping
) -> tuple[dict[str, ImportedProgramme], list[RowIssue]]:
    """Return the programmes by Up id, and the fatal issues of the merge."""
    is_latest = mapping.same_lot == SAME_LOT_LATEST
    ordered = (
        sorted(records, key=lambda r: (r.sort_key, r.row))
        if is_latest
        else list(records)
    )
    programmes: dict[str, ImportedProgramme] = {}
    fatal: list[RowIssue] = []
    for record in ordered:
        programme = programmes.setdefault(
            record.programme_id, ImportedProgramme(record.programme_id)
        )
        programme.rows.append(record.row)
        fatal.extend(
            _merge_values(programme.values, record.programme_values, is_latest)
        )
        fatal.extend(_merge_lots(programme, record, is_latest))
    for programme in programmes.values():
        programme.rows.sort()
    return programmes, fatal


def _merge_lots(
    programme: ImportedProgramme, record: RowRecord, is_latest: bool
) -> list[RowIssue]:
    issues = []
    for lot_record in record.lots:
        lot = programme.lots.get(lot_record.number)
        if lot is None:
            lot = ImportedLot(programme.up_id, lot_record.number)
            programme.lots[lot_record.number] = lot
        elif not is_latest and record.row not in lot.rows:
            issues.append(_repeated_lot(programme.up_id, lot, lot_record.values))
            continue
        if record.row not in lot.rows:
            lot.rows.append(record.row)
            lot.rows.sort()
        issues.extend(_merge_values(lot.values, lot_record.values, is_latest))
    return issues


def _repeated_lot(
    programme_id: str, lot: ImportedLot, values: dict[str, Evaluated]
) -> RowIssue:
    first = lot.rows[0]
    message = (
        f"lot number '{lot.number}' of programme {programme_id} is already given at "
        f"row {first}; keep one row per lot"
    )
    return RowIssue(values[NUMBER].source, message)


def _merge_values(
    merged: dict[str, Evaluated], values: dict[str, Evaluated], is_latest: bool
) -> list[RowIssue]:
    issues = []
    for target, value in values.items():
        current = merged.get(target)
        if current is None or current.is_empty:
            merged[target] = value
        elif value.is_empty:
            continue
        elif is_latest:
            merged[target] = value
        elif _differs(current, value):
            issues.append(_conflict(target, current, value))
    return issues


def _differs(first: Evaluated, second: Evaluated) -> bool:
    spec = first.rule.spec
    return spec.normalize(first.value) != spec.normalize(second.value)


def _conflict(target: str, first: Evaluated, second: Evaluated) -> RowIssue:
    message = (
        f"{target} '{second.value}' differs from '{first.value}' at row "
        f"{first.source.row} for the same programme; rows of a programme must agree"
    )
    return RowIssue(second.source, message)
