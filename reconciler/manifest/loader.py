"""Read one manifest file into plain data with the position of every value.

The loader builds the data from PyYAML's event stream instead of PyYAML's YAML 1.1
constructors. Plain scalars resolve by the YAML 1.2 core schema: ``NO`` and ``yes``
stay text, ``010`` is the integer 10 and never an octal 8, ``1:20`` is text, and
``2026-02-30`` stays text for the schema to check. Numbers with a fraction or an
exponent are exact ``Decimal`` values. In a text field (the ``text_paths`` given by
the caller) a plain scalar is the exact text written, so ``postalCode: 01000`` is
``"01000"`` and ``number: 010`` is ``"010"``.

What a reviewer can't see in a diff is reported: duplicate keys, anchors and
aliases, tags, several documents in one file. An alias is never expanded, so a small
file can't grow into a large one. The file size and the nesting depth are bounded.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from dataclasses import field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

from reconciler.errors import ManifestIssue
from reconciler.errors import SourceLocation

# 50,000 lots in the layout of the example manifests take about 15 MiB.
MAX_FILE_BYTES = 32 * 1024 * 1024
# Mappings and lists nested in one another. A v1 manifest needs 4: the programme,
# its lots, a lot, and a lot's annexes or link.
MAX_DEPTH = 16

PathKey = tuple[str | int, ...]
# A PathKey with each list index replaced by ANY_INDEX: ("lots", "*", "number").
PathPattern = tuple[str, ...]
ANY_INDEX = "*"

_NULL = frozenset({"", "~", "null", "Null", "NULL"})
_TRUE = frozenset({"true", "True", "TRUE"})
_FALSE = frozenset({"false", "False", "FALSE"})
# First characters that a YAML 1.2 core null, boolean or number can start with.
_NON_TEXT_START = frozenset("0123456789+-.~nNtTfF")
_INT = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
_CORE_TAG_PREFIX = "tag:yaml.org,2002:"
# Keys written as they are in field paths; others are quoted.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_MAX_KEY_CHARACTERS = 40

# Characters YAML forbids in a stream, plus the NEL, LS and PS line breaks: PyYAML
# counts those as line ends (YAML 1.1) where editors and YAML 1.2 don't, so every
# line number after them would be wrong.
# Invisible formatting characters (zero-width spaces and joiners, bidirectional
# overrides, a byte order mark inside the text) are refused too: a reviewer can't
# see them in a diff, and they would reach sale contracts.
_FORBIDDEN_CHARACTERS = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ufffe\uffff"
    "\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_LINE_BREAKS = frozenset("\x85\u2028\u2029")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")

# PyYAML's C parser when it is built, else the pure-Python one; both yield the same
# events and marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclass
class LoadedFile:
    """A parsed manifest: its data, where each value was written, and the problems
    found while reading it that did not stop the reading."""

    file: str
    data: Any
    positions: dict[PathKey, tuple[int, int]] = field(default_factory=dict)
    issues: list[ManifestIssue] = field(default_factory=list)
    # The text of a file read without positions; ``locate`` reads it again, with
    # positions, the first time one is needed.
    source_text: str | None = field(default=None, repr=False)
    text_paths: frozenset[PathPattern] = field(default=frozenset(), repr=False)

    def locate(self, path: PathKey) -> SourceLocation:
        """Return the position of ``path``, or of its nearest parent that has one."""
        if self.source_text is not None:
            self._read_positions(self.source_text)
        for end in range(len(path), -1, -1):
            position = self.positions.get(path[:end])
            if position is not None:
                return SourceLocation(self.file, *position)
        return SourceLocation(self.file, 1, 1)

    def _read_positions(self, text: str) -> None:
        self.source_text = None
        with_positions = LoadedFile(self.file, None)
        builder = _Builder(with_positions, self.text_paths)
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
        self.positions = with_positions.positions


class LoadError(Exception):
    """A file that is not a valid manifest; carries every issue found in it.

    ``loaded`` is the data read when the problems did not stop the reading (a
    duplicate key, an alias), so that later checks can still report on the rest.
    """

    def __init__(
        self, issues: list[ManifestIssue], loaded: LoadedFile | None = None
    ) -> None:
        super().__init__("; ".join(str(issue) for issue in issues))
        self.issues = issues
        self.loaded = loaded


def load_file(
    path: Path,
    display_name: str | None = None,
    *,
    text_paths: frozenset[PathPattern] = frozenset(),
) -> LoadedFile:
    """Parse the manifest at ``path`` into data with the position of every value.

    ``display_name`` is the file name messages show. A plain scalar at one of
    ``text_paths`` is kept as the text written. Raises ``LoadError`` with every
    problem found; after problems that don't stop the reading, such as duplicate
    keys, the error's ``loaded`` contains the data read.
    """
    name = display_name or str(path)
    text = _read_text(path, name)
    data = _build_fast(text, text_paths)
    if data is not _IRREGULAR:
        return LoadedFile(name, data, source_text=text, text_paths=text_paths)
    loaded = LoadedFile(name, None)
    builder = _Builder(loaded, text_paths)
    try:
        for event in yaml.parse(text, Loader=_Loader):
            builder.feed(event)
    except yaml.MarkedYAMLError as error:
        raise builder.fatal(*_describe_yaml_error(error, text)) from None
    except yaml.YAMLError as error:
        raise builder.fatal(1, 1, f"invalid YAML: {error}") from None
    if loaded.data is None:
        message = "the file is empty; a manifest describes one programme"
        raise builder.fatal(1, 1, message)
    if loaded.issues:
        raise LoadError(list(loaded.issues), loaded)
    return loaded


_IRREGULAR: Any = object()

_SCALAR = yaml.ScalarEvent
_MAPPING_START = yaml.MappingStartEvent
_SEQUENCE_START = yaml.SequenceStartEvent
_ENDS = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
_IGNORED = (yaml.StreamStartEvent, yaml.DocumentEndEvent)


def _build_fast(text: str, text_paths: frozenset[PathPattern]) -> Any:
    """Return the data of a regular manifest without positions, or ``_IRREGULAR``.

    This is the path of valid files, about twice as fast as ``_Builder`` because it
    records no position. Anything a manifest must not hold (a duplicate key, an
    anchor, an alias, a tag, a second document, too deep a nesting, a key that is
    not text, invalid YAML) returns ``_IRREGULAR``, and ``_Builder`` reads the file
    again to report it with its position. Both give the same data for a regular
    file; the tests compare them.
    """
    # Each frame: [container, is_mapping, pending key, path pattern].
    stack: list[list[Any]] = []
    root: Any = _IRREGULAR
    documents = 0
    event: Any
    # The parser's events are read one by one rather than through yaml.parse,
    # whose generator costs about a tenth of the reading on large files.
    loader = _Loader(text)
    next_event = loader.get_event
    try:
        while True:
            event = next_event()
            kind = event.__class__
            if kind is _SCALAR:
                if event.anchor is not None or event.tag is not None or not stack:
                    return _IRREGULAR
                frame = stack[-1]
                if frame[1] and frame[2] is None:
                    if event.value in frame[0]:
                        return _IRREGULAR
                    frame[2] = event.value
                    continue
                value = event.value
                if not event.style and (not value or value[0] in _NON_TEXT_START):
                    resolved = resolve_plain(value)
                    if resolved is None or resolved.__class__ is not str:
                        key = frame[2] if frame[1] else ANY_INDEX
                        if resolved is None or (*frame[3], key) not in text_paths:
                            value = resolved
                if frame[1]:
                    frame[0][frame[2]] = value
                    frame[2] = None
                else:
                    frame[0].append(value)
            elif kind is _MAPPING_START or kind is _SEQUENCE_START:
                if event.anchor is not None or event.tag is not None:
                    return _IRREGULAR
                if len(stack) >= MAX_DEPTH:
                    return _IRREGULAR
                is_mapping = kind is _MAPPING_START
                container: Any = {} if is_mapping else []
                if not stack:
                    root = container
                    stack.append([container, is_mapping, None, ()])
                    continue
                frame = stack[-1]
                if frame[1]:
                    if frame[2] is None:
                        return _IRREGULAR
                    pattern = (*frame[3], frame[2])
                    frame[0][frame[2]] = container
                    frame[2] = None
                else:
                    pattern = (*frame[3], ANY_INDEX)
                    frame[0].append(container)
                stack.append([container, is_mapping, None, pattern])
            elif kind in _ENDS:
                stack.pop()
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    return _IRREGULAR
            elif kind is yaml.StreamEndEvent:
                return root
            elif kind not in _IGNORED:
                return _IRREGULAR
    except yaml.YAMLError:
        return _IRREGULAR
    finally:
        loader.dispose()


def path_pattern(path: PathKey) -> PathPattern:
    """Return ``path`` with each list index replaced by ``ANY_INDEX``."""
    return tuple(ANY_INDEX if isinstance(key, int) else key for key in path)


def _read_text(path: Path, name: str) -> str:
    raw = _read_bytes(path, name)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise _decode_error(name, raw, error) from None
    forbidden = _FORBIDDEN_CHARACTERS.search(text)
    if forbidden is not None:
        raise _character_error(name, text, forbidden.start())
    return text


def _read_bytes(path: Path, name: str) -> bytes:
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)
    except OSError as error:
        reason = error.strerror or str(error)
        raise _error(name, 1, 1, f"can't read the file: {reason}") from None
    if len(raw) > MAX_FILE_BYTES:
        limit = MAX_FILE_BYTES // (1024 * 1024)
        message = (
            f"the file is larger than {limit} MiB, the limit for one manifest; "
            "split the programme's lots"
        )
        raise _error(name, 1, 1, message)
    return raw


def _decode_error(name: str, raw: bytes, error: UnicodeDecodeError) -> LoadError:
    line_start = raw.rfind(b"\n", 0, error.start) + 1
    line = raw.count(b"\n", 0, error.start) + 1
    column = len(raw[line_start : error.start].decode("utf-8", "replace")) + 1
    if raw.startswith(_UTF16_BOMS):
        return _error(name, 1, 1, "the file is UTF-16, not UTF-8; save it as UTF-8")
    message = f"the file is not valid UTF-8 (byte 0x{raw[error.start]:02x})"
    return _error(name, line, column, f"{message}; save it as UTF-8")


def _character_error(name: str, text: str, index: int) -> LoadError:
    line, column = _line_and_column(text, index)
    character = text[index]
    code = f"U+{ord(character):04X}"
    if character in _LINE_BREAKS:
        message = (
            f"the line separator {code} is not allowed; replace it with a space "
            "or a line break"
        )
    elif unicodedata.category(character) == "Cf":
        message = f"the invisible character {code} is not allowed; remove it"
    else:
        message = f"the control character {code} is not allowed; remove it"
    return _error(name, line, column, message)


def _line_and_column(text: str, index: int) -> tuple[int, int]:
    """Return the 1-based line and column of ``text[index]``, counting CRLF, CR and
    LF as line ends, as YAML does."""
    before = text[:index]
    line_breaks = before.count("\n") + before.count("\r") - before.count("\r\n")
    line_start = max(before.rfind("\n"), before.rfind("\r")) + 1
    return line_breaks + 1, index - line_start + 1


def _describe_yaml_error(
    error: yaml.MarkedYAMLError, text: str
) -> tuple[int, int, str]:
    mark = error.problem_mark or error.context_mark
    line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
    problem = error.problem or error.context or "the text is not YAML"
    if "maximum nesting depth" in problem:
        return line, column, _depth_message()
    message = f"invalid YAML: {problem}"
    context_mark = error.context_mark
    if error.context and context_mark and context_mark.line + 1 != line:
        message += f" ({error.context} at line {context_mark.line + 1})"
    return line, column, message + _hint(problem, text, mark)


def _hint(problem: str, text: str, mark: Any) -> str:
    if "mapping values are not allowed" in problem:
        return "; quote a value that contains ': '"
    if "cannot start any token" in problem and mark is not None:
        lines = text.splitlines()
        if (
            mark.line < len(lines)
            and lines[mark.line][mark.column : mark.column + 1] == "\t"
        ):
            return "; indent with spaces, YAML does not allow tabs"
    return ""


def _depth_message() -> str:
    return (
        f"mappings and lists are nested more than {MAX_DEPTH} levels deep; "
        "a manifest needs 4"
    )


def _error(file: str, line: int, column: int, message: str) -> LoadError:
    issue = ManifestIssue(SourceLocation(file, line, column), "", message)
    return LoadError([issue])


class _Frame:
    """A mapping or list being built, and for a mapping the key whose value comes
    next and the line of each key seen."""

    __slots__ = ("container", "is_mapping", "key", "key_lines", "path")

    def __init__(self, container: dict[str, Any] | list[Any], path: PathKey) -> None:
        self.container = container
        self.path = path
        self.is_mapping = isinstance(container, dict)
        self.key: str | None = None
        self.key_lines: dict[str, int] = {}


class _Builder:
    """Build plain data from a stream of YAML events, recording positions."""

    def __init__(self, loaded: LoadedFile, text_paths: frozenset[PathPattern]) -> None:
        self.loaded = loaded
        self.text_paths = text_paths
        self.documents = 0
        self.stack: list[_Frame] = []

    def feed(self, event: yaml.Event) -> None:
        """Add one event to the data."""
        if isinstance(event, yaml.ScalarEvent):
            self._scalar(event)
        elif isinstance(event, yaml.MappingStartEvent | yaml.SequenceStartEvent):
            self._start_collection(event)
        elif isinstance(event, yaml.MappingEndEvent | yaml.SequenceEndEvent):
            self.stack.pop()
        elif isinstance(event, yaml.AliasEvent):
            self._alias(event)
        elif isinstance(event, yaml.DocumentStartEvent):
            self._start_document(event)

    def fatal(self, line: int, column: int, message: str) -> LoadError:
        """Return the error that stops reading, with the issues found before it."""
        issue = ManifestIssue(
            SourceLocation(self.loaded.file, line, column), "", message
        )
        return LoadError([*self.loaded.issues, issue])

    def _start_document(self, event: yaml.Event) -> None:
        self.documents += 1
        if self.documents > 1:
            line, column = _position(event)
            message = (
                "the file holds several YAML documents; keep one programme per file"
            )
            raise self.fatal(line, column, message)

    def _scalar(self, event: yaml.ScalarEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None:
            self._check_node(event, (*frame.path, event.value))
            self._key(frame, event)
            return
        path = _child_path(frame)
        self._check_node(event, path)
        self._store(frame, path, self._scalar_value(event, path), event)

    def _scalar_value(self, event: yaml.ScalarEvent, path: PathKey) -> Any:
        if event.style:
            return event.value
        value = resolve_plain(event.value)
        if value is None or isinstance(value, str):
            return value
        if path_pattern(path) in self.text_paths:
            return event.value
        return value

    def _key(self, frame: _Frame, event: yaml.ScalarEvent) -> None:
        # A key is the text written, whatever YAML would resolve it to.
        key = event.value
        line = _position(event)[0]
        first_line = frame.key_lines.get(key)
        if first_line is None:
            frame.key_lines[key] = line
        else:
            message = f"duplicate key '{key}' (first at line {first_line})"
            self._report(event, (*frame.path, key), message)
        frame.key = key

    def _start_collection(self, event: yaml.NodeEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None:
            message = "a mapping key must be text, not a mapping or a list"
            raise self.fatal(*_position(event), message)
        if len(self.stack) >= MAX_DEPTH:
            raise self.fatal(*_position(event), _depth_message())
        is_mapping = isinstance(event, yaml.MappingStartEvent)
        container: dict[str, Any] | list[Any] = {} if is_mapping else []
        path = _child_path(frame)
        self._check_node(event, path)
        self._store(frame, path, container, event)
        self.stack.append(_Frame(container, path))

    def _alias(self, event: yaml.AliasEvent) -> None:
        frame = self.stack[-1] if self.stack else None
        if frame is not None and frame.is_mapping and frame.key is None:
            message = "a mapping key must be text, not an alias"
            raise self.fatal(*_position(event), message)
        path = _child_path(frame)
        message = f"aliases (*{event.anchor}) are not allowed; write the value in full"
        self._report(event, path, message)
        # The alias is never expanded: it reads as an empty value.
        self._store(frame, path, None, event)

    def _check_node(self, event: yaml.NodeEvent, path: PathKey) -> None:
        if event.anchor is not None:
            message = f"anchors (&{event.anchor}) are not allowed; remove it"
            self._report(event, path, message)
        tag = getattr(event, "tag", None)
        if tag is not None:
            shown = tag.replace(_CORE_TAG_PREFIX, "!!")
            message = (
                f"tags ({shown}) are not allowed; remove it, and quote the value "
                "if it is text"
            )
            self._report(event, path, message)

    def _store(
        self, frame: _Frame | None, path: PathKey, value: Any, event: yaml.Event
    ) -> None:
        if frame is None:
            self.loaded.data = value
        elif frame.is_mapping:
            frame.container[str(frame.key)] = value  # type: ignore[call-overload]
            frame.key = None
        else:
            frame.container.append(value)  # type: ignore[union-attr]
        self.loaded.positions[path] = _position(event)

    def _report(self, event: yaml.Event, path: PathKey, message: str) -> None:
        location = SourceLocation(self.loaded.file, *_position(event))
        self.loaded.issues.append(ManifestIssue(location, format_path(path), message))


def _child_path(frame: _Frame | None) -> PathKey:
    if frame is None:
        return ()
    if frame.is_mapping:
        return (*frame.path, str(frame.key))
    return (*frame.path, len(frame.container))


def _position(event: yaml.Event) -> tuple[int, int]:
    mark = event.start_mark
    if mark is None:
        return 1, 1
    return mark.line + 1, mark.column + 1


def format_path(path: PathKey) -> str:
    """Return a field path as messages write it: ``lots[3].livingArea``.

    A key that is not a plain name is quoted with escapes, as in ``address['a b']``,
    so that a message stays on one line.
    """
    text = ""
    for key in path:
        if isinstance(key, int):
            text += f"[{key}]"
        elif not _NAME.fullmatch(key):
            text += f"[{_quote_key(key)}]"
        else:
            text += f".{key}" if text else key
    return text


def _quote_key(key: str) -> str:
    if len(key) > _MAX_KEY_CHARACTERS:
        key = key[: _MAX_KEY_CHARACTERS - 1] + "…"
    escaped = "".join(_escape_character(character) for character in key)
    return f"'{escaped}'"


def _escape_character(character: str) -> str:
    if character == "'":
        return "\\'"
    if character.isprintable():
        return character
    return character.encode("unicode_escape").decode("ascii")


def resolve_plain(text: str) -> Any:
    """Return the value of a plain scalar under the YAML 1.2 core schema.

    Returns None, a bool, an int, a Decimal for numbers with a fraction or an
    exponent, or the text itself. ``.inf`` and ``.nan`` stay text, because no field
    accepts them and a message then shows them as written.
    """
    if text and text[0] not in _NON_TEXT_START:
        return text
    if text in _NULL:
        return None
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    if _FLOAT.fullmatch(text):
        # Every YAML 1.2 core integer also matches the float pattern: one match
        # decides both, which matters on files with 50,000 lots.
        if _INT.fullmatch(text):
            return _integer(text, 10)
        return Decimal(text)
    if _OCTAL.fullmatch(text):
        return _integer(text[2:], 8)
    if _HEX.fullmatch(text):
        return _integer(text[2:], 16)
    return text


def _integer(digits: str, base: int) -> int | Decimal | str:
    try:
        return int(digits, base)
    except ValueError:
        # More digits than Python converts (4,300 by default): no field takes such
        # a number, and a Decimal keeps it exact for the message.
        return Decimal(digits) if base == 10 else digits
