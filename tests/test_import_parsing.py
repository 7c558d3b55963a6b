"""Import parts: encodings, separators, numbers, templates, quoting, mappings."""

from __future__ import annotations

import datetime
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from ruamel.yaml.comments import CommentedMap

from reconciler.importer import LotGridError
from reconciler.importer import MappingError
from reconciler.importer.document import dump_document
from reconciler.importer.document import is_plain_text
from reconciler.importer.document import to_yaml
from reconciler.importer.errors import column_letter
from reconciler.importer.grid import decode
from reconciler.importer.grid import detect_separator
from reconciler.importer.grid import read_grid
from reconciler.importer.mapping import NumberFormat
from reconciler.importer.mapping import load_mapping
from reconciler.importer.template import parse_template
from reconciler.importer.values import parse_number

ROOT = Path(__file__).parent.parent
FRENCH = NumberFormat(",", (" ", "\u00a0", "\u202f"))
DOTTED = NumberFormat(".", ())


def test_decode_utf8_bom() -> None:
    assert decode(b"\xef\xbb\xbfN\xc2\xb0 lot", None) == ("N° lot", "UTF-8 with BOM")


def test_decode_utf8() -> None:
    assert decode("Bâtiment".encode(), None) == ("Bâtiment", "UTF-8")


def test_decode_windows_1252() -> None:
    assert decode("Bâtiment;Étage;Prix €".encode("cp1252"), None) == (
        "Bâtiment;Étage;Prix €",
        "Windows-1252",
    )


def test_decode_forced() -> None:
    assert decode("Étage".encode("latin-1"), "latin-1") == ("Étage", "latin-1")


def test_decode_unknown_encoding() -> None:
    with pytest.raises(LotGridError) as raised:
        decode(b"x", "klingon")

    assert str(raised.value.issues[0]) == (
        "unknown encoding 'klingon'; use a name such as utf-8 or windows-1252"
    )


def test_decode_neither() -> None:
    with pytest.raises(LotGridError) as raised:
        decode(b"lot\x81", None)

    assert str(raised.value.issues[0]) == (
        "the file is neither UTF-8 nor Windows-1252 (byte 0x81 at offset 3); pass "
        "--encoding with its encoding"
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("N° lot;Surface;Prix\n45,5;1,2;3", ";"),
        ("id,surface,price\n1;2,3", ","),
        ("id\tsurface\tprice\n", "\t"),
        ('"Prix, TTC";Surface\n', ";"),
    ],
)
def test_detect_separator(header: str, expected: str) -> None:
    assert detect_separator(header) == expected


def test_detect_separator_one_column() -> None:
    with pytest.raises(LotGridError) as raised:
        detect_separator("lot\n1\n")

    assert str(raised.value.issues[0]) == (
        "can't tell the separator: the header row has one column; pass --separator"
    )


def test_read_grid_forced_separator(tmp_path: Path) -> None:
    path = tmp_path / "grid.csv"
    path.write_text("a,b;c\n1,2;3\n", encoding="utf-8")

    grid = read_grid(path, None, ",")

    assert grid.header == ("a", "b;c")
    assert grid.rows[0].cells == ("1", "2;3")
    assert grid.rows[0].number == 2


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 234,50", Decimal("1234.50")),
        ("1\u00a0234\u00a0567,5", Decimal("1234567.5")),
        ("1\u202f234", Decimal("1234")),
        ("45,50", Decimal("45.50")),
        ("-1", Decimal("-1")),
        ("\u22121", Decimal("-1")),
        ("12", Decimal("12")),
    ],
)
def test_parse_number_french(text: str, expected: Decimal) -> None:
    assert parse_number(text, FRENCH) == expected


@pytest.mark.parametrize("text", ["45.50", "12 34,5", "1 2345", "4O,5", ",5", "1,", ""])
def test_parse_number_rejects(text: str) -> None:
    assert parse_number(text, FRENCH) is None


def test_parse_number_unit() -> None:
    assert parse_number("198 000,00 €", FRENCH, ("€",)) == Decimal("198000.00")


def test_parse_number_dotted() -> None:
    assert parse_number("50.00", DOTTED) == Decimal("50.00")


def test_template_slices() -> None:
    template = parse_template("PRG-{id_parcelle[0:5]}-{id_parcelle[8:]}")
    cells = {"id_parcelle": "64260000AB0490"}

    assert template.render(cells.__getitem__) == "PRG-64260-AB0490"


