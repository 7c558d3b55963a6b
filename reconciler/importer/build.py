"""Build the manifest documents an import writes, and what changed in each.

An existing manifest is edited: the fields the export carries are set or removed
where their value changed, new lots are inserted at their place in the (building,
floor, number) order, and everything else stays as written. A programme the
manifests lack gets a new document, its lots in that order.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.comments import CommentedSeq

from reconciler.fields import FIELDS_BY_NAME
from reconciler.importer.document import LOT_ORDER
from reconciler.importer.document import LOTS
from reconciler.importer.document import PROGRAMME_ORDER
from reconciler.importer.document import dump_document
from reconciler.importer.document import new_programme_document
from reconciler.importer.document import remove_field
from reconciler.importer.document import set_field
from reconciler.importer.document import to_yaml
from reconciler.importer.errors import RowIssue
from reconciler.importer.existing import ExistingManifest
from reconciler.importer.mapping import ANNEXES
from reconciler.importer.mapping import UP_ID
from reconciler.importer.merge import ImportedLot
from reconciler.importer.merge import ImportedProgramme
from reconciler.importer.values import Evaluated
from reconciler.manifest.model import LotManifest
from reconciler.normalize import Value

MANIFEST_SUFFIX = ".yaml"


class LotState(enum.Enum):
    """Outcome of the import for one lot."""

    CREATED = "created"
    CHANGED = "changed"
    UNCHANGED = "unchanged"
    ABSENT = "absent from the export"
    REMOVED = "removed"
    LEFT_OUT = "left out"


@dataclass(frozen=True)
class LotOutcome:
    """A lot's state after the import, and the fields that changed."""

    up_id: str
    number: str
    state: LotState
    fields: tuple[str, ...] = ()


@dataclass
class ProgrammeOutcome:
    """A programme's manifest after the import."""

    up_id: str
    relative_path: Path
    is_new: bool
    fields: tuple[str, ...] = ()
    lots: list[LotOutcome] = field(default_factory=list)

    @property
    def is_changed(self) -> bool:
        """Return whether the manifest file changes."""
        edited = {LotState.CREATED, LotState.CHANGED, LotState.REMOVED}
        return (
            self.is_new
            or bool(self.fields)
            or any(lot.state in edited for lot in self.lots)
        )


@dataclass
class Rejections:
    """Lots, programmes and values left out of the import, each with its reason.

    ``lots`` are keyed by (programme Up id, lot number); ``omitted`` values by
    (programme Up id, lot number or None for the programme, field).
    """

    lots: dict[tuple[str, str], RowIssue] = field(default_factory=dict)
    programmes: dict[str, RowIssue] = field(default_factory=dict)
    omitted: dict[tuple[str, str | None, str], RowIssue] = field(default_factory=dict)

    @property
    def count(self) -> int:
        """Return how many records and values are left out."""
        return len(self.lots) + len(self.programmes) + len(self.omitted)


@dataclass
class Output:
    """A manifest the import writes, with the programme it describes."""

    programme: ImportedProgramme
    relative_path: Path
    document: CommentedMap
    text: str


@dataclass
class BuildResult:
    """The documents to write and the outcome of every programme."""

    outputs: list[Output] = field(default_factory=list)
    outcomes: list[ProgrammeOutcome] = field(default_factory=list)
    # Annexes that name no lot of their programme; the lots listing them are left out.
    unresolved: dict[tuple[str, str], RowIssue] = field(default_factory=dict)


@dataclass(frozen=True)
class BuildOptions:
    """Settings of one build: the opening comment of new files, and --prune."""

    header: str
    prune: bool = False


def build_documents(
    programmes: dict[str, ImportedProgramme],
    existing: dict[str, ExistingManifest],
    rejections: Rejections,
    options: BuildOptions,
) -> BuildResult:
    """Return the documents and outcomes of the programmes not left out."""
    result = BuildResult()
    used_paths = {manifest.relative_path for manifest in existing.values()}
    for up_id in sorted(programmes):
        if up_id in rejections.programmes:
            continue
        builder = _ProgrammeBuilder(
            programmes[up_id], existing.get(up_id), rejections, options, result
        )
        outcome, output = builder.build(used_paths)
        used_paths.add(outcome.relative_path)
        result.outcomes.append(outcome)
        if output is not None:
            result.outputs.append(output)
    return result


