"""The one normalization: unit rules, and plans against the embedded sandbox.

A plan never shows a change whose two sides normalize to the same value, and always
shows one whose sides differ after normalization.
"""

from __future__ import annotations

import datetime
import io
import json
import sqlite3
import unicodedata
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.commands import ApplyRequest
from reconciler.commands import Console
from reconciler.commands import PlanRequest
from reconciler.commands import run_apply
from reconciler.commands import run_plan
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.fields import FIELDS_BY_NAME
from reconciler.fields import ORIENTATIONS
from reconciler.normalize import date_to_timestamp
from reconciler.normalize import format_decimal
from reconciler.normalize import normalize_date
from reconciler.normalize import normalize_decimal
from reconciler.normalize import normalize_enum
from reconciler.normalize import normalize_integer
from reconciler.normalize import normalize_references
from reconciler.normalize import normalize_text
from reconciler.plan import PlanOptions
from reconciler.sandbox.store import RecordStore

STREET_COMPOSED = "Rue de la Bretonnière"
STREET_DECOMPOSED = unicodedata.normalize("NFD", STREET_COMPOSED)

MANIFEST = """\
apiVersion: v1
kind: Programme
upId: PRG-NORM
name: Résidence de la Norme
address:
  street: STREET
  postalCode: "64700"
  city: Hendaye
promoter:
  name: Côte Basque Promotion Démo SAS
  siren: "918730466"
lots:
  - upId: LOT-NORM-1
    number: "1"
    nature: appartement
    rooms: 2
    livingArea: LIVING
    price: PRICE
    vatRate: 20
    status: available
"""


# Text


def test_text_nfc() -> None:
    assert normalize_text(STREET_DECOMPOSED) == STREET_COMPOSED


def test_text_surrounding_whitespace() -> None:
    assert normalize_text(" \u00a0Rue du Port\t\n") == "Rue du Port"


def test_text_inner_whitespace_kept() -> None:
    assert normalize_text("Rue  du Port") == "Rue  du Port"


@pytest.mark.parametrize("blank", ["", "   ", "\u00a0", None])
def test_text_blank_absent(blank: str | None) -> None:
    assert normalize_text(blank) is None


@given(st.text(), st.sampled_from(["NFC", "NFD", "NFKC", "NFKD"]))
def test_text_idempotent(text: str, form: str) -> None:
    once = normalize_text(unicodedata.normalize(form, text))  # type: ignore[arg-type]

    assert normalize_text(once) == once


@given(st.text(), st.text(alphabet=" \t\u00a0\n"), st.text(alphabet=" \t\u00a0\n"))
def test_text_forms_equal(text: str, before: str, after: str) -> None:
    decomposed = before + unicodedata.normalize("NFD", text) + after

    assert normalize_text(decomposed) == normalize_text(text)


# Numbers


@pytest.mark.parametrize(
    ("first", "second"),
    [("45.50", "45.5"), (45.5, "45.50"), ("198000", 198000.0), (Decimal("1E+2"), 100)],
)
def test_decimal_forms_equal(first: object, second: object) -> None:
    assert normalize_decimal(first, 2) == normalize_decimal(second, 2)


def test_decimal_float_shortest() -> None:
    assert normalize_decimal(0.1) == Decimal("0.1")


def test_decimal_places_rounding() -> None:
    assert normalize_decimal("45.505", 2) == Decimal("45.51")


def test_decimal_places_written() -> None:
    assert str(normalize_decimal(198000, 2)) == "198000.00"


def test_decimal_huge_kept() -> None:
    huge = Decimal("1E+200")

    assert normalize_decimal(huge, 2) == huge


@pytest.mark.parametrize("invalid", [True, "abc", "45,50", float("nan"), "Infinity"])
def test_decimal_invalid(invalid: object) -> None:
    with pytest.raises(ValueError):
        normalize_decimal(invalid)


@given(st.decimals(min_value=0, max_value=10**9, places=2))
def test_decimal_float_round_trip(value: Decimal) -> None:
    """A decimal sent as a JSON float and read back compares equal."""
    assert normalize_decimal(float(value), 2) == normalize_decimal(value, 2)


def test_integer_whole_decimal() -> None:
    assert normalize_integer(Decimal("3.0")) == 3


