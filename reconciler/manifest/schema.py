"""Check a loaded manifest against the JSON Schema of its apiVersion.

jsonschema's own messages are rewritten into messages that name the fault and the
fix, one issue per field. Messages on a lot branch on its nature, so that a parking
lot and an apartment get the messages that fit them. Format checking is on: a
``format: date`` value must be a real calendar date.
"""

from __future__ import annotations

import calendar
import datetime
import difflib
import functools
import json
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from importlib import resources
from typing import Any

import fastjsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.errors import ManifestIssue
from reconciler.fields import DWELLING_NATURES
from reconciler.manifest.loader import ANY_INDEX
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import PathKey
from reconciler.manifest.loader import PathPattern
from reconciler.manifest.messages import format_path
from reconciler.manifest.messages import show_value

__all__ = [
    "SUPPORTED_API_VERSIONS",
    "check_schema",
    "format_path",
    "load_schema",
    "text_paths",
]

SUPPORTED_API_VERSIONS = ("v1",)

_SCHEMA_FILES = {"v1": "manifest-v1.schema.json"}

_UP_ID_PATTERN = "^[A-Za-z0-9][A-Za-z0-9._:-]*$"
_NOT_BLANK_PATTERN = "\\S"
_DIGITS_PATTERN = re.compile(r"\^\[0-9\]\{(\d+)\}\$")
_NUMBER = r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_DECIMAL_COMMA = re.compile(r"\s*[-+]?[0-9][0-9 \u00a0\u202f]*,[0-9]+\s*")
_GROUPED_DIGITS = re.compile(
    r"\s*[-+]?[0-9]{1,3}([ \u00a0\u202f][0-9]{3})+(\.[0-9]+)?\s*"
)
_WITH_UNIT = re.compile(rf"\s*({_NUMBER})\s*(m²|m2|€|eur|euros|%)\s*", re.IGNORECASE)
_ISO_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})")

# Labels for fields whose name alone doesn't say what they hold.
_LABELS = {
    "rooms": "number of main rooms",
    "livingArea": "surface habitable",
    "carrezArea": "Carrez surface",
}
# English or near spellings of an enumeration value, and the value meant.
_ORIENTATION_SPELLINGS = {"W": "O", "NW": "NO", "SW": "SO"}
# YAML 1.1 words for booleans that YAML 1.2 reads as text.
_YAML11_BOOLEANS = frozenset(
    {"yes", "no", "on", "off", "y", "n", "Yes", "No", "On", "Off", "YES", "NO", "ON"}
)


@functools.cache
def load_schema(api_version: str) -> dict[str, Any]:
    """Return the JSON Schema of a manifest ``api_version``."""
    schema_file = resources.files("reconciler") / "schemas" / _SCHEMA_FILES[api_version]
    schema: dict[str, Any] = json.loads(schema_file.read_text(encoding="utf-8"))
    return schema


@functools.cache
def _validator(api_version: str) -> Draft202012Validator:
    schema = load_schema(api_version)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )


@functools.cache
def text_paths(api_version: str) -> frozenset[PathPattern]:
    """Return the paths of the fields that hold only text (or null) in the schema.

    The loader reads a plain scalar at these paths as the text written.
    """
    schema = load_schema(api_version)
    return frozenset(_text_patterns(schema, schema, ()))


def _text_patterns(
    root: dict[str, Any], node: dict[str, Any], prefix: PathPattern
) -> Iterator[PathPattern]:
    node = _resolve(root, node)
    if _is_text(node):
        yield prefix
    for key, child in node.get("properties", {}).items():
        yield from _text_patterns(root, child, (*prefix, key))
    if isinstance(node.get("items"), dict):
        yield from _text_patterns(root, node["items"], (*prefix, ANY_INDEX))
    for branch in node.get("allOf", []):
        yield from _text_patterns(root, branch.get("then", {}), prefix)


