"""Check a loaded manifest against the JSON Schema of its apiVersion.

jsonschema's own messages are rewritten into messages that name the field's meaning
and the fix, and branch on a lot's nature so that a parking lot and an apartment get
the messages that fit them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from importlib import resources
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.errors import ManifestIssue
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import PathKey

SUPPORTED_API_VERSIONS = ("v1",)

_SCHEMA_FILES = {"v1": "manifest-v1.schema.json"}
_DECIMAL_COMMA = re.compile(r"\s*-?[0-9][0-9 ]*,[0-9]+\s*")


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


def format_path(path: PathKey) -> str:
    """Return a field path as written in messages: ``lots[3].livingArea``."""
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        else:
            text += f".{key}" if text else key
    return text


def check_schema(loaded: LoadedFile) -> list[ManifestIssue]:
    """Return the schema errors of ``loaded``, one issue per faulty field."""
    data = loaded.data
    if not isinstance(data, dict):
        return [_issue(loaded, (), "a manifest must be a mapping of fields")]
    version = data.get("apiVersion")
    if version not in SUPPORTED_API_VERSIONS:
        supported = ", ".join(SUPPORTED_API_VERSIONS)
        message = f"unsupported apiVersion {_show(version)}; supported: {supported}"
        return [_issue(loaded, ("apiVersion",), message)]
    validator = _validator(str(version))
    issues: list[ManifestIssue] = []
    for error in validator.iter_errors(data):
        issues.extend(_describe(loaded, error))
    return sorted(set(issues))


def _issue(loaded: LoadedFile, path: PathKey, message: str) -> ManifestIssue:
    return ManifestIssue(loaded.locate(path), format_path(path), message)


def _describe(loaded: LoadedFile, error: ValidationError) -> Iterator[ManifestIssue]:
    path: PathKey = tuple(error.absolute_path)
    keyword = str(error.validator)
    if keyword == "additionalProperties":
        allowed = error.schema.get("properties", {})
        for key in sorted(set(error.instance) - set(allowed)):
            names = ", ".join(allowed)
            message = f"unknown field '{key}'; the fields here are: {names}"
            yield _issue(loaded, (*path, key), message)
        return
    if keyword == "required":
        yield from _describe_required(loaded, error, path)
        return
    if keyword == "oneOf" and path and path[-1] == "link":
        message = "a link sets either 'attach: ID' or 'unlinked: true', not both"
        if not {"attach", "unlinked"} & set(error.instance):
            message = "a link must set 'attach: ID' or 'unlinked: true'"
        yield _issue(loaded, path, message)
        return
    yield _issue(loaded, path, _message(error, path))


def _describe_required(
    loaded: LoadedFile, error: ValidationError, path: PathKey
) -> Iterator[ManifestIssue]:
    missing = [key for key in error.validator_value if key not in error.instance]
    context = ""
    if "then" in error.schema_path:
        nature = error.instance.get("nature")
        context = f" for a lot of nature {nature} (a dwelling)"
    for key in missing:
        yield _issue(loaded, path, f"missing required field '{key}'{context}")


def _message(error: ValidationError, path: PathKey) -> str:
    keyword = str(error.validator)
    value = error.instance
    field_name = str(path[-1]) if path else ""
    match keyword:
        case "type":
            return _type_message(value, error.validator_value)
        case "enum":
            choices = ", ".join(_show(choice) for choice in error.validator_value)
            return f"{_show(value)} is not one of: {choices}"
        case "const":
            return f"{_show(value)} is invalid; expected {_show(error.validator_value)}"
        case "format":
            return f"{_show(value)} is not a valid {error.validator_value} (YYYY-MM-DD)"
        case "pattern":
            return _pattern_message(field_name, value)
        case "minLength":
            return "must not be empty"
        case "maxLength":
            return f"is longer than {error.validator_value} characters"
        case "exclusiveMinimum":
            return f"{_show(value)} must be greater than {error.validator_value}"
        case "minimum":
            return f"{_show(value)} must be at least {error.validator_value}"
        case "maximum":
            return f"{_show(value)} must be at most {error.validator_value}"
        case "uniqueItems":
            return "lists the same value twice"
    return str(error.message)


def _type_message(value: Any, expected: Any) -> str:
    expected_types = [expected] if isinstance(expected, str) else list(expected)
    if "number" in expected_types and isinstance(value, str):
        if _DECIMAL_COMMA.fullmatch(value):
            fixed = value.replace(" ", "").replace(",", ".").strip()
            return f"{_show(value)} is not a number (use a dot: {fixed})"
        return f"{_show(value)} is not a number"
    if "integer" in expected_types:
        return f"{_show(value)} is not a whole number"
    if "number" in expected_types:
        return f"{_show(value)} is not a number"
    if "string" in expected_types:
        return f"{_show(value)} is not text; write it in quotes"
    if "object" in expected_types:
        return f"{_show(value)} must be a mapping of fields"
    if "array" in expected_types:
        return f"{_show(value)} must be a list"
    return f"{_show(value)} has the wrong type; expected {', '.join(expected_types)}"


def _pattern_message(field_name: str, value: Any) -> str:
    shown = _show(value)
    if field_name == "postalCode":
        return f"{shown} is not a postal code: five digits, in quotes (\"01000\")"
    if field_name == "siren":
        return f"{shown} is not a SIREN number: nine digits, in quotes"
    if field_name == "siret":
        return f"{shown} is not a SIRET number: fourteen digits, in quotes"
    return (
            f"{shown} is not a valid Up id: letters, digits and . _ : - only, "
        "starting with a letter or digit"
    )


def _show(value: Any) -> str:
    if isinstance(value, Decimal):
        return format(value, "f")
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "\\'") + "'"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)

