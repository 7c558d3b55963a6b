"""Read one manifest file into plain data with the position of every value.

The loader follows the YAML 1.2 core schema instead of PyYAML's YAML 1.1 rules, so a
plain ``NO`` stays text, ``010`` is not an octal 8 and ``2026-02-30`` is not turned
into a date (the schema checks it). It rejects what a reviewer can't see in a diff:
duplicate keys, anchors and aliases, explicit tags, several documents in one file.
Where the manifest format expects text, a plain scalar is read as the exact text
written (``postalCode: 01000`` is ``"01000"``), whatever type YAML would give it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import ManifestIssue
from reconciler.errors import SourceLocation

MAX_FILE_BYTES = 32 * 1024 * 1024
MAX_DEPTH = 16

PathKey = tuple[str | int, ...]

_NULL = {"", "~", "null", "Null", "NULL"}
_TRUE = {"true", "True", "TRUE"}
_FALSE = {"false", "False", "FALSE"}
_INT = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_STR_TAG = "tag:yaml.org,2002:str"

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LoadedFile:
    """A parsed manifest: its data and where each value was written."""

    file: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    plain_text: dict[PathKey, str] = field(default_factory=dict)

    def locate(self, path: PathKey) -> SourceLocation:
        """Return the position of ``path``, or of its nearest parent that has one."""
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return SourceLocation(self.file, *position)
        return SourceLocation(self.file, 1, 1)


class LoadError(Exception):
    """A file that can't be read as a manifest; carries the issues found."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues


def load_file(path: Path, display_name: str | None = None) -> LoadedFile:
    """Parse the manifest at ``path``; raise ``LoadError`` with positioned issues."""
    name = display_name or str(path)
    text = _read_text(path, name)
    loaded = LoadedFile(name, None)
    builder = _Builder(loaded)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = error.problem or error.context or "invalid YAML"
        raise _error(name, line, column, f"invalid YAML: {problem}") from None
    except yaml.YAMLError as error:
        raise _error(name, 1, 1, f"invalid YAML: {error}") from None
    if not builder.has_document or loaded.data is None:
        raise _error(name, 1, 1, "the file is empty; it must describe one programme")
    return loaded


def coerce_to_text(loaded: LoadedFile, paths: Iterator[PathKey]) -> None:
    """Replace the plain non-text scalars at ``paths`` by the text as written."""
    for path in paths:
        raw = loaded.plain_text.get(path)
        if raw is None:
            continue
        parent = _walk(loaded.data, path[:-1])
        if parent is not None:
            parent[path[-1]] = raw


def _walk(data: Any, path: PathKey) -> Any:
    current = data
    for key in path:
        try:
            current = current[key]
        except (KeyError, IndexError, TypeError):
            return None
    return current


def _read_text(path: Path, name: str) -> str:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            limit = MAX_FILE_BYTES // (1024 * 1024)
            message = f"the file is {size} bytes; manifests are limited to {limit} MiB"
            raise _error(name, 1, 1, f"{message}, split the programme's lots")
        raw = path.read_bytes()
    except OSError as error:
        raise _error(name, 1, 1, f"can't read the file: {error.strerror}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = raw[error.start]
        message = (
            f"the file is not valid UTF-8 (byte 0x{byte:02x} at offset "
            f"{error.start}); save it as UTF-8"
        )
        raise _error(name, line, 1, message) from None
    if "\x00" in text:
        raise _error(name, 1, 1, "the file contains NUL characters; is it text?")
    return text


def _error(file: str, line: int, column: int, message: str) -> LoadError:
    issue = ManifestIssue(SourceLocation(file, line, column), "", message)
    return LoadError([issue])


class _Builder:
    """Build plain data from a stream of YAML events, recording positions."""

    def __init__(self, loaded: LoadedFile) -> None:
        self.loaded = loaded
        self.has_document = False
        # Each frame: (container, path, pending key, key positions by key).
        self.stack: list[tuple[Any, PathKey, list[Any], dict[str, int]]] = []

    def feed(self, event: yaml.Event) -> None:
        if isinstance(event, yaml.DocumentStartEvent):
            self._start_document(event)
        elif isinstance(event, yaml.AliasEvent):
            self._fail(event, "anchors and aliases are not allowed; repeat the value")
        elif isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self._start_collection(event)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            self.stack.pop()

    def _start_document(self, event: yaml.Event) -> None:
        if self.has_document:
            self._fail(event, "the file holds several YAML documents; keep one")
        self.has_document = True

    def _check_node(self, event: yaml.NodeEvent) -> None:
        if event.anchor is not None:
            self._fail(event, "anchors and aliases are not allowed; repeat the value")
        tag = getattr(event, "tag", None)
        if tag not in (None, "!", _STR_TAG):
            self._fail(event, f"the tag {tag} is not allowed; remove it")

    def _start_collection(self, event: yaml.NodeEvent) -> None:
        self._check_node(event)
        if len(self.stack) >= MAX_DEPTH:
            self._fail(event, f"nesting deeper than {MAX_DEPTH} levels")
        is_mapping = isinstance(event, yaml.MappingStartEvent)
        container: dict[str, Any] | list[Any] = {} if is_mapping else []
        path = self._place(container, event)
        if path is not None:
            self.stack.append((container, path, [], {}))

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        self._check_node(event)
        is_plain = not event.style and event.tag in (None, "!") and event.implicit[0]
        value = _resolve_plain(event.value) if is_plain else event.value
        if self.stack and isinstance(self.stack[-1][0], dict) and not self.stack[-1][2]:
            self._key(event, value)
            return
        path = self._place(value, event)
        if path is not None and is_plain and not isinstance(value, str | None):
            self.loaded.plain_text[path] = event.value

    def _key(self, event: yaml.ScalarEvent, key: Any) -> None:
        container, path, pending, key_lines = self.stack[-1]
        if not isinstance(key, str):
            key = event.value
        line = event.start_mark.line + 1
        if key in key_lines:
            first = key_lines[key]
            self._fail(event, f"duplicate key '{key}' (first at line {first})")
        key_lines[key] = line
        pending.append(key)

    def _place(self, value: Any, event: yaml.Event) -> PathKey | None:
        position = (event.start_mark.line + 1, event.start_mark.column + 1)
        if not self.stack:
            self.loaded.data = value
            self.loaded.positions[()] = position
            return ()
        container, parent_path, pending, _ = self.stack[-1]
        if isinstance(container, dict):
            if not pending:
                self._fail(event, "a mapping key must be plain text")
            key = pending.pop()
            container[key] = value
        else:
            key = len(container)
            container.append(value)
        path = (*parent_path, key)
        self.loaded.positions[path] = position
        return path

    def _fail(self, event: yaml.Event, message: str) -> None:
        mark = event.start_mark
        raise _error(self.loaded.file, mark.line + 1, mark.column + 1, message)


def _resolve_plain(text: str) -> Any:
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _INT.fullmatch(text):
        return int(text)
    if _OCTAL.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return Decimal(text)
    return text