def _resolve(root: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    reference = node.get("$ref")
    if not isinstance(reference, str) or not reference.startswith("#/$defs/"):
        return node
    return _resolve(root, root["$defs"][reference.removeprefix("#/$defs/")])


def _is_text(node: dict[str, Any]) -> bool:
    if "enum" in node or "const" in node:
        values = node.get("enum", [node.get("const")])
        present = [value for value in values if value is not None]
        return bool(present) and all(isinstance(value, str) for value in present)
    types = node.get("type")
    if types is None:
        return False
    kinds = {types} if isinstance(types, str) else set(types)
    return kinds - {"null"} == {"string"}


def check_schema(loaded: LoadedFile) -> list[ManifestIssue]:
    """Return the schema errors of ``loaded``, one issue per faulty field."""
    data = loaded.data
    if not isinstance(data, dict):
        message = "a manifest must be a mapping of fields, starting with apiVersion: v1"
        return [_issue(loaded, (), message)]
    # Without apiVersion the file is checked as the latest version, so that one
    # run reports its other errors too.
    version = data.get("apiVersion", SUPPORTED_API_VERSIONS[-1])
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(SUPPORTED_API_VERSIONS)
        message = (
            f"unsupported apiVersion {show_value(version)}; supported: {supported}"
        )
        return [_issue(loaded, ("apiVersion",), message)]
    if _is_valid_fast(version, data):
        return []
    failures = [
        _Failure(loaded, error) for error in _validator(version).iter_errors(data)
    ]
    return _one_issue_per_field(loaded, failures)


def _is_valid_fast(version: str, data: dict[str, Any]) -> bool:
    """Return True when the compiled validator accepts ``data``.

    The compiled validator is about twenty times faster than jsonschema on valid
    files, and reports nothing about why a file is invalid: a rejected file goes
    through jsonschema, whose errors become the messages. A test checks that the
    two agree on every case file.
    """
    try:
        _compiled_validator(version)(data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


@functools.cache
def _compiled_validator(version: str) -> Callable[[Any], Any]:
    # fastjsonschema implements up to draft 7. The manifest schema uses only
    # keywords whose meaning is the same in draft 7 and 2020-12 ($defs is reached
    # through $ref pointers), so it compiles under draft 7.
    schema = _with_decimal_enums(load_schema(version))
    schema["$schema"] = "http://json-schema.org/draft-07/schema#"
    validator: Callable[[Any], Any] = fastjsonschema.compile(
        schema, formats={"date": _is_calendar_date}
    )
    return validator


def _with_decimal_enums(node: Any) -> Any:
    """Return a copy of a schema whose numeric enums also accept Decimals.

    fastjsonschema compares an enum's numbers only with ints and floats, and
    manifest numbers with a fraction are Decimals: each number of an enum becomes
    a range of one value, which compares with any number type.
    """
    if isinstance(node, list):
        return [_with_decimal_enums(item) for item in node]
    if not isinstance(node, dict):
        return node
    copy = {key: _with_decimal_enums(value) for key, value in node.items()}
    choices = copy.get("enum")
    if not isinstance(choices, list):
        return copy
    numbers = [
        choice
        for choice in choices
        if isinstance(choice, int | float) and not isinstance(choice, bool)
    ]
    if not numbers:
        return copy
    others = [choice for choice in choices if choice not in numbers]
    branches: list[dict[str, Any]] = [
        {"type": "number", "minimum": number, "maximum": number} for number in numbers
    ]
    if others:
        branches.append({"enum": others})
    del copy["enum"]
    copy["allOf"] = [*copy.get("allOf", []), {"anyOf": branches}]
    return copy


def _is_calendar_date(value: str) -> bool:
    """Check a date as jsonschema's format checker does: strict YYYY-MM-DD."""
    if not _ISO_DATE.fullmatch(value):
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _issue(loaded: LoadedFile, path: PathKey, message: str) -> ManifestIssue:
    return ManifestIssue(loaded.locate(path), format_path(path), message)


def _one_issue_per_field(
    loaded: LoadedFile, failures: list[_Failure]
) -> list[ManifestIssue]:
    issues: dict[PathKey, ManifestIssue] = {}
    for failure in sorted(failures, key=lambda item: item.rank):
        for path, message in failure.describe():
            issues.setdefault(path, _issue(loaded, path, message))
    return sorted(issues.values())


@dataclass
class _Failure:
    """One jsonschema error, with what its message needs to know."""

    loaded: LoadedFile
    error: ValidationError

    @property
    def path(self) -> PathKey:
        return tuple(self.error.absolute_path)

    @property
    def expected(self) -> Any:
        """Return the value of the schema keyword that failed."""
        return self.error.validator_value

    @property
    def schema(self) -> dict[str, Any]:
        """Return the schema object the failed keyword belongs to."""
        schema = self.error.schema
        return schema if isinstance(schema, dict) else {}

    @property
    def keyword(self) -> str:
        return str(self.error.validator)

    @property
    def value(self) -> Any:
        return self.error.instance

    @property
    def field(self) -> str:
        path = self.path
        return str(path[-1]) if path and isinstance(path[-1], str) else ""

    @property
    def rank(self) -> int:
        """Return 0 for errors of the branches on a lot's nature, whose messages are
        the most specific, and 1 for the others."""
        return 0 if "then" in self.error.schema_path else 1

    def lot_nature(self) -> str | None:
        """Return the nature of the lot this error is in, if it names a known one."""
        path = self.path
        if len(path) < 2 or path[0] != "lots" or not isinstance(path[1], int):
            return None
        lot = self.loaded.data["lots"][path[1]]
        nature = lot.get("nature") if isinstance(lot, dict) else None
        return nature if isinstance(nature, str) else None

    def describe(self) -> Iterator[tuple[PathKey, str]]:
        """Yield the field path and message of each issue this error makes."""
        if self.keyword == "required":
            yield from _required_messages(self)
        elif self.keyword == "additionalProperties":
            yield from _unknown_field_messages(self)
        else:
            describe = _MESSAGES.get(self.keyword, _fallback_message)
            yield self.path, describe(self)


def _required_messages(failure: _Failure) -> Iterator[tuple[PathKey, str]]:
    missing = [key for key in failure.expected if key not in failure.value]
    nature = failure.lot_nature()
    properties = failure.schema.get("properties", {})
    for key in missing:
        message = "missing required field"
        constant = properties.get(key, {}).get("const")
        if nature in DWELLING_NATURES and key in _LABELS:
            message += f"; a lot of nature {nature} needs its {_LABELS[key]}"
        elif isinstance(constant, str):
            message += f"; write {key}: {constant}"
        yield (*failure.path, key), message


def _unknown_field_messages(failure: _Failure) -> Iterator[tuple[PathKey, str]]:
    allowed = list(failure.schema.get("properties", {}))
    for key in sorted(set(failure.value) - set(allowed)):
        close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
        lowered = {name.casefold(): name for name in allowed}
        close = [lowered[key.casefold()]] if key.casefold() in lowered else close
        if close:
            message = f"unknown field; did you mean '{close[0]}'?"
        else:
            message = f"unknown field; the fields here are: {', '.join(allowed)}"
        yield (*failure.path, key), message


def _type_message(failure: _Failure) -> str:
    expected = failure.expected
    kinds = {expected} if isinstance(expected, str) else set(expected)
    value = failure.value
    if kinds == {"null"}:
        return _not_for_annex_message(failure)
    if value is None:
        return _no_value_message(failure, kinds)
    if kinds & {"number", "integer"}:
        return _number_message(value, whole="number" not in kinds)
    shown = show_value(value)
    if "object" in kinds:
        fields = ", ".join(failure.schema.get("properties", {}))
        return f"{shown} must be a mapping of fields: {fields}"
    if "array" in kinds:
        return f"{shown} must be a list{_list_hint(failure.field)}"
    if "string" in kinds:
        return f"must be text, not {shown}"
    return f"{shown} has the wrong type; expected {', '.join(sorted(kinds))}"


def _not_for_annex_message(failure: _Failure) -> str:
    label = _LABELS.get(failure.field, failure.field)
    return (
        f"a lot of nature {failure.lot_nature()} has no {label}; "
        f"remove '{failure.field}'"
    )


def _no_value_message(failure: _Failure, kinds: set[str]) -> str:
    nature = failure.lot_nature()
    if nature in DWELLING_NATURES and failure.field in _LABELS:
        return (
            f"has no value; a lot of nature {nature} needs its {_LABELS[failure.field]}"
        )
    if "object" in kinds:
        fields = ", ".join(failure.schema.get("required", []))
        return f"has no value; write its fields: {fields}"
    if "array" in kinds:
        return f"has no value; write a list{_list_hint(failure.field)}"
    if failure.schema.get("format") == "date":
        return "has no value; write a date as YYYY-MM-DD"
    if kinds & {"number", "integer"}:
        return "has no value; write a number"
    return "has no value; write the text"


def _list_hint(field: str) -> str:
    if field == "annexes":
        return " of Up ids, such as [LOT-1, LOT-2]"
    if field == "lots":
        return " of lots, each starting with '- upId:'"
    return ""


def _number_message(value: Any, *, whole: bool) -> str:
    shown = show_value(value)
    noun = "a whole number" if whole else "a number"
    if isinstance(value, Decimal):
        return _decimal_for_integer_message(value)
    if not isinstance(value, str):
        return f"{shown} is not {noun}"
    hint = _number_text_hint(value)
    return f"{shown} is not {noun}" + (f" ({hint})" if hint else "")


def _decimal_for_integer_message(value: Decimal) -> str:
    shown = show_value(value)
    if value.is_finite() and value == value.to_integral_value():
        return f"{shown} is not a whole number; write {int(value)}"
    return f"{shown} is not a whole number"


def _number_text_hint(text: str) -> str:
    """Return how to write ``text`` as a number, or "" if it isn't one."""
    if _DECIMAL_COMMA.fullmatch(text):
        return f"use a dot: {_without_spaces(text).replace(',', '.')}"
    if _GROUPED_DIGITS.fullmatch(text):
        return f"write it without spaces: {_without_spaces(text)}"
    with_unit = _WITH_UNIT.fullmatch(text)
    if with_unit:
        return f"write the number without its unit: {with_unit.group(1)}"
    if _is_number_text(text):
        return f"remove the quotes: {text.strip()}"
    return ""


def _without_spaces(text: str) -> str:
    return re.sub(r"[\s\u00a0\u202f]", "", text)


def _is_number_text(text: str) -> bool:
    if not re.fullmatch(_NUMBER, text.strip()):
        return False
    try:
        return Decimal(text).is_finite()
    except InvalidOperation:
        return False


def _enum_message(failure: _Failure) -> str:
    shown = show_value(failure.value)
    choices = [choice for choice in failure.expected if choice is not None]
    listed = ", ".join(str(choice) for choice in choices)
    suggestion = _suggestion(failure.value, choices)
    hint = f" (did you mean {show_value(suggestion)}?)" if suggestion else ""
    match failure.field:
        case "nature":
            return f"{shown} is not a lot nature; use one of: {listed}{hint}"
        case "orientation":
            return (
                f"{shown} is not an orientation; use a French compass point: "
                f"{listed}{hint}"
            )
        case "vatRate":
            rates = " or ".join(str(choice) for choice in choices)
            return f"{shown} is not an accepted VAT rate; use {rates}"
        case "status":
            return f"{shown} is not a sale status; use one of: {listed}{hint}"
    return f"{shown} is not one of: {listed}{hint}"


def _suggestion(value: Any, choices: list[Any]) -> str | None:
    if not isinstance(value, str):
        return None
    text_choices = [choice for choice in choices if isinstance(choice, str)]
    folded = {choice.casefold(): choice for choice in text_choices}
    key = value.strip().casefold()
    if key in folded:
        return folded[key]
    spelled = _ORIENTATION_SPELLINGS.get(value.strip().upper())
    if spelled in text_choices:
        return spelled
    close = difflib.get_close_matches(key, list(folded), n=1, cutoff=0.75)
    return folded[close[0]] if close else None


def _const_message(failure: _Failure) -> str:
    expected = failure.expected
    shown = show_value(failure.value)
    if expected is True:
        hint = ""
        if isinstance(failure.value, str) and failure.value in _YAML11_BOOLEANS:
            hint = " (YAML 1.2 reads it as text)"
        return f"{shown} is not true{hint}; write {failure.field}: true, or remove it"
    written = expected if isinstance(expected, str) else show_value(expected)
    return f"{shown} is invalid; write {failure.field}: {written}"


def _format_message(failure: _Failure) -> str:
    if failure.expected == "date":
        return _date_message(failure.value)
    return f"{show_value(failure.value)} is not a valid {failure.expected}"


def _date_message(value: str) -> str:
    shown = show_value(value)
    parts = _ISO_DATE.fullmatch(value)
    if parts is None:
        return f"{shown} is not a date; write it as YYYY-MM-DD"
    year, month = int(parts.group(1)), int(parts.group(2))
    if not 1 <= month <= 12:
        return f"{shown} is not a valid date: there is no month {month}"
    if year < 1:
        return f"{shown} is not a valid date: there is no year 0"
    days = calendar.monthrange(year, month)[1]
    month_name = calendar.month_name[month]
    return f"{shown} is not a valid date: {month_name} {year} has {days} days"


def _pattern_message(failure: _Failure) -> str:
    pattern = failure.expected
    shown = show_value(failure.value)
    if pattern == _NOT_BLANK_PATTERN:
        return "must not be blank"
    if pattern == _UP_ID_PATTERN:
        return (
            f"{shown} is not a valid Up id: letters, digits and . _ : - only, "
            "starting with a letter or digit"
        )
    digits = _DIGITS_PATTERN.fullmatch(pattern)
    if digits is not None:
        return _digits_message(failure.field, failure.value, int(digits.group(1)))
    return f"{shown} does not match the pattern {pattern}"


def _digits_message(field: str, value: str, count: int) -> str:
    shown = show_value(value)
    names = {
        "postalCode": "postal code",
        "siren": "SIREN number",
        "siret": "SIRET number",
    }
    message = (
        f"{shown} is not a {names.get(field, field)}: {count} digits, written as text"
    )
    compact = _without_spaces(value)
    if compact != value and compact.isdigit() and len(compact) == count:
        return f'{message}; write it without spaces: "{compact}"'
    if field == "postalCode" and value.isdigit() and len(value) == count - 1:
        return f'{message}; if it lost a leading zero, write "0{value}"'
    if field == "postalCode":
        return f'{message} ("01000")'
    return message


def _length_message(failure: _Failure) -> str:
    limit = failure.expected
    if failure.keyword == "minLength":
        return "must not be empty"
    return f"is {len(failure.value)} characters long; the limit is {limit}"


def _bound_message(failure: _Failure) -> str:
    shown = show_value(failure.value)
    limit = failure.expected
    match failure.keyword:
        case "exclusiveMinimum":
            return f"{shown} must be greater than {limit}"
        case "minimum":
            return f"{shown} must be at least {limit}"
    return f"{shown} must be at most {limit}"


def _unique_items_message(failure: _Failure) -> str:
    seen: set[Any] = set()
    for item in failure.value:
        key = json.dumps(item, sort_keys=True, default=str)
        if key in seen:
            return f"lists {show_value(item)} twice; keep it once"
        seen.add(key)
    return "lists the same value twice; keep it once"


def _one_of_message(failure: _Failure) -> str:
    if failure.field == "link" and isinstance(failure.value, dict):
        if {"attach", "unlinked"} <= set(failure.value):
            return "a link sets either 'attach: ID' or 'unlinked: true', not both"
        return "a link must set 'attach: ID' or 'unlinked: true'"
    return f"{show_value(failure.value)} matches none of the accepted forms"


def _fallback_message(failure: _Failure) -> str:
    return f"{show_value(failure.value)} is invalid ({failure.keyword})"


_MESSAGES: dict[str, Callable[[_Failure], str]] = {
    "type": _type_message,
    "enum": _enum_message,
    "const": _const_message,
    "format": _format_message,
    "pattern": _pattern_message,
    "minLength": _length_message,
    "maxLength": _length_message,
    "exclusiveMinimum": _bound_message,
    "minimum": _bound_message,
    "maximum": _bound_message,
    "uniqueItems": _unique_items_message,
    "oneOf": _one_of_message,
}
