"""Rules a schema can't express: departments, check digits, decimals, and rules that
run on files with schema errors too."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import load_manifests
from reconciler.manifest.communes import department_of_commune
from reconciler.manifest.communes import departments_of_postal_code
from reconciler.manifest.communes import fold_commune_name
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.rules import _decimal_places
from reconciler.manifest.rules import check_rules

CASES = Path(__file__).resolve().parent / "cases"
MINIMAL = (CASES / "valid" / "minimal.yaml").read_text(encoding="utf-8")


def _errors(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    try:
        load_manifests([path])
    except ManifestError as error:
        return [f"{issue.field_path}: {issue.message}" for issue in error.issues]
    return []


def _address(postal_code: str, city: str, country: str | None = None) -> str:
    text = MINIMAL.replace('postalCode: "64700"', f'postalCode: "{postal_code}"')
    text = text.replace("city: Hendaye", f"city: {city}")
    if country is not None:
        text = text.replace("  city:", f"  country: {country}\n  city:")
    return text


# Departments


@pytest.mark.parametrize(
    ("postal_code", "departments"),
    [
        ("01000", {"01"}),
        ("64700", {"64"}),
        ("95000", {"95"}),
        ("20000", {"2A", "2B"}),
        ("20200", {"2A", "2B"}),
        ("97400", {"974"}),
        ("97133", {"971"}),
        ("98800", {"988"}),
        ("00100", set()),
        ("96100", set()),
        ("97700", set()),
        ("98000", set()),
        ("99000", set()),
    ],
)
def test_departments_of_postal_code(postal_code: str, departments: set[str]) -> None:
    assert departments_of_postal_code(postal_code) == departments


@pytest.mark.parametrize(
    ("city", "folded"),
    [
        ("Saint-Jean-de-Luz", "saint jean de luz"),
        ("ST JEAN DE LUZ", "saint jean de luz"),
        ("Paris 15e Arrondissement", "paris"),
        ("Marseille 1er", "marseille"),
        ("Porto‑Vecchio", "porto vecchio"),
        (" Hendaye ", "hendaye"),
    ],
)
def test_fold_commune_name(city: str, folded: str) -> None:
    assert fold_commune_name(city) == folded


def test_commune_unknown() -> None:
    assert department_of_commune("Saint-Denis") is None


@pytest.mark.parametrize(
    ("postal_code", "city"),
    [("20000", "Ajaccio"), ("20200", "Bastia"), ("75015", "Paris 15e Arrondissement")],
)
def test_commune_consistent(tmp_path: Path, postal_code: str, city: str) -> None:
    assert _errors(tmp_path, _address(postal_code, city)) == []


def test_commune_corsica_wrong(tmp_path: Path) -> None:
    assert _errors(tmp_path, _address("64700", "Bastia")) == [
        "address.postalCode: '64700' is not a postal code of Bastia: Bastia is in "
        "department 2B, whose postal codes start with 20"
    ]


def test_commune_country_fr_checked(tmp_path: Path) -> None:
    assert _errors(tmp_path, _address("00100", "Hendaye", "FR")) == [
        "address.postalCode: '00100' does not start with a French department number "
        "(01 to 95, 20 for Corsica, 971 to 976, 986 to 988)"
    ]


def test_commune_abroad_unchecked(tmp_path: Path) -> None:
    assert _errors(tmp_path, _address("00100", "Roma", "Italia")) == []


# Numbers


@pytest.mark.parametrize(
    ("value", "places"),
    [
        ("45.50", 1),
        ("45.500", 1),
        ("45.505", 3),
        ("100", 0),
        ("1E+2", 0),
        ("0.00", 0),
        ("1E-7", 7),
    ],
)
def test_decimal_places(value: str, places: int) -> None:
    assert _decimal_places(Decimal(value)) == places


def test_siret_la_poste(tmp_path: Path) -> None:
    """La Poste's SIRETs fail the Luhn check; python-stdnum checks their own rule."""
    text = MINIMAL.replace(
        'siren: "918730466"', 'siren: "356000000"\n  siret: "35600000000001"'
    )

    assert _errors(tmp_path, text) == []


# Rules on files with schema errors


def test_rules_with_schema_errors(tmp_path: Path) -> None:
    """A schema error elsewhere doesn't hide a rule's error: one run reports both."""
    text = MINIMAL.replace('siren: "918730466"', 'siren: "918730467"')
    text = text.replace("status: available", "status: sold out")

    assert _errors(tmp_path, text) == [
        "promoter.siren: '918730467' is not a valid SIREN: its check digit is wrong",
        "lots[0].status: 'sold out' is not a sale status; use one of: available, "
        "optioned, reserved, sold",
    ]


def test_rules_skip_field_with_schema_error(tmp_path: Path) -> None:
    text = MINIMAL.replace("status: available", "status: available\n    price: -1.005")

    assert _errors(tmp_path, text) == ["lots[0].price: -1.005 must be greater than 0"]


_JSON_LIKE = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(["LOT-1", "appartement", "parking", "2026-02-30", "64700"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "upId",
                    "lots",
                    "number",
                    "nature",
                    "annexes",
                    "livingArea",
                    "carrezArea",
                    "price",
                    "promoter",
                    "siren",
                    "siret",
                    "address",
                    "postalCode",
                    "city",
                    "country",
                    "buildingPermit",
                    "date",
                    "expectedDelivery",
                    "link",
                    "attach",
                ]
            ),
            children,
            max_size=6,
        )
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(_JSON_LIKE, min_size=1, max_size=3))
def test_rules_any_data(documents: list[Any]) -> None:
    """Rules read only values of the expected type: any data gives issues, never an
    exception."""
    files = [LoadedFile(f"m{index}.yaml", data) for index, data in enumerate(documents)]

    for issue in check_rules(files):
        assert "\n" not in str(issue)