class _ProgrammeBuilder:
    """Builds one programme's document."""

    def __init__(
        self,
        programme: ImportedProgramme,
        existing: ExistingManifest | None,
        rejections: Rejections,
        options: BuildOptions,
        result: BuildResult,
    ) -> None:
        self.programme = programme
        self.existing = existing
        self.rejections = rejections
        self.options = options
        self.result = result
        if existing is not None:
            self.document = existing.document()
        else:
            self.document = new_programme_document(programme.up_id, options.header)
        self.lot_nodes = self._lot_nodes()
        self.lot_keys = [_existing_key(lot) for lot in self._existing_lots()]

    def _existing_lots(self) -> tuple[LotManifest, ...]:
        return self.existing.programme.lots if self.existing is not None else ()

    def _lot_nodes(self) -> dict[str, CommentedMap]:
        nodes: CommentedSeq = self.document.setdefault(LOTS, CommentedSeq())
        lots = self._existing_lots()
        return {lot.up_id: node for lot, node in zip(lots, nodes, strict=True)}

    def build(self, used_paths: set[Path]) -> tuple[ProgrammeOutcome, Output | None]:
        fields = self._apply_programme_values()
        lots = [self._apply_lot(lot) for lot in self._imported_lots()]
        lots.extend(self._absent_lots())
        relative_path = self._relative_path(used_paths)
        outcome = ProgrammeOutcome(
            self.programme.up_id, relative_path, self.existing is None, fields, lots
        )
        if not outcome.is_changed:
            return outcome, None
        text = dump_document(self.document)
        return outcome, Output(self.programme, relative_path, self.document, text)

    def _imported_lots(self) -> list[ImportedLot]:
        lots = self.programme.lots.values()
        return sorted(lots, key=lambda lot: _natural_key(lot.number))

    def _apply_programme_values(self) -> tuple[str, ...]:
        changed = []
        for target, evaluated in self.programme.values.items():
            value = self._value(None, target, evaluated)
            if self.existing is not None:
                if evaluated.rule.is_create_only:
                    continue
                old = self.existing.programme.fields.get(target)
                if _same(target, value, old):
                    continue
            elif value is None:
                continue
            _write(self.document, target, value, PROGRAMME_ORDER)
            changed.append(target)
        return tuple(changed) if self.existing is not None else ()

    def _value(self, number: str | None, target: str, evaluated: Evaluated) -> Any:
        key = (self.programme.up_id, number, target)
        return None if key in self.rejections.omitted else evaluated.value

    def _apply_lot(self, lot: ImportedLot) -> LotOutcome:
        key = (self.programme.up_id, lot.number)
        if key in self.rejections.lots:
            return LotOutcome(lot.up_id, lot.number, LotState.LEFT_OUT)
        values = self._lot_values(lot)
        if values is None:
            return LotOutcome(lot.up_id, lot.number, LotState.LEFT_OUT)
        node = self.lot_nodes.get(lot.up_id)
        if node is None:
            self._insert_lot(lot, values)
            return LotOutcome(lot.up_id, lot.number, LotState.CREATED)
        fields = self._update_lot(lot, node, values)
        state = LotState.CHANGED if fields else LotState.UNCHANGED
        return LotOutcome(lot.up_id, lot.number, state, fields)

    def _lot_values(self, lot: ImportedLot) -> dict[str, Any] | None:
        values = {}
        for target, evaluated in lot.values.items():
            value = self._value(lot.number, target, evaluated)
            if target == ANNEXES and value is not None:
                value = self._annex_ids(lot, evaluated)
                if value is None:
                    return None
            values[target] = value
        return values

    def _annex_ids(
        self, lot: ImportedLot, evaluated: Evaluated
    ) -> tuple[str, ...] | None:
        ids = []
        for number in sorted(evaluated.value, key=_natural_key):
            up_id = self._up_id_of(number)
            if up_id is None:
                message = (
                    f"annex lot '{number}' is not a lot of programme "
                    f"{self.programme.up_id}"
                )
                issue = RowIssue(evaluated.source, message)
                self.result.unresolved[(self.programme.up_id, lot.number)] = issue
                return None
            ids.append(up_id)
        return tuple(ids)

    def _up_id_of(self, number: str) -> str | None:
        lot = self.programme.lots.get(number)
        if (
            lot is not None
            and (self.programme.up_id, number) not in self.rejections.lots
        ):
            return lot.up_id
        if self.existing is not None:
            existing = self.existing.lot_by_number(number)
            return existing.up_id if existing is not None else None
        return None

    def _insert_lot(self, lot: ImportedLot, values: dict[str, Any]) -> None:
        node = CommentedMap()
        for target in sorted(
            values, key=lambda name: LOT_ORDER.get(name, len(LOT_ORDER))
        ):
            if values[target] is not None:
                node[target] = to_yaml(target, values[target])
        key = _lot_key(values.get("building"), values.get("floor"), lot.number)
        position = next(
            (index for index, other in enumerate(self.lot_keys) if other > key),
            len(self.lot_keys),
        )
        self.document[LOTS].insert(position, node)
        self.lot_keys.insert(position, key)
        self.lot_nodes[lot.up_id] = node

    def _update_lot(
        self, lot: ImportedLot, node: CommentedMap, values: dict[str, Any]
    ) -> tuple[str, ...]:
        assert self.existing is not None
        manifest_lot = self.existing.lot(lot.up_id)
        assert manifest_lot is not None
        changed = []
        for target, value in values.items():
            if target == UP_ID or lot.values[target].rule.is_create_only:
                continue
            if _same(target, value, manifest_lot.fields.get(target)):
                continue
            _write(node, target, value, LOT_ORDER)
            changed.append(target)
        return tuple(changed)

    def _absent_lots(self) -> Iterable[LotOutcome]:
        imported = {lot.up_id for lot in self.programme.lots.values()}
        left_out = {
            number
            for (up_id, number) in self.rejections.lots
            if up_id == self.programme.up_id
        }
        for lot in self._existing_lots():
            if lot.up_id in imported or lot.number in left_out:
                continue
            if not self.options.prune:
                yield LotOutcome(lot.up_id, lot.number, LotState.ABSENT)
                continue
            self._remove_lot(lot.up_id)
            yield LotOutcome(lot.up_id, lot.number, LotState.REMOVED)

    def _remove_lot(self, up_id: str) -> None:
        node = self.lot_nodes.pop(up_id)
        nodes: CommentedSeq = self.document[LOTS]
        position = next(index for index, other in enumerate(nodes) if other is node)
        del nodes[position]
        del self.lot_keys[position]

    def _relative_path(self, used_paths: set[Path]) -> Path:
        if self.existing is not None:
            return self.existing.relative_path
        name = self.programme.values.get("name")
        stem = _slugify(str(name.value)) if name is not None and name.value else ""
        id_stem = _slugify(self.programme.up_id)
        candidates = [stem, f"{stem}-{id_stem}"] if stem else [id_stem]
        for candidate in candidates:
            path = Path(candidate + MANIFEST_SUFFIX)
            if path not in used_paths:
                return path
        counter = 2
        while Path(f"{candidates[-1]}-{counter}{MANIFEST_SUFFIX}") in used_paths:
            counter += 1
        return Path(f"{candidates[-1]}-{counter}{MANIFEST_SUFFIX}")


