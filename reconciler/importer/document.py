"""Manifest documents as ruamel.yaml round-trip trees: read, edit, write.

Existing manifests are edited in place, so comments, key order and the quoting of
values the import leaves alone stay as they were. Values the import writes follow
one set of rules, so the same export gives the same bytes:

- text that YAML 1.1 or 1.2 readers could take for another type (``NO``, ``010``,
  ``01000``, ``1:20``, ``2024-01-01``) is double-quoted, and so is every id, code
  and number-like text field (Up ids, lot numbers, postal codes, SIREN…);
- decimals are written with their field's places (``45.50``);
- keys follow the order of the manifest schema.
"""

from __future__ import annotations

import datetime
import io
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.comments import CommentedSeq
from ruamel.yaml.representer import RoundTripRepresenter
from ruamel.yaml.scalarstring import DoubleQuotedScalarString

from reconciler.fields import FIELDS_BY_NAME
from reconciler.fields import FieldKind
from reconciler.manifest.schema import load_schema

API_VERSION = "v1"
KIND = "Programme"
LOTS = "lots"

# Text fields written in double quotes whatever their value, as the example
# manifests do: they hold ids and codes, where a plain 010 or NO would be misread.
ALWAYS_QUOTED = frozenset(
    {
        "upId",
        "number",
        "building",
        "orientation",
        "annexes",
        "address.streetNumber",
        "address.postalCode",
        "promoter.siren",
        "promoter.siret",
        "buildingPermit.number",
    }
)
# A plain scalar that starts with a letter and contains none of these characters reads
# back as the same text in YAML 1.1 and 1.2, unless it is one of the keywords below.
_PLAIN_TEXT = re.compile(r"[^\W\d_][^#:\"\\\[\]{}\n\r\t]*")
_KEYWORDS = frozenset(
    {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}
)


def _represent_decimal(representer: RoundTripRepresenter, value: Decimal) -> Any:
    text = format(value, "f")
    tag = "tag:yaml.org,2002:float" if "." in text else "tag:yaml.org,2002:int"
    return representer.represent_scalar(tag, text)


def make_yaml() -> YAML:
    """Return a round-trip YAML reader and writer in the manifests' layout."""
    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    # Long names and reasons stay on one line instead of being folded.
    yaml.width = 4096
    yaml.representer.add_representer(Decimal, _represent_decimal)
    return yaml


def parse_document(text: str) -> CommentedMap:
    """Return the round-trip tree of a manifest's text."""
    document = make_yaml().load(text)
    if not isinstance(document, CommentedMap):
        raise ValueError("a manifest must be a mapping of fields")
    return document


def dump_document(document: CommentedMap) -> str:
    """Return the YAML text of ``document``."""
    stream = io.StringIO()
    make_yaml().dump(document, stream)
    return stream.getvalue()


def _key_order(properties: dict[str, Any], prefix: str = "") -> Iterator[str]:
    for key, schema in properties.items():
        yield prefix + key
        nested = schema.get("properties") if isinstance(schema, dict) else None
        if nested:
            yield from _key_order(nested, f"{prefix}{key}.")


def _schema_order() -> tuple[dict[str, int], dict[str, int]]:
    schema = load_schema(API_VERSION)
    definitions = schema["$defs"]
    programme_properties = dict(schema["properties"])
    for name in ("address", "promoter", "buildingPermit"):
        programme_properties[name] = definitions[name]
    programme = {
        key: index for index, key in enumerate(_key_order(programme_properties))
    }
    lot_keys = definitions["lot"]["properties"]
    lot = {key: index for index, key in enumerate(lot_keys)}
    return programme, lot


PROGRAMME_ORDER, LOT_ORDER = _schema_order()


def is_plain_text(text: str) -> bool:
    """Return whether ``text`` can be written without quotes and read back as text."""
    return (
        _PLAIN_TEXT.fullmatch(text) is not None
        and text == text.strip()
        and text.casefold() not in _KEYWORDS
    )


def to_yaml(target: str, value: Any) -> Any:
    """Return ``value`` of the field ``target`` as the node the manifest holds."""
    if isinstance(value, tuple):
        return CommentedSeq(DoubleQuotedScalarString(item) for item in value)
    if isinstance(value, str):
        if target in ALWAYS_QUOTED or not is_plain_text(value):
            return DoubleQuotedScalarString(value)
        return value
    if isinstance(value, Decimal):
        return _decimal_at_places(target, value)
    if isinstance(value, int | datetime.date):
        return value
    raise TypeError(f"can't write {target}={value!r} in a manifest")


def _decimal_at_places(target: str, value: Decimal) -> Decimal:
    spec = FIELDS_BY_NAME.get(target)
    places = spec.places if spec is not None and spec.kind is FieldKind.DECIMAL else 0
    if places:
        quantum = Decimal(1).scaleb(-places)
        if value == value.quantize(quantum):
            return value.quantize(quantum)
        return value
    whole = value.normalize()
    return Decimal(format(whole, "f"))


def set_field(
    mapping: CommentedMap, dotted: str, node: Any, order: dict[str, int]
) -> None:
    """Set the field at the dotted path, creating parents, keys in schema order."""
    parts = dotted.split(".")
    current = mapping
    for depth, part in enumerate(parts):
        path = ".".join(parts[: depth + 1])
        is_last = depth == len(parts) - 1
        if part not in current:
            _insert_key(current, part, node if is_last else CommentedMap(), path, order)
        elif is_last:
            current[part] = node
        if not is_last:
            current = current[part]


def _insert_key(
    mapping: CommentedMap, key: str, node: Any, path: str, order: dict[str, int]
) -> None:
    rank = order.get(path, len(order))
    prefix = path.rsplit(".", 1)[0] + "." if "." in path else ""
    position = 0
    for index, existing in enumerate(mapping):
        if order.get(prefix + str(existing), len(order)) < rank:
            position = index + 1
    mapping.insert(position, key, node)


def remove_field(mapping: CommentedMap, dotted: str) -> None:
    """Remove the field at the dotted path, and parents it leaves empty."""
    parts = dotted.split(".")
    chain = [mapping]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, CommentedMap):
            return
        chain.append(child)
    chain[-1].pop(parts[-1], None)
    for parent, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
        if parent[part]:
            break
        del parent[part]


def new_programme_document(up_id: str, header: str) -> CommentedMap:
    """Return the skeleton of a new manifest: version, kind, Up id and an empty lot
    list, with ``header`` as its opening comment."""
    document = CommentedMap()
    document["apiVersion"] = API_VERSION
    document["kind"] = KIND
    document["upId"] = to_yaml("upId", up_id)
    document[LOTS] = CommentedSeq()
    document.yaml_set_start_comment(header)
    return document
