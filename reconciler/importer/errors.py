"""Problems found while importing a lot grid, each placed at a row and a column."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from reconciler.errors import ReconcilerError

HEADER_ROW = 1


def column_letter(index: int) -> str:
    """Return the spreadsheet name of the column at ``index`` (0 is A, 26 is AA)."""
    letters = ""
    number = index + 1
    while number:
        number, remainder = divmod(number - 1, 26)
        letters = chr(ord("A") + remainder) + letters
    return letters


@dataclass(frozen=True, order=True)
class CellRef:
    """Where a value was read: a spreadsheet row (the header is row 1) and a column.

    ``column`` is None for a value that no column gives, such as a mapping constant.
    """

    row: int
    column: str | None = None
    index: int | None = None

    def __str__(self) -> str:
        if self.column is None:
            return f"row {self.row}"
        if self.index is None:
            return f"row {self.row}, column '{self.column}'"
        return f"row {self.row}, column '{self.column}' ({column_letter(self.index)})"


@dataclass(frozen=True, order=True)
class RowIssue:
    """One problem of the export, at the cell that causes it when there is one."""

    where: CellRef | None
    message: str

    def __str__(self) -> str:
        if self.where is None:
            return self.message
        return f"{self.where}: {self.message}"


class LotGridError(ReconcilerError):
    """The export can't be imported as it is; nothing was written."""

    def __init__(self, issues: Iterable[RowIssue]) -> None:
        self.issues = sorted(issues, key=_issue_order)
        count = len(self.issues)
        super().__init__(f"{count} problem(s) in the export; nothing was written")


def _issue_order(issue: RowIssue) -> tuple[int, str, str]:
    row = issue.where.row if issue.where is not None else 0
    column = issue.where.column if issue.where and issue.where.column else ""
    return (row, column, issue.message)


class MappingError(ReconcilerError):
    """The mapping file is invalid."""

    def __init__(self, messages: Iterable[str]) -> None:
        self.messages = list(messages)
        super().__init__("invalid mapping: " + "; ".join(self.messages))
