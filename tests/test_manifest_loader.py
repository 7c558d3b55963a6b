"""Reading manifest files: YAML 1.2 core values, text fields as written, positions,
and the limits that keep a small file small."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifests
from reconciler.manifest import loader
from reconciler.manifest.loader import ANY_INDEX
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import LoadError
from reconciler.manifest.loader import PathKey
from reconciler.manifest.loader import PathPattern
from reconciler.manifest.loader import load_file
from reconciler.manifest.loader import resolve_plain
from reconciler.manifest.schema import text_paths

CASES = Path(__file__).resolve().parent / "cases"
TEXT_PATHS = text_paths("v1")

# Plain scalars that YAML 1.1 (PyYAML's default) would not read as the text written:
# booleans, octal and sexagesimal numbers, dates, floats, nulls spelt otherwise.
YAML11_SURPRISES = [
    "010",
    "01000",
    "0o17",
    "0x1F",
    "NO",
    "yes",
    "On",
    "y",
    "True",
    "1:20",
    "190:20:30",
    "2026-01-05",
    "1e3",
    ".5",
    "1_000",
    "+12",
    ".inf",
]


def _write(tmp_path: Path, text: str | bytes, name: str = "m.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


def _load(tmp_path: Path, text: str | bytes) -> LoadedFile:
    return load_file(_write(tmp_path, text), "m.yaml", text_paths=TEXT_PATHS)


def _messages(error: LoadError) -> list[str]:
    return [str(issue) for issue in error.issues]


# Values


@pytest.mark.parametrize(
    ("plain", "expected"),
    [
        ("010", 10),
        ("0o17", 15),
        ("0x1F", 31),
        ("-3", -3),
        ("45.50", Decimal("45.50")),
        ("1e3", Decimal("1e3")),
        ("-.5", Decimal("-.5")),
        ("true", True),
        ("FALSE", False),
        ("~", None),
        ("", None),
        ("Null", None),
        ("NO", "NO"),
        ("yes", "yes"),
        ("1:20", "1:20"),
        ("2026-02-30", "2026-02-30"),
        (".inf", ".inf"),
        ("1_000", "1_000"),
    ],
)
def test_resolve_plain_core(plain: str, expected: Any) -> None:
    value = resolve_plain(plain)

    assert value == expected
    assert type(value) is type(expected)


def test_resolve_plain_huge_integer() -> None:
    digits = "9" * 5000

    assert resolve_plain(digits) == Decimal(digits)


def test_text_fields_as_written() -> None:
    loaded = load_file(
        CASES / "valid" / "yaml11-plain-text.yaml", text_paths=TEXT_PATHS
    )
    data = loaded.data
    lots = data["lots"]

    assert data["upId"] == "2024"
    assert data["address"]["streetNumber"] == "012"
    assert data["address"]["postalCode"] == "01000"
    assert data["promoter"]["name"] == "Yes"
    assert data["buildingPermit"]["number"] == "1:20"
    assert lots[0]["upId"] == "0x1F"
    assert lots[0]["number"] == "010"
    assert lots[1]["building"] == "1.10"
    assert lots[1]["annexes"] == ["0x1F"]
    assert lots[2]["link"]["reason"] == "no"
    assert lots[3]["orientation"] == "NO"


def test_number_fields_stay_numbers() -> None:
    loaded = load_file(
        CASES / "valid" / "yaml11-plain-text.yaml", text_paths=TEXT_PATHS
    )
    lot = loaded.data["lots"][1]

    assert lot["floor"] == 0
    assert lot["livingArea"] == Decimal("45.50")
    assert lot["vatRate"] == 20


def _document_at(pattern: PathPattern, plain: str) -> str:
    """Return YAML with ``plain`` at ``pattern``, one list item per ANY_INDEX."""
    lines: list[str] = []
    indent = ""
    for position, key in enumerate(pattern):
        is_last = position == len(pattern) - 1
        value = f" {plain}" if is_last else ""
        if key == ANY_INDEX:
            lines.append(f"{indent}-{value}")
        else:
            lines.append(f"{indent}{key}:{value}")
        indent += "  "
    return "\n".join(lines) + "\n"


def _value_at(data: Any, pattern: PathPattern) -> Any:
    for key in pattern:
        data = data[0] if key == ANY_INDEX else data[key]
    return data


@pytest.mark.parametrize("pattern", sorted(TEXT_PATHS), ids="/".join)
@pytest.mark.parametrize("plain", YAML11_SURPRISES)
def test_every_text_field_as_written(
    tmp_path: Path, pattern: PathPattern, plain: str
) -> None:
    loaded = _load(tmp_path, _document_at(pattern, plain))

    assert _value_at(loaded.data, pattern) == plain


def test_text_paths_cover_nested_fields() -> None:
    expected = {
        ("promoter", "siren"),
        ("buildingPermit", "number"),
        ("buildingPermit", "date"),
        ("link", "reason"),
        ("lots", ANY_INDEX, "number"),
        ("lots", ANY_INDEX, "orientation"),
        ("lots", ANY_INDEX, "annexes", ANY_INDEX),
        ("lots", ANY_INDEX, "link", "reason"),
    }

    assert expected <= TEXT_PATHS


@pytest.mark.parametrize(
    "number_field",
    [("lots", ANY_INDEX, "price"), ("lots", ANY_INDEX, "floor"), ("link", "attach")],
)
def test_text_paths_exclude_numbers(number_field: PathPattern) -> None:
    assert number_field not in TEXT_PATHS


def test_null_in_text_field_stays_null(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "lots:\n  - building: ~\n    number:\n")

    assert loaded.data["lots"][0] == {"building": None, "number": None}


# Positions


def test_positions_of_lot_field(tmp_path: Path) -> None:
    text = "lots:\n  - upId: A\n  - upId: B\n    livingArea: '45,50'\n"
    loaded = _load(tmp_path, text)
    path: PathKey = ("lots", 1, "livingArea")

    assert str(loaded.locate(path)) == "m.yaml:4:17"


def test_positions_crlf_bom(tmp_path: Path) -> None:
    text = "\ufeffname: a\r\naddress:\r\n  city: Hendaye\r\n".encode()
    loaded = _load(tmp_path, text)

    assert loaded.data["address"]["city"] == "Hendaye"
    assert str(loaded.locate(("address", "city"))) == "m.yaml:3:9"


def test_positions_missing_field_parent(tmp_path: Path) -> None:
    loaded = _load(tmp_path, "name: a\naddress:\n  city: Hendaye\n")

    assert str(loaded.locate(("address", "street"))) == "m.yaml:3:3"


# Problems that don't stop reading


def _read_with_issues(tmp_path: Path, text: str) -> LoadError:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, text)
    return raised.value


def test_duplicate_key_both_lines(tmp_path: Path) -> None:
    text = "lots:\n  - price: 1\n    rooms: 2\n    price: 3\n"

    error = _read_with_issues(tmp_path, text)

    assert _messages(error) == [
        "m.yaml:4:5 lots[0].price: duplicate key 'price' (first at line 2)"
    ]


def test_duplicate_key_data_kept(tmp_path: Path) -> None:
    """Reading goes on after a duplicate key, so later checks see the rest."""
    error = _read_with_issues(tmp_path, "price: 1\nrooms: 2\nprice: 3\n")

    assert error.loaded is not None
    assert error.loaded.data == {"price": 3, "rooms": 2}


def test_duplicate_key_quoted_form(tmp_path: Path) -> None:
    error = _read_with_issues(tmp_path, "price: 1\n'price': 2\n")

    assert len(error.issues) == 1


def test_duplicate_key_third_time(tmp_path: Path) -> None:
    error = _read_with_issues(tmp_path, "a: 1\na: 2\na: 3\n")

    assert [issue.message for issue in error.issues] == [
        "duplicate key 'a' (first at line 1)",
        "duplicate key 'a' (first at line 1)",
    ]


def test_alias_not_expanded(tmp_path: Path) -> None:
    """A billion-laughs file reads as nulls instead of a billion values."""
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 10)]

    error = _read_with_issues(tmp_path, "\n".join(lines) + "\n")

    assert error.loaded is not None
    assert error.loaded.data["a9"] == [None] * 10
    assert len(error.issues) == 10 + 9 * 10


def test_all_issues_before_fatal(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, "a: 1\na: 2\nb: [\n")

    assert _messages(raised.value) == [
        "m.yaml:2:1 a: duplicate key 'a' (first at line 1)",
        "m.yaml:4:1: invalid YAML: did not find expected node content",
    ]


# Problems that stop reading


@pytest.mark.parametrize("depth", [17, 1000, 100_000])
def test_deep_flow_nesting(tmp_path: Path, depth: int) -> None:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")

    assert "nested more than 16 levels deep" in _messages(raised.value)[0]


def test_deep_unclosed_mappings(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, "{a: " * 100_000)

    assert "nested more than 16 levels deep" in _messages(raised.value)[0]


def test_deep_block_nesting(tmp_path: Path) -> None:
    text = "".join(f"{'  ' * level}k{level}:\n" for level in range(40))

    with pytest.raises(LoadError) as raised:
        _load(tmp_path, text)

    assert _messages(raised.value) == [
        "m.yaml:17:33: mappings and lists are nested more than 16 levels deep; "
        "a manifest needs 4"
    ]


def test_depth_limit_allowed(tmp_path: Path) -> None:
    depth = loader.MAX_DEPTH - 1
    loaded = _load(tmp_path, "a: " + "[" * depth + "]" * depth + "\n")
    innermost = loaded.data["a"]
    for _ in range(depth - 1):
        innermost = innermost[0]

    assert innermost == []


def test_file_too_large(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 2 * 1024 * 1024)
    path = _write(tmp_path, "# " + "x" * (2 * 1024 * 1024) + "\n")

    with pytest.raises(LoadError) as raised:
        load_file(path, "m.yaml")

    assert _messages(raised.value) == [
        "m.yaml:1:1: the file is larger than 2 MiB, the limit for one manifest; "
        "split the programme's lots"
    ]


def test_file_at_size_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "name: " + "x" * 100 + "\n"
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", len(text))

    loaded = _load(tmp_path, text)

    assert loaded.data == {"name": "x" * 100}


def test_folder_as_file(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as raised:
        load_file(tmp_path, "m.yaml")

    assert _messages(raised.value) == [
        "m.yaml:1:1: can't read the file: Is a directory"
    ]


FATAL_CASES = [
    ("a: 1\n\x00", "2:1: the control character U+0000 is not allowed; remove it"),
    (
        "a: 1\r\nb: \x7f\r\n",
        "2:4: the control character U+007F is not allowed; remove it",
    ),
    (
        "a: x\x85y\n",
        "1:5: the line separator U+0085 is not allowed; replace it with a space or a "
        "line break",
    ),
    ("? [a]\n: 1\n", "1:3: a mapping key must be text, not a mapping or a list"),
    ("*a : 1\n", "1:1: a mapping key must be text, not an alias"),
    (
        "---\na: 1\n---\nb: 2\n",
        "3:1: the file holds several YAML documents; keep one programme per file",
    ),
    ("---\n", "1:1: the file is empty; a manifest describes one programme"),
    ("~\n", "1:1: the file is empty; a manifest describes one programme"),
]


@pytest.mark.parametrize(("text", "message"), FATAL_CASES)
def test_fatal_messages(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, text)

    assert _messages(raised.value) == [f"m.yaml:{message}"]


def test_not_utf8_position(tmp_path: Path) -> None:
    with pytest.raises(LoadError) as raised:
        _load(tmp_path, "a: 1\nstreet: Bretonni\xe8re\n".encode("latin-1"))

    assert _messages(raised.value) == [
        "m.yaml:2:17: the file is not valid UTF-8 (byte 0xe8); save it as UTF-8"
    ]


# The entry point


def test_missing_paths_reported_together(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifests([tmp_path / "nowhere.yaml", tmp_path / "gone"])

    assert [issue.message for issue in raised.value.issues] == [
        "no such file or folder; pass manifest files or folders",
        "no such file or folder; pass manifest files or folders",
    ]


def test_folder_search_suffixes(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.yaml", "sub/b.yml", "notes.txt", "c.json"):
        (tmp_path / name).write_text("- x\n", encoding="utf-8")

    with pytest.raises(ManifestError) as raised:
        load_manifests([tmp_path])

    files = sorted({Path(issue.location.file).name for issue in raised.value.issues})
    assert files == ["a.yaml", "b.yml"]


def test_load_issue_hides_schema_issue(tmp_path: Path) -> None:
    """An alias reads as null; the field gets the alias message, not a null one."""
    text = (CASES / "invalid" / "yaml-anchors.yaml").read_text(encoding="utf-8")
    text = text.replace('number: "4"', "number: *building")
    path = _write(tmp_path, text)

    with pytest.raises(ManifestError) as raised:
        load_manifests([path])

    messages = [
        issue.message
        for issue in raised.value.issues
        if issue.field_path == "lots[3].number"
    ]
    assert messages == ["aliases (*building) are not allowed; write the value in full"]
