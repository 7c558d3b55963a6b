"""Read a CSV export into a header and rows of text cells.

Spreadsheets save CSV in the settings of the machine: a French Excel writes ``;``
between fields and Windows-1252 text, or UTF-8 with a byte order mark when asked
for "CSV UTF-8". The encoding and the separator are detected unless forced.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from reconciler.importer.errors import HEADER_ROW
from reconciler.importer.errors import CellRef
from reconciler.importer.errors import LotGridError
from reconciler.importer.errors import RowIssue

SEPARATORS = (";", ",", "\t")
SEPARATOR_NAMES = {";": "';'", ",": "','", "\t": "tab"}
MAX_FILE_BYTES = 64 * 1024 * 1024
_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 with BOM"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16 with BOM"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16 with BOM"),
)


@dataclass(frozen=True)
class Row:
    """One data row: its spreadsheet number (the header is row 1) and its cells."""

    number: int
    cells: tuple[str, ...]

    @property
    def is_empty(self) -> bool:
        """Return whether every cell is empty, as in a blank line."""
        return not any(self.cells)


@dataclass(frozen=True)
class Grid:
    """A CSV export read as text: where it came from, how it was read, its rows."""

    file: str
    encoding: str
    separator: str
    header: tuple[str, ...]
    rows: tuple[Row, ...]

    def column_index(self, name: str) -> int | None:
        """Return the position of the column ``name``; exact match first, then
        without case."""
        if name in self.header:
            return self.header.index(name)
        folded = [column.casefold() for column in self.header]
        if name.casefold() in folded:
            return folded.index(name.casefold())
        return None

    @property
    def description(self) -> str:
        """Return how the file was read, for the summary."""
        return f"{self.encoding}, separator {SEPARATOR_NAMES[self.separator]}"


def read_grid(path: Path, encoding: str | None, separator: str | None) -> Grid:
    """Read the CSV at ``path``; raise ``LotGridError`` if it can't be read."""
    raw = _read_bytes(path)
    text, encoding_name = decode(raw, encoding)
    chosen = separator or detect_separator(text)
    records = list(csv.reader(io.StringIO(text, newline=""), delimiter=chosen))
    if not records or not any(records[0]):
        raise _file_error("the file has no header row; export the grid with its header")
    header = tuple(_clean(cell) for cell in records[0])
    rows = tuple(
        Row(HEADER_ROW + offset, _cells(record, len(header)))
        for offset, record in enumerate(records[1:], start=1)
    )
    return Grid(path.name, encoding_name, chosen, header, rows)


def _read_bytes(path: Path) -> bytes:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES // (1024 * 1024)
            raise _file_error(
                f"{path} is {size} bytes; exports are limited to {limit} MiB"
            )
        return path.read_bytes()
    except OSError as error:
        raise _file_error(f"can't read {path}: {error.strerror}") from None


def decode(raw: bytes, encoding: str | None) -> tuple[str, str]:
    """Return the text of ``raw`` and the name of its encoding.

    A byte order mark decides; otherwise strict UTF-8 is tried, then Windows-1252.
    ``encoding`` forces a codec.
    """
    if encoding is not None:
        return _decode_forced(raw, encoding)
    for bom, codec, name in _BOMS:
        if raw.startswith(bom):
            return _decode_forced(raw, codec)[0], name
    try:
        return raw.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    try:
        return raw.decode("windows-1252"), "Windows-1252"
    except UnicodeDecodeError as error:
        byte = raw[error.start]
        message = (
            f"the file is neither UTF-8 nor Windows-1252 (byte 0x{byte:02x} at offset "
            f"{error.start}); pass --encoding with its encoding"
        )
        raise _file_error(message) from None


def _decode_forced(raw: bytes, encoding: str) -> tuple[str, str]:
    try:
        codec = codecs.lookup(encoding)
    except LookupError:
        raise _file_error(
            f"unknown encoding '{encoding}'; use a name such as utf-8 or windows-1252"
        ) from None
    try:
        text = raw.decode(codec.name)
    except UnicodeDecodeError as error:
        message = (
            f"the file is not valid {encoding} (byte 0x{raw[error.start]:02x} at "
            f"offset {error.start}); check --encoding"
        )
        raise _file_error(message) from None
    return text.removeprefix("\ufeff"), encoding


def detect_separator(text: str) -> str:
    """Return the separator that splits the header row into the most columns.

    The header decides because data cells may hold decimal commas, while column
    names rarely hold a separator.
    """
    first_line = text.split("\n", 1)[0]
    counts = {
        candidate: len(next(csv.reader([first_line], delimiter=candidate), []))
        for candidate in SEPARATORS
    }
    best = max(SEPARATORS, key=lambda candidate: counts[candidate])
    if counts[best] < 2:
        message = "can't tell the separator: the header row has one column"
        raise _file_error(f"{message}; pass --separator")
    return best


def _cells(record: list[str], width: int) -> tuple[str, ...]:
    cells = [_clean(cell) for cell in record]
    if len(cells) < width:
        cells.extend([""] * (width - len(cells)))
    return tuple(cells)


def _clean(cell: str) -> str:
    return unicodedata.normalize("NFC", cell).strip()


def _file_error(message: str) -> LotGridError:
    return LotGridError([RowIssue(None, message)])


def header_issue(message: str) -> RowIssue:
    """Return an issue placed on the header row."""
    return RowIssue(CellRef(HEADER_ROW), message)