def test_integer_fraction() -> None:
    with pytest.raises(ValueError):
        normalize_integer("2.5")


# Enumerations, dates, references


@pytest.mark.parametrize("spelling", ["no", " NO ", "No"])
def test_enum_canonical(spelling: str) -> None:
    assert normalize_enum(spelling, ORIENTATIONS) == "NO"


def test_enum_accents_ignored() -> None:
    assert normalize_enum("Appartément", ("appartement",)) == "appartement"


def test_enum_unknown_kept() -> None:
    assert normalize_enum(" nord ", ORIENTATIONS) == "nord"


def test_date_timestamp_paris() -> None:
    day = datetime.date(2026, 3, 29)

    assert normalize_date(date_to_timestamp(day)) == day


def test_date_datetime_paris() -> None:
    assert normalize_date("2026-01-04T23:30:00+00:00") == datetime.date(2026, 1, 5)


def test_date_float_timestamp() -> None:
    day = datetime.date(2026, 7, 14)

    assert normalize_date(float(date_to_timestamp(day))) == day


@pytest.mark.parametrize("invalid", ["2026-02-30", "tomorrow", True, 10**30])
def test_date_invalid(invalid: object) -> None:
    with pytest.raises(ValueError):
        normalize_date(invalid)


def test_references_sorted_unique() -> None:
    assert normalize_references(["LOT-2", " LOT-1", "LOT-2"]) == ("LOT-1", "LOT-2")


def test_references_empty_absent() -> None:
    assert normalize_references([]) is None


# Field specs: what MyNotary may hold that doesn't fit the field's kind


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("livingArea", "45,50", "45,50"),
        ("floor", "2.5", "2.5"),
        ("expectedDelivery", "2026-02-30", "2026-02-30"),
        ("annexes", "LOT-1", "LOT-1"),
    ],
)
def test_field_unfit_value_as_text(name: str, raw: object, expected: str) -> None:
    assert FIELDS_BY_NAME[name].normalize(raw) == expected


def test_field_price_places() -> None:
    assert FIELDS_BY_NAME["price"].normalize(198000.0) == Decimal("198000.00")


def test_field_vat_rate_exact() -> None:
    assert FIELDS_BY_NAME["vatRate"].normalize("5.50") == Decimal("5.5")


def test_field_format_places() -> None:
    assert FIELDS_BY_NAME["price"].format(Decimal("198000")) == "198000.00"


def test_format_decimal_huge() -> None:
    assert format_decimal(Decimal("1E+999999")) == "1E+999999"


# Plans against the embedded sandbox


@pytest.fixture
def sandbox_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make an empty folder the working one: the sandbox lives in its .reconciler/."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "manifests").mkdir()
    return tmp_path


def _write(folder: Path, street: str, living: str, price: str) -> None:
    text = MANIFEST.replace("STREET", street).replace("LIVING", living)
    text = text.replace("PRICE", price)
    (folder / "manifests" / "norm.yaml").write_text(text, encoding="utf-8")


def _request() -> PlanRequest:
    settings = resolve_settings(TargetOptions(target="sandbox"), {})
    return PlanRequest([Path("manifests")], settings, PlanOptions())


def _plan() -> tuple[int, str]:
    out = io.StringIO()
    console = Console(out=out, err=io.StringIO())
    code = run_plan(_request(), detailed_exitcode=True, console=console)
    return code, out.getvalue()


def _apply() -> tuple[int, str]:
    out = io.StringIO()
    request = ApplyRequest(
        plan=_request(), auto_approve=True, parallelism=4, confirm=lambda: True
    )
    code = run_apply(request, Console(out=out, err=io.StringIO()))
    return code, out.getvalue()