def test_template_empty_when_all_empty() -> None:
    template = parse_template("{number} {suffix}")
    cells = {"number": "", "suffix": ""}

    assert template.render(cells.__getitem__) == ""


def test_template_literal_braces() -> None:
    template = parse_template("{{{a}}}")

    assert template.render(lambda name: "x") == "{x}"


def test_template_stray_brace() -> None:
    with pytest.raises(ValueError, match="has an unmatched '}'"):
        parse_template("LOT-{number}}x")


@pytest.mark.parametrize(
    "text",
    ["NO", "no", "Yes", "on", "null", "010", "01000", "1:20", "2024-01-01", "3.5"],
)
def test_quoting_needed(text: str) -> None:
    assert not is_plain_text(text)


@pytest.mark.parametrize("text", ["Hendaye", "Résidence d'Orio", "Rue de l'Église"])
def test_quoting_plain(text: str) -> None:
    assert is_plain_text(text)


@pytest.mark.parametrize("text", ["NO", "010", "01000", "1:20", "y", "Hendaye"])
def test_quoting_reads_back_yaml_1_1(text: str) -> None:
    document = CommentedMap()
    document["city"] = to_yaml("address.city", text)

    assert yaml.safe_load(dump_document(document)) == {"city": text}


def test_decimal_at_places() -> None:
    assert str(to_yaml("livingArea", Decimal("45.5"))) == "45.50"


def test_vat_rate_written_whole() -> None:
    assert str(to_yaml("vatRate", Decimal("20.00"))) == "20"


def test_date_written_as_date() -> None:
    assert to_yaml("expectedDelivery", datetime.date(2026, 6, 30)) == datetime.date(
        2026, 6, 30
    )


@pytest.mark.parametrize(
    ("index", "letter"), [(0, "A"), (25, "Z"), (26, "AA"), (27, "AB")]
)
def test_column_letter(index: int, letter: str) -> None:
    assert column_letter(index) == letter


@pytest.mark.parametrize("name", ["dvf.yaml", "lot-grid-fr.yaml"])
def test_shipped_mappings_load(name: str) -> None:
    mapping = load_mapping(ROOT / "mappings" / name)

    assert mapping.lot_groups


def write_mapping(folder: Path, text: str) -> Path:
    path = folder / "mapping.yaml"
    path.write_text("apiVersion: v1\nkind: Mapping\n" + text, encoding="utf-8")
    return path


def test_mapping_two_sources(tmp_path: Path) -> None:
    path = write_mapping(
        tmp_path,
        "lots:\n  fields:\n    number: {column: Lot, template: '{Lot}'}\n",
    )

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert raised.value.messages == [
        f"{path}:5:13 lots.fields.number: set exactly one of column, template, "
        "constant, sameRow"
    ]


def test_mapping_unknown_field(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, "lots:\n  fields:\n    surface: {column: S}\n")

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert raised.value.messages == [
        f"{path}:5:5 lots.fields: Additional properties are not allowed "
        "('surface' was unexpected)"
    ]


def test_mapping_without_up_id(tmp_path: Path) -> None:
    path = write_mapping(tmp_path, "lots:\n  fields:\n    number: {column: Lot}\n")

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert raised.value.messages == [
        f"{path}: lots has no rule for the lot field 'upId'"
    ]


def test_mapping_bad_date_format(tmp_path: Path) -> None:
    path = write_mapping(
        tmp_path,
        "programme:\n  expectedDelivery: {column: D, format: '%d/%m'}\n"
        "lots:\n  fields:\n    number: {column: Lot}\n    upId: {column: Id}\n",
    )

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert raised.value.messages == [
        f"{path}: programme.expectedDelivery: date format '%d/%m' can't read back "
        "a full date"
    ]


def test_mapping_latest_needs_order(tmp_path: Path) -> None:
    path = write_mapping(
        tmp_path,
        "rows: {sameLot: latest}\n"
        "lots:\n  fields:\n    number: {column: Lot}\n    upId: {column: Id}\n",
    )

    with pytest.raises(MappingError) as raised:
        load_mapping(path)

    assert raised.value.messages == [
        f"{path}:3:7 rows: 'orderBy' is a required property"
    ]
