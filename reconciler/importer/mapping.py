"""Mappings: how the columns of an export become manifest fields.

A mapping is a YAML file checked against ``schemas/mapping-v1.schema.json``, then
read into the rules below. ``docs/import.md`` describes the format for users.
"""

from __future__ import annotations

import datetime
import functools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from reconciler.fields import FIELDS_BY_NAME
from reconciler.fields import FieldKind
from reconciler.fields import FieldSpec
from reconciler.importer.errors import MappingError
from reconciler.importer.template import LOT_NUMBER
from reconciler.importer.template import PROGRAMME_UP_ID
from reconciler.importer.template import REFERENCE_NAMES
from reconciler.importer.template import Template
from reconciler.importer.template import parse_template
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import LoadError
from reconciler.manifest.loader import load_file
from reconciler.manifest.schema import format_path

SCHEMA_FILE = "mapping-v1.schema.json"
ISO_DATE = "%Y-%m-%d"
SAME_LOT_ERROR = "error"
SAME_LOT_LATEST = "latest"
UP_ID = "upId"
NUMBER = "number"
ANNEXES = "annexes"

# French spreadsheets group thousands with a space, a no-break space (Excel) or a
# narrow no-break space (LibreOffice).
DEFAULT_THOUSANDS = (" ", "\u00a0", "\u202f")
_PARSE_KINDS = {
    "text": FieldKind.TEXT,
    "integer": FieldKind.INTEGER,
    "decimal": FieldKind.DECIMAL,
    "date": FieldKind.DATE,
}
_UP_ID_SPEC = FieldSpec(UP_ID, FieldKind.TEXT)
_RULE_SOURCES = "column, template, constant, sameRow"


@dataclass(frozen=True)
class NumberFormat:
    """Number notation of the cells: the decimal mark and the thousands separators."""

    decimal: str = ","
    thousands: tuple[str, ...] = DEFAULT_THOUSANDS


@dataclass(frozen=True)
class FieldRule:
    """Source of one manifest field, and the steps that read its cells."""

    target: str
    spec: FieldSpec
    column: str | None = None
    template: Template | None = None
    constant: Any = None
    has_constant: bool = False
    is_same_row: bool = False
    translate: dict[str, Any] | None = None
    parses_untranslated: bool = False
    default: Any = None
    units: tuple[str, ...] = ()
    scale: Decimal | None = None
    numbers: NumberFormat = NumberFormat()
    date_format: str = ISO_DATE
    split: str = ","
    is_create_only: bool = False
    omits_invalid: bool = False

    @property
    def kind(self) -> FieldKind:
        """Return the kind of value the rule produces."""
        return self.spec.kind

    @property
    def columns(self) -> tuple[str, ...]:
        """Return the columns the rule reads."""
        if self.column is not None:
            return (self.column,)
        if self.template is not None:
            return tuple(n for n in self.template.names if n not in REFERENCE_NAMES)
        return ()

    @property
    def shown_column(self) -> str | None:
        """Return the column that error messages name for this rule's values."""
        columns = self.columns
        return columns[0] if columns else None


@dataclass(frozen=True)
class Condition:
    """A row is read only when its cell in ``column`` is (or is not) in ``values``."""

    column: str
    values: frozenset[str]
    is_negated: bool = False

    def accepts(self, text: str) -> bool:
        """Return whether a row whose cell is ``text`` is read."""
        return (text in self.values) != self.is_negated


