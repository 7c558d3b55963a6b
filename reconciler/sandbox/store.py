"""SQLite storage of the sandbox's records, in the shapes of the MyNotary contract.

Records are returned as dicts keyed like the API (``organizationId``, ``programmeId``,
``questions`` …). Questions are stored as JSON text and read back with decimals, so a
number such as 45.50 keeps its exact digits. Timestamps are Unix milliseconds.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any

Record = dict[str, Any]
Page = tuple[list[Record], int]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    organization_id INTEGER NOT NULL,
    creator_id INTEGER NOT NULL,
    type TEXT NOT NULL,
    programme_id INTEGER,
    external_reference TEXT,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    questions TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS records_by_type ON records (organization_id, type);
CREATE INDEX IF NOT EXISTS records_by_programme
    ON records (organization_id, programme_id);
"""

_COLUMNS = (
    "id, organization_id, creator_id, type, programme_id, external_reference, "
    "version, created_at, updated_at, questions"
)


class RecordNotFound(LookupError):
    """No record has this id."""

    def __init__(self, record_id: int) -> None:
        super().__init__(f"record {record_id} does not exist")
        self.record_id = record_id


class VersionConflict(Exception):
    """An update named a version that is not the record's current version."""

    def __init__(self, record_id: int, version: int, current_version: int) -> None:
        super().__init__(
            f"record {record_id} is at version {current_version}, not {version}"
        )
        self.record_id = record_id
        self.current_version = current_version


class RawJSON(str):
    """JSON text that ``dumps_json`` writes as it is: questions as stored."""


# The standard library's C function that quotes a string for JSON, without escaping
# non-ASCII characters.
_quote: Callable[[str], str] = json.encoder.encode_basestring


