"""Turn the rows of an export into records: a programme, its values and its lots.

Every row ends up counted once: read into a record, or skipped with a reason
(``SkippedRow``). Problems that the mapping must fix (a missing column, a value
missing from a translation table) are collected as fatal issues instead.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from reconciler.importer.errors import CellRef
from reconciler.importer.errors import RowIssue
from reconciler.importer.grid import Grid
from reconciler.importer.grid import Row
from reconciler.importer.grid import header_issue
from reconciler.importer.mapping import ANNEXES
from reconciler.importer.mapping import NUMBER
from reconciler.importer.mapping import UP_ID
from reconciler.importer.mapping import FieldRule
from reconciler.importer.mapping import Mapping
from reconciler.importer.template import LOT_NUMBER
from reconciler.importer.template import PROGRAMME_UP_ID
from reconciler.importer.values import CellError
from reconciler.importer.values import Evaluated
from reconciler.importer.values import UnknownValue
from reconciler.importer.values import evaluate

SortKey = tuple[tuple[int, Any], ...]


class SkipKind(enum.Enum):
    """Reason a row was not imported."""

    EMPTY = "empty row"
    DUPLICATE = "duplicate row"
    NOT_SELECTED = "not selected by the mapping"
    OTHER_PROGRAMME = "programme not selected"
    NO_LOT_NUMBER = "missing lot number"
    ERROR = "error"
    LEFT_OUT = "lot left out"


@dataclass(frozen=True)
class SkippedRow:
    """A row that was not imported, and why."""

    row: int
    kind: SkipKind
    detail: str


@dataclass
class LotRecord:
    """A lot read from one row: its number and the values of its fields."""

    number: str
    values: dict[str, Evaluated]


@dataclass
class RowRecord:
    """Content of one row: its programme, programme values, lots and sort key."""

    row: int
    programme_id: str
    programme_values: dict[str, Evaluated]
    lots: list[LotRecord]
    sort_key: SortKey = ()


@dataclass
class RowErrors:
    """Errors that leave records out: ``lots`` by (programme, number), and
    ``programmes`` by Up id; each maps to the issue that caused it."""

    lots: dict[tuple[str, str], RowIssue] = field(default_factory=dict)
    programmes: dict[str, RowIssue] = field(default_factory=dict)
    # Rows in error whose programme is unknown, so no record can be kept for them.
    unplaced: list[RowIssue] = field(default_factory=list)

    def reject_lot(self, programme_id: str, number: str, issue: RowIssue) -> None:
        """Leave the lot out, keeping the first issue found for it."""
        self.lots.setdefault((programme_id, number), issue)

    def reject_programme(self, programme_id: str, issue: RowIssue) -> None:
        """Leave the programme and its lots out, keeping the first issue found."""
        self.programmes.setdefault(programme_id, issue)


@dataclass
class ReadResult:
    """Records, skipped rows, row errors and fatal issues of one export."""

    records: list[RowRecord] = field(default_factory=list)
    skipped: list[SkippedRow] = field(default_factory=list)
    errors: RowErrors = field(default_factory=RowErrors)
    fatal: list[RowIssue] = field(default_factory=list)


@dataclass(frozen=True)
class Selection:
    """Programmes to import. ``single`` names the one programme of an export whose
    mapping reads no programme Up id."""

    programmes: frozenset[str] = frozenset()
    single: str | None = None


def read_records(grid: Grid, mapping: Mapping, selection: Selection) -> ReadResult:
    """Read every row of ``grid`` into a record or a skipped row."""
    result = ReadResult()
    indexes, missing = _column_indexes(grid, mapping)
    if missing:
        result.fatal.extend(missing)
        return result
    reader = _RowReader(grid, mapping, selection, indexes, result)
    for row in grid.rows:
        reader.read(row)
    return result


def _column_indexes(
    grid: Grid, mapping: Mapping
) -> tuple[dict[str, int], list[RowIssue]]:
    indexes: dict[str, int] = {}
    missing: list[RowIssue] = []
    for name in mapping.columns:
        index = grid.column_index(name)
        if index is None:
            found = ", ".join(f"'{column}'" for column in grid.header if column)
            message = (
                f"column '{name}' is missing from the header; the mapping "
                f"{mapping.file} reads it (columns found: {found})"
            )
            missing.append(header_issue(message))
        else:
            indexes[name] = index
    return indexes, missing


class _RowReader:
    """Reads rows one by one, remembering earlier rows to find duplicates."""

    def __init__(
        self,
        grid: Grid,
        mapping: Mapping,
        selection: Selection,
        indexes: dict[str, int],
        result: ReadResult,
    ) -> None:
        self.grid = grid
        self.mapping = mapping
        self.selection = selection
        self.indexes = indexes
        self.result = result
        self.first_rows: dict[tuple[str, ...], int] = {}

    def read(self, row: Row) -> None:
        skip = self._skip_reason(row)
        if skip is not None:
            self.result.skipped.append(skip)
            return
        try:
            record = self._record(row)
        except UnknownValue as error:
            issue = RowIssue(self._ref(row, error.rule), str(error))
            self.result.fatal.append(issue)
            return
        if record is not None:
            self.result.records.append(record)

    def _skip_reason(self, row: Row) -> SkippedRow | None:
        if row.is_empty:
            return SkippedRow(row.number, SkipKind.EMPTY, "empty row")
        first = self.first_rows.setdefault(row.cells, row.number)
        if first != row.number:
            return SkippedRow(
                row.number, SkipKind.DUPLICATE, f"duplicate of row {first}"
            )
        for condition in self.mapping.where:
            text = self._cell(row, condition.column)
            if not condition.accepts(text):
                detail = f"column '{condition.column}' is '{text}'"
                return SkippedRow(row.number, SkipKind.NOT_SELECTED, detail)
        return None

    def _cell(self, row: Row, column: str) -> str:
        return row.cells[self.indexes[column]]

    def _ref(self, row: Row, rule: FieldRule) -> CellRef:
        column = rule.shown_column
        if column is None:
            return CellRef(row.number)
        return CellRef(row.number, column, self.indexes[column])

    def _record(self, row: Row) -> RowRecord | None:
        programme_id = self._programme_id(row)
        if programme_id is None:
            return None
        if self.selection.programmes and programme_id not in self.selection.programmes:
            skipped = SkippedRow(row.number, SkipKind.OTHER_PROGRAMME, programme_id)
            self.result.skipped.append(skipped)
            return None
        numbers = self._lot_numbers(row, programme_id)
        if not numbers:
            self.result.skipped.append(self._no_lot_number(row))
            return None
        record = RowRecord(row.number, programme_id, {}, [])
        self._check_width(row, record, numbers)
        record.programme_values = self._programme_values(row, programme_id)
        record.lots = list(self._lots(row, programme_id, numbers))
        record.sort_key = self._sort_key(row, programme_id, numbers)
        return record

    def _programme_id(self, row: Row) -> str | None:
        rule = self.mapping.programme.get(UP_ID)
        if rule is None:
            return self.selection.single
        value = self._evaluate(rule, row, "", "").value
        if value:
            return str(value)
        column = rule.shown_column or "upId"
        issue = RowIssue(
            self._ref(row, rule), f"missing programme Up id in column '{column}'"
        )
        self.result.errors.unplaced.append(issue)
        self.result.skipped.append(SkippedRow(row.number, SkipKind.ERROR, str(issue)))
        return None

    def _evaluate(
        self, rule: FieldRule, row: Row, programme_id: str, lot_number: str
    ) -> Evaluated:
        def lookup(name: str) -> str:
            if name == LOT_NUMBER:
                return lot_number
            if name == PROGRAMME_UP_ID:
                return programme_id
            return self._cell(row, name)

        return evaluate(rule, lookup, self._ref(row, rule))

    def _lot_numbers(self, row: Row, programme_id: str) -> list[tuple[int, str]]:
        numbers = []
        for index, group in enumerate(self.mapping.lot_groups):
            value = self._evaluate(group[NUMBER], row, programme_id, "").value
            if value:
                numbers.append((index, str(value)))
        return numbers

    def _no_lot_number(self, row: Row) -> SkippedRow:
        rule = self.mapping.lot_groups[0][NUMBER]
        column = rule.shown_column
        where = f" in column '{column}'" if column else ""
        return SkippedRow(
            row.number, SkipKind.NO_LOT_NUMBER, f"missing lot number{where}"
        )

    def _check_width(
        self, row: Row, record: RowRecord, numbers: list[tuple[int, str]]
    ) -> None:
        width = len(self.grid.header)
        if not any(row.cells[width:]):
            return
        message = f"the row has {len(row.cells)} cells but the header has {width}"
        issue = RowIssue(CellRef(row.number), f"{message}; check the separator")
        for _, number in numbers:
            self.result.errors.reject_lot(record.programme_id, number, issue)

    def _programme_values(self, row: Row, programme_id: str) -> dict[str, Evaluated]:
        values = {}
        for target, rule in self.mapping.programme.items():
            if target == UP_ID:
                continue
            try:
                values[target] = self._evaluate(rule, row, programme_id, "")
            except CellError as error:
                issue = RowIssue(self._ref(row, rule), str(error))
                self.result.errors.reject_programme(programme_id, issue)
        return values

    def _lots(
        self, row: Row, programme_id: str, numbers: list[tuple[int, str]]
    ) -> Iterator[LotRecord]:
        for group_index, number in numbers:
            group = self.mapping.lot_groups[group_index]
            others = tuple(other for index, other in numbers if index != group_index)
            values: dict[str, Evaluated] = {}
            for target, rule in group.items():
                try:
                    values[target] = self._lot_value(
                        rule, row, programme_id, number, others
                    )
                except CellError as error:
                    issue = RowIssue(self._ref(row, rule), str(error))
                    self.result.errors.reject_lot(programme_id, number, issue)
            yield LotRecord(number, values)

    def _lot_value(
        self,
        rule: FieldRule,
        row: Row,
        programme_id: str,
        number: str,
        others: tuple[str, ...],
    ) -> Evaluated:
        if rule.is_same_row and rule.target == ANNEXES:
            return Evaluated(others or None, self._ref(row, rule), rule)
        return self._evaluate(rule, row, programme_id, number)

    def _sort_key(
        self, row: Row, programme_id: str, numbers: list[tuple[int, str]]
    ) -> SortKey:
        key = []
        for rule in self.mapping.order_by:
            try:
                value = self._evaluate(rule, row, programme_id, "").value
            except CellError as error:
                issue = RowIssue(self._ref(row, rule), str(error))
                for _, number in numbers:
                    self.result.errors.reject_lot(programme_id, number, issue)
                value = None
            key.append((0, "") if value is None else (1, value))
        return tuple(key)