@dataclass(frozen=True)
class Mapping:
    """A loaded mapping: source settings, row selection, programme and lot rules."""

    file: str
    encoding: str | None = None
    separator: str | None = None
    where: tuple[Condition, ...] = ()
    same_lot: str = SAME_LOT_ERROR
    order_by: tuple[FieldRule, ...] = ()
    programme: dict[str, FieldRule] = field(default_factory=dict)
    lot_groups: tuple[dict[str, FieldRule], ...] = ()

    @property
    def columns(self) -> tuple[str, ...]:
        """Return every column the mapping reads, without repeats, in mapping order."""
        names: dict[str, None] = {}
        for condition in self.where:
            names[condition.column] = None
        for rule in self._rules():
            names.update(dict.fromkeys(rule.columns))
        return tuple(names)

    def _rules(self) -> Iterator[FieldRule]:
        yield from self.order_by
        yield from self.programme.values()
        for group in self.lot_groups:
            yield from group.values()

    def lot_rule(self, target: str) -> FieldRule | None:
        """Return the first group's rule for the lot field ``target``, if any."""
        for group in self.lot_groups:
            if target in group:
                return group[target]
        return None


def load_mapping(path: Path) -> Mapping:
    """Read and check the mapping at ``path``; raise ``MappingError`` if invalid."""
    try:
        loaded = load_file(path, str(path))
    except LoadError as error:
        raise MappingError(str(issue) for issue in error.issues) from None
    messages = [_describe(loaded, error) for error in _schema_errors(loaded.data)]
    if messages:
        raise MappingError(sorted(messages))
    try:
        return _build_mapping(loaded.file, loaded.data)
    except ValueError as error:
        raise MappingError([f"{loaded.file}: {error}"]) from None


@functools.cache
def _validator() -> Draft202012Validator:
    schema_file = resources.files("reconciler") / "schemas" / SCHEMA_FILE
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema_errors(data: Any) -> list[ValidationError]:
    return list(_validator().iter_errors(data))


def _describe(loaded: LoadedFile, error: ValidationError) -> str:
    path = tuple(error.absolute_path)
    where = f"{loaded.locate(path)} {format_path(path)}".rstrip()
    message = error.message
    if error.validator == "oneOf" and "column" in str(error.validator_value):
        message = f"set exactly one of {_RULE_SOURCES}"
    elif isinstance(error.instance, dict | list) and error.validator not in (
        "additionalProperties",
        "required",
    ):
        # jsonschema's message starts with the whole value: a mapping file's
        # section can span hundreds of lines.
        message = _short_message(error)
    return f"{where}: {message}"


def _short_message(error: ValidationError) -> str:
    kind = "a mapping" if isinstance(error.instance, dict) else "a list"
    if error.validator == "type":
        return f"{kind} is not valid here; expected {error.validator_value}"
    return f"{kind} is invalid here ({error.validator})"


def _build_mapping(file: str, data: dict[str, Any]) -> Mapping:
    numbers = _numbers(data.get("numbers") or {}, NumberFormat())
    source = data.get("source") or {}
    rows = data.get("rows") or {}
    lots = data["lots"]
    shared = _rules(lots.get("fields") or {}, numbers, "lots.fields")
    groups = lots.get("groups") or [{}]
    lot_groups = tuple(
        shared | _rules(group, numbers, f"lots.groups[{index}]")
        for index, group in enumerate(groups)
    )
    mapping = Mapping(
        file=file,
        encoding=_auto(source.get("encoding")),
        separator=_auto(source.get("separator")),
        where=tuple(_condition(item) for item in rows.get("where") or []),
        same_lot=rows.get("sameLot", SAME_LOT_ERROR),
        order_by=tuple(_sort_key(item, numbers) for item in rows.get("orderBy") or []),
        programme=_rules(data.get("programme") or {}, numbers, "programme"),
        lot_groups=lot_groups,
    )
    _check_mapping(mapping)
    return mapping


def _auto(value: str | None) -> str | None:
    return None if value in (None, "auto") else value


def _numbers(data: dict[str, Any], base: NumberFormat) -> NumberFormat:
    decimal = data.get("decimal", base.decimal)
    thousands = tuple(data.get("thousands", base.thousands))
    if decimal in thousands:
        raise ValueError(
            f"'{decimal}' is both the decimal mark and a thousands separator"
        )
    return NumberFormat(decimal, thousands)