def dumps_json(value: Any) -> str:
    """Serialize ``value`` as JSON, writing each Decimal as a number with its digits.

    The standard encoder would need a float for a decimal, which can change its
    digits (45.50 becomes 45.5). A ``RawJSON`` value is written as it is. Raises
    ValueError for NaN or infinity and TypeError for a value JSON cannot represent.
    """
    # The common types first, without the standard encoder's set-up per call: a
    # page of records has thousands of values.
    kind = value.__class__
    if kind is str:
        return _quote(value)
    if kind is int:
        return int.__repr__(value)
    if kind is RawJSON:
        return str(value)
    if value is None:
        return "null"
    if isinstance(value, bool | str | int | float):
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    if isinstance(value, Decimal):
        return _dumps_decimal(value)
    if isinstance(value, Mapping):
        return _dumps_object(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(dumps_json(item) for item in value) + "]"
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _dumps_decimal(value: Decimal) -> str:
    if not value.is_finite():
        raise ValueError(f"{value} is not a finite number and has no JSON form")

    # str() of a finite Decimal is always valid JSON number syntax, e.g. 1E+2.
    return str(value)


def _dumps_object(value: Mapping[Any, Any]) -> str:
    members = []
    for key, item in value.items():
        if not isinstance(key, str):
            raise TypeError(f"JSON object keys must be str, not {type(key).__name__}")
        members.append(f"{dumps_json(key)}:{dumps_json(item)}")
    return "{" + ",".join(members) + "}"


def loads_json(text: str | bytes) -> Any:
    """Parse JSON text, reading numbers with a fraction or exponent as Decimal.

    Raises ValueError on invalid JSON, including NaN and Infinity.
    """
    return json.loads(text, parse_float=Decimal, parse_constant=_reject_constant)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid JSON number")


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class RecordStore:
    """Records of every organization in one SQLite database.

    ``path`` is a file, kept across restarts, or ``":memory:"``. One connection is
    shared by all threads and every call holds a lock, so uvicorn's threads may call
    any method. ``clock`` returns the current time in Unix milliseconds.
    """

    def __init__(
        self, path: str | Path = ":memory:", *, clock: Callable[[], int] = _now_ms
    ) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._connection = sqlite3.connect(str(path), check_same_thread=False)

        with self._lock, self._connection:
            self._connection.executescript(_SCHEMA)

    def __enter__(self) -> RecordStore:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the database connection, after which the store is unusable."""
        with self._lock:
            self._connection.close()

    def create(
        self,
        organization_id: int,
        creator_id: int,
        type: str,
        programme_id: int | None,
        external_reference: str | None,
        questions: Mapping[str, Any],
    ) -> Record:
        """Insert a new record at version 1 under the next free id and return it.

        Questions whose value is None are not stored, as an update removes them.
        """
        now = self._clock()
        kept = {key: value for key, value in questions.items() if value is not None}
        row = (
            organization_id,
            creator_id,
            type,
            programme_id,
            external_reference,
            1,
            now,
            now,
            dumps_json(kept),
        )

        with self._lock, self._connection:
            cursor = self._connection.execute(
                "INSERT INTO records (organization_id, creator_id, type, programme_id,"
                " external_reference, version, created_at, updated_at, questions)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )
            record_id = cursor.lastrowid

        assert record_id is not None
        return _record_from_row((record_id, *row))

    def insert(self, record: Mapping[str, Any]) -> Record:
        """Insert a record with its own ``id``, to seed a demo or a test, and return it.

        ``record`` has the API's keys. ``version`` defaults to 1 and the timestamps
        to now. Raises ValueError if a record already has this id.
        """
        row = self._seed_row(record)
        self._insert_rows([row])
        return _record_from_row(row)

    def insert_many(self, records: Iterable[Mapping[str, Any]]) -> int:
        """Insert records as ``insert`` does, in one transaction; return how many.

        One transaction makes seeding tens of thousands of records take seconds
        instead of one disk sync per record. Raises ValueError, inserting none, if
        an id is already taken.
        """
        rows = [self._seed_row(record) for record in records]
        self._insert_rows(rows)
        return len(rows)

    def _seed_row(self, record: Mapping[str, Any]) -> tuple[Any, ...]:
        now = self._clock()
        return (
            record["id"],
            record["organizationId"],
            record["creatorId"],
            record["type"],
            record.get("programmeId"),
            record.get("externalReference"),
            record.get("version", 1),
            record.get("createdAt", now),
            record.get("updatedAt", now),
            dumps_json(record.get("questions") or {}),
        )

    def _insert_rows(self, rows: list[tuple[Any, ...]]) -> None:
        try:
            with self._lock, self._connection:
                self._connection.executemany(
                    f"INSERT INTO records ({_COLUMNS})"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except sqlite3.IntegrityError:
            taken = self._first_taken_id([row[0] for row in rows])
            raise ValueError(
                f"record {taken} already exists in the sandbox store; seed each id once"
            ) from None

    def _first_taken_id(self, ids: list[int]) -> int | None:
        """Return the first of ``ids`` that is stored or repeats an earlier one."""
        seen: set[int] = set()
        for record_id in ids:
            if record_id in seen or self.get(record_id) is not None:
                return record_id
            seen.add(record_id)
        return None

    def get(self, record_id: int, *, as_stored: bool = False) -> Record | None:
        """Return the record with this id, or None if there is none.

        With ``as_stored``, its questions are the stored JSON text (``RawJSON``),
        for a response that sends them unchanged without parsing them.
        """
        with self._lock:
            row = self._connection.execute(
                f"SELECT {_COLUMNS} FROM records WHERE id = ?", (record_id,)
            ).fetchone()

        return None if row is None else _record_from_row(row, as_stored=as_stored)

    def list(
        self,
        organization_id: int,
        *,
        type: str | None = None,
        programme_id: int | None = None,
        external_reference: str | None = None,
        numero_lot: str | None = None,
        page: int = 1,
        page_size: int = 100,
        as_stored: bool = False,
    ) -> Page:
        """Return one page of the organization's records that match every filter.

        Returns the page's records in increasing id order and the number of matching
        records across all pages. ``page`` starts at 1. ``numero_lot`` matches the
        ``numero_lot`` question as text, exactly. ``as_stored`` is as for ``get``.
        """
        if page < 1 or page_size < 1:
            raise ValueError(f"page {page} and page size {page_size} must be >= 1")

        where, arguments = _where_clause(
            organization_id, type, programme_id, external_reference, numero_lot
        )
        offset = (page - 1) * page_size

        with self._lock:
            total = self._connection.execute(
                f"SELECT COUNT(*) FROM records WHERE {where}", arguments
            ).fetchone()[0]
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM records WHERE {where}"
                " ORDER BY id LIMIT ? OFFSET ?",
                (*arguments, page_size, offset),
            ).fetchall()

        return [_record_from_row(row, as_stored=as_stored) for row in rows], total

    def update(
        self, record_id: int, version: int, questions: Mapping[str, Any]
    ) -> Record:
        """Merge ``questions`` into the record and increment its version.

        A question in ``questions`` replaces the stored one of the same id, whole,
        and a question sent as None is removed. Raises RecordNotFound if no record
        has this id, and VersionConflict, changing nothing, if ``version`` is not
        the record's current version.
        """
        with self._lock, self._connection:
            row = self._connection.execute(
                f"SELECT {_COLUMNS} FROM records WHERE id = ?", (record_id,)
            ).fetchone()
            if row is None:
                raise RecordNotFound(record_id)

            record = _record_from_row(row)
            if record["version"] != version:
                raise VersionConflict(record_id, version, record["version"])

            record["questions"] = _merge_questions(record["questions"], questions)
            record["version"] += 1
            record["updatedAt"] = self._clock()
            self._connection.execute(
                "UPDATE records SET version = ?, updated_at = ?, questions = ?"
                " WHERE id = ?",
                (
                    record["version"],
                    record["updatedAt"],
                    dumps_json(record["questions"]),
                    record_id,
                ),
            )

        return record


def _where_clause(
    organization_id: int,
    record_type: str | None,
    programme_id: int | None,
    external_reference: str | None,
    numero_lot: str | None,
) -> tuple[str, tuple[Any, ...]]:
    conditions = ["organization_id = ?"]
    arguments: list[Any] = [organization_id]
    filters = (
        ("type = ?", record_type),
        ("programme_id = ?", programme_id),
        ("external_reference = ?", external_reference),
        ("CAST(json_extract(questions, '$.numero_lot') AS TEXT) = ?", numero_lot),
    )

    for condition, argument in filters:
        if argument is not None:
            conditions.append(condition)
            arguments.append(argument)

    return " AND ".join(conditions), tuple(arguments)


def _merge_questions(
    stored: Mapping[str, Any], changes: Mapping[str, Any]
) -> dict[str, Any]:
    merged = dict(stored)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    return merged


def _record_from_row(row: tuple[Any, ...], *, as_stored: bool = False) -> Record:
    questions = RawJSON(row[9]) if as_stored else loads_json(row[9])
    return {
        "id": row[0],
        "organizationId": row[1],
        "creatorId": row[2],
        "type": row[3],
        "programmeId": row[4],
        "externalReference": row[5],
        "version": row[6],
        "createdAt": row[7],
        "updatedAt": row[8],
        "questions": questions,
    }