def _edit_remote(folder: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Apply ``change`` to the questions of every record the sandbox holds."""
    with RecordStore(folder / ".reconciler" / "sandbox.db") as store:
        records, _ = store.list(1)
        for record in records:
            questions = dict(record["questions"])
            change(questions)
            store.update(record["id"], record["version"], questions)


def _raw_questions(folder: Path) -> list[str]:
    connection = sqlite3.connect(folder / ".reconciler" / "sandbox.db")
    try:
        rows = connection.execute("SELECT questions FROM records ORDER BY id")
        return [row[0] for row in rows]
    finally:
        connection.close()


def _applied(folder: Path, street: str, living: str, price: str) -> None:
    _write(folder, street, living, price)
    code, output = _apply()
    assert code == 0, output


def test_plan_unicode_only_difference(sandbox_folder: Path) -> None:
    """A street saved decomposed, MyNotary holding the composed form: no change."""
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000.00")
    _write(sandbox_folder, STREET_DECOMPOSED, "45.50", "198000.00")

    code, output = _plan()

    assert code == 0, output
    assert "No changes." in output


def test_plan_remote_decomposed(sandbox_folder: Path) -> None:
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000.00")

    def decompose(questions: dict[str, Any]) -> None:
        if "adresse" in questions:
            questions["adresse"] = {**questions["adresse"], "rue": STREET_DECOMPOSED}

    _edit_remote(sandbox_folder, decompose)

    code, output = _plan()

    assert code == 0, output


def test_plan_sends_normalized_text(sandbox_folder: Path) -> None:
    _applied(sandbox_folder, f'"  {STREET_DECOMPOSED} "', "45.50", "198000.00")

    programme = json.loads(_raw_questions(sandbox_folder)[0])

    assert programme["adresse"]["rue"] == STREET_COMPOSED


def test_plan_decimal_forms_equal(sandbox_folder: Path) -> None:
    """livingArea 45.50 against MyNotary 45.5, price 198000 against 198000.0."""
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000")

    def shorten(questions: dict[str, Any]) -> None:
        if "surface_habitable" in questions:
            questions["surface_habitable"] = Decimal("45.5")
            questions["prix_ttc"] = Decimal("198000.0")

    _edit_remote(sandbox_folder, shorten)

    code, output = _plan()

    assert '"surface_habitable":45.5,' in _raw_questions(sandbox_folder)[1]
    assert code == 0, output


def test_plan_absent_equals_null(sandbox_folder: Path) -> None:
    """Optional fields absent from the manifest, null on MyNotary: no change."""
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000.00")

    def add_empty_values(questions: dict[str, Any]) -> None:
        if "adresse" in questions:
            questions["adresse"] = {**questions["adresse"], "numero": None}
        else:
            questions["orientation"] = ""
            questions["lots_annexes"] = []

    _edit_remote(sandbox_folder, add_empty_values)
    # The store drops a top-level question sent as null, so write nulls directly.
    _set_null(sandbox_folder, "date_livraison_prevue", "batiment", "etage")

    code, output = _plan()

    assert '"numero":null' in _raw_questions(sandbox_folder)[0]
    assert '"batiment":null' in _raw_questions(sandbox_folder)[1]
    assert code == 0, output


def _set_null(folder: Path, *field_ids: str) -> None:
    connection = sqlite3.connect(folder / ".reconciler" / "sandbox.db")
    try:
        with connection:
            for field_id in field_ids:
                connection.execute(
                    "UPDATE records SET questions ="
                    " json_set(questions, ?, json('null'))",
                    (f"$.{field_id}",),
                )
    finally:
        connection.close()


def test_plan_shows_real_difference(sandbox_folder: Path) -> None:
    """Sides that differ after normalization always show as a change."""
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000.00")

    def change(questions: dict[str, Any]) -> None:
        if "adresse" in questions:
            questions["adresse"] = {
                **questions["adresse"],
                "rue": "Rue de la Bretonniere",
            }
        else:
            questions["surface_habitable"] = Decimal("45.51")

    _edit_remote(sandbox_folder, change)

    code, output = _plan()

    assert code == 2, output
    assert 'address.street: "Rue de la Bretonniere" → "Rue de la Bretonnière"' in output
    assert "livingArea: 45.51 → 45.50" in output


def test_plan_remote_unfit_value_shown(sandbox_folder: Path) -> None:
    """A MyNotary value that isn't a number shows as a change, not a traceback."""
    _applied(sandbox_folder, STREET_COMPOSED, "45.50", "198000.00")

    def spoil(questions: dict[str, Any]) -> None:
        if "surface_habitable" in questions:
            questions["surface_habitable"] = "45,50"

    _edit_remote(sandbox_folder, spoil)

    code, output = _plan()

    assert code == 2, output
    assert 'livingArea: "45,50" → 45.50' in output