def _condition(data: dict[str, Any]) -> Condition:
    if "in" in data:
        return Condition(data["column"], frozenset(data["in"]))
    return Condition(data["column"], frozenset(data["notIn"]), is_negated=True)


def _sort_key(data: dict[str, Any], numbers: NumberFormat) -> FieldRule:
    kind = _PARSE_KINDS[data.get("parse", "text")]
    spec = FieldSpec("orderBy", kind)
    return _rule("orderBy", spec, data, numbers)


def _rules(
    data: dict[str, Any], numbers: NumberFormat, where: str
) -> dict[str, FieldRule]:
    rules = {}
    for target, rule_data in data.items():
        spec = _UP_ID_SPEC if target == UP_ID else FIELDS_BY_NAME[target]
        try:
            rules[target] = _rule(target, spec, rule_data, numbers)
        except ValueError as error:
            raise ValueError(f"{where}.{target}: {error}") from None
    return rules


def _rule(
    target: str, spec: FieldSpec, data: dict[str, Any], numbers: NumberFormat
) -> FieldRule:
    template = data.get("template")
    date_format = data.get("format", ISO_DATE)
    _check_date_format(date_format)
    return FieldRule(
        target=target,
        spec=spec,
        column=data.get("column"),
        template=parse_template(template) if template is not None else None,
        constant=data.get("constant"),
        has_constant="constant" in data,
        is_same_row=bool(data.get("sameRow")),
        translate=_translations(data.get("translate")),
        parses_untranslated=data.get("untranslated") == "parse",
        default=data.get("default"),
        units=tuple(data.get("unit") or ()),
        scale=Decimal(str(data["scale"])) if "scale" in data else None,
        numbers=_numbers(data, numbers),
        date_format=date_format,
        split=data.get("split", ","),
        is_create_only=bool(data.get("createOnly")),
        omits_invalid=data.get("onInvalid") == "omit",
    )


def _check_date_format(date_format: str) -> None:
    sample = datetime.date(2024, 12, 31)
    try:
        written = sample.strftime(date_format)
        is_readable = datetime.datetime.strptime(written, date_format).date() == sample
    except ValueError:
        is_readable = False
    if not is_readable:
        raise ValueError(f"date format '{date_format}' can't read back a full date")


def _translations(data: dict[str, Any] | None) -> dict[str, Any] | None:
    if data is None:
        return None
    table = {}
    for text, value in data.items():
        key = fold(text)
        if key in table:
            raise ValueError(f"translate lists '{text}' twice (case is ignored)")
        table[key] = value
    return table


def fold(text: str) -> str:
    """Return ``text`` as translation tables compare it: stripped, without case."""
    return text.strip().casefold()


def _check_mapping(mapping: Mapping) -> None:
    for index, group in enumerate(mapping.lot_groups):
        where = f"lots.groups[{index}]" if len(mapping.lot_groups) > 1 else "lots"
        for required in (NUMBER, UP_ID):
            if required not in group:
                raise ValueError(f"{where} has no rule for the lot field '{required}'")
        for target, rule in group.items():
            _check_rule(f"{where}.{target}", rule, is_lot=True)
    for target, rule in mapping.programme.items():
        _check_rule(f"programme.{target}", rule, is_lot=False)
    for rule in mapping.order_by:
        _check_rule("rows.orderBy", rule, is_lot=False)


def _check_rule(where: str, rule: FieldRule, *, is_lot: bool) -> None:
    is_annexes = rule.target == ANNEXES
    if rule.is_same_row and not is_annexes:
        raise ValueError(f"{where}: sameRow is for the annexes field only")
    names = rule.template.names if rule.template is not None else ()
    if LOT_NUMBER in names and (not is_lot or rule.target == NUMBER):
        raise ValueError(f"{where}: {{{LOT_NUMBER}}} is only known in other lot rules")
    if PROGRAMME_UP_ID in names and rule.target == UP_ID and not is_lot:
        raise ValueError(f"{where}: the programme Up id can't refer to itself")