def _write(node: CommentedMap, target: str, value: Any, order: dict[str, int]) -> None:
    if value is None:
        remove_field(node, target)
    else:
        set_field(node, target, to_yaml(target, value), order)


def _same(target: str, value: Any, old: Value) -> bool:
    """Return whether the export's value equals the manifest's normalized value.

    Decimals compare exactly (45.5 equals 45.50), not rounded to the field's places
    as plans compare them, so that a third decimal reaches validation.
    """
    spec = FIELDS_BY_NAME.get(target)
    if spec is None or isinstance(value, Decimal):
        return bool(value == old)
    return spec.normalize(value) == old


LotKey = tuple[tuple[Any, ...], tuple[Any, ...], tuple[Any, ...]]


def _lot_key(building: object, floor: object, number: str) -> LotKey:
    """Sort key of a lot: building, then floor, then number; a missing building or
    floor sorts first."""
    building_key = (0,) if building is None else (1, _natural_key(str(building)))
    floor_key = (0,) if floor is None else (1, int(str(floor)))
    return (building_key, floor_key, (_natural_key(number),))


def _existing_key(lot: LotManifest) -> LotKey:
    return _lot_key(lot.fields.get("building"), lot.fields.get("floor"), lot.number)


def _natural_key(text: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that puts lot 9 before lot 10 and keeps letters in order."""
    parts = re.findall(r"\d+|\D+", text)
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in parts)


def _slugify(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
