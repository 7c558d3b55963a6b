"""Schema messages: one specific message per faulty field, never jsonschema's own."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import PathKey
from reconciler.manifest.loader import load_file
from reconciler.manifest.schema import check_schema
from reconciler.manifest.schema import load_schema
from reconciler.manifest.schema import text_paths

CASES = Path(__file__).resolve().parent / "cases"

# Phrases of jsonschema's own messages, which describe the failure in schema terms
# and not how to fix the manifest.
JSONSCHEMA_PHRASES = (
    "is not valid under any of the given schemas",
    "is valid under each of",
    "is not of type",
    "does not match",
    "is a required property",
    "Additional properties",
    "is not one of [",
    "False schema",
    "is too long",
    "is too short",
    "should be non-empty",
    "was expected",
    "is invalid (",
)


def _complete() -> dict[str, Any]:
    loaded = load_file(CASES / "valid" / "complete.yaml", text_paths=text_paths("v1"))
    data: dict[str, Any] = loaded.data
    return data


def _messages(data: Any) -> list[str]:
    issues = check_schema(LoadedFile("m.yaml", data))
    return [f"{issue.field_path}: {issue.message}" for issue in issues]


def _with(path: PathKey, value: Any) -> dict[str, Any]:
    data = _complete()
    parent: Any = data
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return data


def test_schema_valid_draft_2020_12() -> None:
    Draft202012Validator.check_schema(load_schema("v1"))


def test_complete_case_valid() -> None:
    assert _messages(_complete()) == []


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("lots", 3, "orientation"),
            "no",
            "lots[3].orientation: 'no' is not an orientation; use a French compass "
            "point: N, NE, E, SE, S, SO, O, NO (did you mean 'NO'?)",
        ),
        (
            ("lots", 0, "nature"),
            "parking\u00a0",
            "lots[0].nature: 'parking\\xa0' is not a lot nature; use one of: "
            "appartement, duplex, triplex, maison, cave, cellier, garage, parking, "
            "local (did you mean 'parking'?)",
        ),
        (
            ("lots", 2, "link", "unlinked"),
            False,
            "lots[2].link.unlinked: false is not true; write unlinked: true, or "
            "remove it",
        ),
        (
            ("buildingPermit", "date"),
            None,
            "buildingPermit.date: has no value; write a date as YYYY-MM-DD",
        ),
        (
            ("lots",),
            None,
            "lots: has no value; write a list of lots, each starting with '- upId:'",
        ),
        (
            ("address",),
            None,
            "address: has no value; write its fields: street, postalCode, city",
        ),
        (
            ("name",),
            "x" * 300,
            "name: is 300 characters long; the limit is 200",
        ),
        (
            ("lots", 1, "price"),
            Decimal("1E+999999"),
            "lots[1].price: 1E+999999 must be at most 1000000000",
        ),
        (
            ("lots", 1, "livingArea"),
            0,
            "lots[1].livingArea: 0 must be greater than 0",
        ),
        (
            ("lots", 0, "livingArea"),
            "abc",
            "lots[0].livingArea: a lot of nature parking has no surface habitable; "
            "remove 'livingArea'",
        ),
        (
            ("lots", 1, "rooms"),
            None,
            "lots[1].rooms: has no value; a lot of nature appartement needs its "
            "number of main rooms",
        ),
        (
            ("address", "postalCode"),
            "647000",
            "address.postalCode: '647000' is not a postal code: 5 digits, written as "
            'text ("01000")',
        ),
        (
            ("lots", 1, "annexes"),
            ["LOT-CASE-1", "LOT-CASE-1"],
            "lots[1].annexes: lists 'LOT-CASE-1' twice; keep it once",
        ),
        (
            ("link", "attach"),
            True,
            "link.attach: true is not a whole number",
        ),
        (
            ("lots", 2, "status"),
            "Sold",
            "lots[2].status: 'Sold' is not a sale status; use one of: available, "
            "optioned, reserved, sold (did you mean 'sold'?)",
        ),
        (
            ("lots", 1, "price"),
            "1.98E5",
            "lots[1].price: '1.98E5' is not a number (remove the quotes: 1.98E5)",
        ),
        (
            ("lots", 1, "price"),
            "198\u202f000,50",
            "lots[1].price: '198\\u202f000,50' is not a number (use a dot: 198000.50)",
        ),
    ],
)
def test_schema_message(path: PathKey, value: Any, message: str) -> None:
    assert _messages(_with(path, value)) == [message]


def test_long_value_cut() -> None:
    messages = _messages(_with(("lots", 0, "nature"), "p" * 100))

    assert messages[0].startswith("lots[0].nature: '" + "p" * 59 + "…' is not")


def test_missing_api_version_checks_rest() -> None:
    data = _complete()
    del data["apiVersion"]
    data["kind"] = "Programmes"

    assert _messages(data) == [
        "apiVersion: missing required field; write apiVersion: v1",
        "kind: 'Programmes' is invalid; write kind: Programme",
    ]


def test_one_issue_per_field() -> None:
    """An apartment's livingArea fails two schema branches but gets one message."""
    messages = _messages(_with(("lots", 3, "livingArea"), "45,50"))

    assert messages == [
        "lots[3].livingArea: '45,50' is not a number (use a dot: 45.50)"
    ]


def test_messages_branch_on_nature() -> None:
    apartment = _messages(_with(("lots", 3, "rooms"), None))
    parking = _messages(_with(("lots", 0, "rooms"), 2))

    assert apartment == [
        "lots[3].rooms: has no value; a lot of nature appartement needs its number "
        "of main rooms"
    ]
    assert parking == [
        "lots[0].rooms: a lot of nature parking has no number of main rooms; "
        "remove 'rooms'"
    ]


def _paths(data: Any, prefix: PathKey = ()) -> list[PathKey]:
    paths: list[PathKey] = [prefix] if prefix else []
    if isinstance(data, dict):
        for key, value in data.items():
            paths.extend(_paths(value, (*prefix, key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            paths.extend(_paths(value, (*prefix, index)))
    return paths


_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["45,50", "NO", "2026-02-30", "", "  ", "appartement"])
)
_VALUES = st.recursive(
    _SCALARS,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=6,
)
_COMPLETE_PATHS = _paths(_complete())


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_COMPLETE_PATHS), _VALUES), max_size=4))
def test_no_jsonschema_message(replacements: list[tuple[PathKey, Any]]) -> None:
    """Whatever a field holds, the message is one of ours."""
    data = _complete()
    for path, value in replacements:
        parent: Any = data
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = copy.deepcopy(value)
        except (KeyError, IndexError, TypeError):
            continue

    for message in _messages(data):
        for phrase in JSONSCHEMA_PHRASES:
            assert phrase not in message
        assert "\n" not in message
