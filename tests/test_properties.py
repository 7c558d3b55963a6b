"""Properties over generated manifests and arbitrary bytes.

- Any valid manifest loads, normalizes, and compares equal to itself after a round
  trip through MyNotary: apply it to the embedded sandbox, read it back, plan, and
  the plan has no changes.
- Any bytes given as a manifest end in an error with a message and exit 1, never in
  a traceback.
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import re
import subprocess
import sys
import tempfile
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from stdnum import luhn

from reconciler.commands import ApplyRequest
from reconciler.commands import Console
from reconciler.commands import PlanRequest
from reconciler.commands import run_apply
from reconciler.commands import run_plan
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_OK
from reconciler.errors import ManifestError
from reconciler.fields import ANNEX_NATURES
from reconciler.fields import DWELLING_NATURES
from reconciler.fields import LOT_NATURES
from reconciler.fields import ORIENTATIONS
from reconciler.fields import SALE_STATUSES
from reconciler.manifest import load_manifests
from reconciler.normalize import normalize_text
from reconciler.plan import PlanOptions

CASES = Path(__file__).resolve().parent / "cases"
VALID_CASES = sorted((CASES / "valid").glob("*.yaml"))

# Seconds a command-line run may take before the test fails instead of hanging.
CLI_TIMEOUT = 120

# Text written unquoted when a draw requests it: text fields read it as written,
# whatever YAML 1.1 would make of it.
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*(:[A-Za-z0-9._/-]+)*")
_NULL_WORDS = {"null", "Null", "NULL", "~"}

# Postal codes with a commune of their department; "01000" written plain must stay
# text with its zero.
_ADDRESSES = [
    ("64700", "Hendaye"),
    ("20000", "Ajaccio"),
    ("20200", "Bastia"),
    ("01000", "Bourg-en-Bresse"),
    ("97400", "Saint-Denis"),
    ("75015", "Paris 15e Arrondissement"),
]


# Writing generated manifests


@dataclass(frozen=True)
class Text:
    """A text value, and whether to write it unquoted where YAML allows."""

    value: str
    is_plain: bool


@dataclass(frozen=True)
class Number:
    """A number and the way it is written (45.50, 45.5, 4.55E+1)."""

    written: str


def _scalar(value: Any) -> str:
    if isinstance(value, Text):
        is_plain = value.is_plain and value.value not in _NULL_WORDS
        if is_plain and _PLAIN.fullmatch(value.value):
            return value.value
        return json.dumps(value.value, ensure_ascii=False)
    if isinstance(value, Number):
        return value.written
    if value is True:
        return "true"
    return str(value)


def _dump(data: dict[str, Any], indent: int = 0) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{pad}{key}:")
            lines.extend(_dump(value, indent + 2))
        elif isinstance(value, list):
            lines.append(f"{pad}{key}:" + ("" if value else " []"))
            lines.extend(_dump_items(value, indent + 2))
        else:
            lines.append(f"{pad}{key}: {_scalar(value)}")
    return lines


def _dump_items(items: list[Any], indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    for item in items:
        if isinstance(item, dict):
            item_lines = _dump(item, indent + 2)
            lines.append(f"{pad}- {item_lines[0].lstrip()}")
            lines.extend(item_lines[1:])
        else:
            lines.append(f"{pad}- {_scalar(item)}")
    return lines


# Strategies for valid manifests

_CHARACTERS = st.characters(
    blacklist_categories=("Cc", "Cs", "Cn", "Co", "Zl", "Zp"),
)
_ACCENTED = st.sampled_from(["è", "é", "ô", "ç", "Œ", "ﬁ", "e\u0300", "\u00a0"])


@st.composite
def _texts(draw: st.DrawFn, max_size: int = 30) -> Text:
    """Draw non-blank text, maybe decomposed, maybe with surrounding spaces."""
    parts = draw(st.lists(_CHARACTERS.map(str) | _ACCENTED, min_size=1, max_size=8))
    text = "".join(parts)[: max_size - 4]
    if not text.strip():
        text = "x" + text
    if draw(st.booleans()):
        text = unicodedata.normalize("NFD", text)
    before = draw(st.sampled_from(["", " ", "  "]))
    after = draw(st.sampled_from(["", " ", "\u00a0"]))
    return Text(before + text + after, draw(st.booleans()))


_UP_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,15}", fullmatch=True)


@st.composite
def _numbers(draw: st.DrawFn, low: str, high: str) -> Number:
    value = draw(st.decimals(min_value=Decimal(low), max_value=Decimal(high), places=2))
    form = draw(st.sampled_from(["written", "shortest", "scientific"]))
    if form == "shortest":
        return Number(format(value.normalize(), "f"))
    if form == "scientific":
        return Number(f"{value:E}")
    return Number(str(value))


def _siren_digits(draw: st.DrawFn) -> str:
    body = draw(st.from_regex(r"[0-9]{8}", fullmatch=True))
    return body + luhn.calc_check_digit(body)


@st.composite
def _promoters(draw: st.DrawFn) -> dict[str, Any]:
    siren = _siren_digits(draw)
    promoter: dict[str, Any] = {"name": draw(_texts()), "siren": Text(siren, False)}
    if draw(st.booleans()):
        body = siren + draw(st.from_regex(r"[0-9]{4}", fullmatch=True))
        promoter["siret"] = Text(body + luhn.calc_check_digit(body), False)
    return promoter


@st.composite
def _addresses(draw: st.DrawFn) -> dict[str, Any]:
    postal_code, city = draw(st.sampled_from(_ADDRESSES))
    address: dict[str, Any] = {}
    if draw(st.booleans()):
        address["streetNumber"] = draw(_texts(10))
    address["street"] = draw(_texts())
    address["postalCode"] = Text(postal_code, draw(st.booleans()))
    address["city"] = Text(city, draw(st.booleans()))
    if draw(st.booleans()):
        address["country"] = Text("France", True)
    return address


@st.composite
def _dates(draw: st.DrawFn) -> dict[str, Any]:
    """Draw the optional building permit and expected delivery, in that order."""
    fields: dict[str, Any] = {}
    permit_date = draw(st.dates(datetime.date(2000, 1, 1), datetime.date(2030, 12, 31)))
    if draw(st.booleans()):
        fields["buildingPermit"] = {
            "number": draw(_texts()),
            "date": Text(permit_date.isoformat(), draw(st.booleans())),
        }
    if draw(st.booleans()):
        delivery = permit_date + datetime.timedelta(days=draw(st.integers(1, 2000)))
        fields["expectedDelivery"] = Text(delivery.isoformat(), draw(st.booleans()))
    return fields


@st.composite
def _lots(draw: st.DrawFn, up_ids: list[str]) -> list[dict[str, Any]]:
    numbers = draw(
        st.lists(
            _texts(20), min_size=len(up_ids), max_size=len(up_ids),
            unique_by=lambda text: normalize_text(text.value),
        )
    )  # fmt: skip
    lots = [
        _lot(draw, up_id, number) for up_id, number in zip(up_ids, numbers, strict=True)
    ]
    _assign_annexes(draw, lots)
    return lots


def _lot(draw: st.DrawFn, up_id: str, number: Text) -> dict[str, Any]:
    nature = draw(st.sampled_from(LOT_NATURES))
    lot: dict[str, Any] = {
        "upId": Text(up_id, draw(st.booleans())),
        "number": number,
        "nature": nature,
    }
    if draw(st.booleans()):
        lot["building"] = draw(_texts(10))
    if draw(st.booleans()):
        lot["floor"] = draw(st.integers(-10, 100))
    if nature not in ANNEX_NATURES and draw(st.booleans()):
        lot["orientation"] = Text(draw(st.sampled_from(ORIENTATIONS)), True)
    if nature in DWELLING_NATURES:
        _add_dwelling_fields(draw, lot)
    if draw(st.booleans()):
        lot["price"] = draw(_numbers("1", "5000000"))
    if draw(st.booleans()):
        lot["vatRate"] = draw(st.sampled_from([20, Number("5.5"), Number("5.50")]))
    lot["status"] = draw(st.sampled_from(SALE_STATUSES))
    return lot


def _add_dwelling_fields(draw: st.DrawFn, lot: dict[str, Any]) -> None:
    lot["rooms"] = draw(st.integers(1, 50))
    living = draw(_numbers("9", "2000"))
    lot["livingArea"] = living
    if draw(st.booleans()):
        carrez = Decimal(living.written) * Decimal(draw(st.sampled_from(["1", "0.9"])))
        lot["carrezArea"] = Number(str(carrez.quantize(Decimal("0.01"))))


def _assign_annexes(draw: st.DrawFn, lots: list[dict[str, Any]]) -> None:
    annexes = [lot for lot in lots if lot["nature"] in ANNEX_NATURES]
    owners = [lot for lot in lots if lot["nature"] in DWELLING_NATURES]
    for annex in annexes:
        if owners and draw(st.booleans()):
            owner = draw(st.sampled_from(owners))
            owner.setdefault("annexes", []).append(annex["upId"])


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a valid manifest, as the mapping ``_dump`` writes."""
    up_ids = draw(st.lists(_UP_IDS, min_size=2, max_size=5, unique=True))
    dates = draw(_dates())
    return {
        "apiVersion": "v1",
        "kind": "Programme",
        "upId": Text(up_ids[0], draw(st.booleans())),
        "name": draw(_texts()),
        "address": draw(_addresses()),
        "promoter": draw(_promoters()),
        **dates,
        "lots": draw(_lots(up_ids[1:])),
    }


# The round trip


def _plan_request() -> PlanRequest:
    sandbox = resolve_settings(TargetOptions(target="sandbox"), {})
    return PlanRequest([Path("manifests")], sandbox, PlanOptions())


def _apply_then_plan() -> tuple[int, str, int, str]:
    applied = io.StringIO()
    request = ApplyRequest(
        plan=_plan_request(), auto_approve=True, parallelism=4, confirm=lambda: True
    )
    apply_code = run_apply(request, Console(out=applied, err=io.StringIO()))
    planned = io.StringIO()
    plan_code = run_plan(
        _plan_request(),
        detailed_exitcode=True,
        console=Console(out=planned, err=io.StringIO()),
    )
    return apply_code, applied.getvalue(), plan_code, planned.getvalue()


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(manifests())
def test_round_trip_no_changes(manifest: dict[str, Any]) -> None:
    text = "\n".join(_dump(manifest)) + "\n"
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        Path("manifests").mkdir()
        Path("manifests/generated.yaml").write_text(text, encoding="utf-8")

        apply_code, applied, plan_code, planned = _apply_then_plan()

    assert apply_code == EXIT_OK, text + applied
    assert plan_code == EXIT_OK, text + planned
    assert "No changes." in planned


# Arbitrary bytes


def _check_bytes(content: bytes) -> None:
    """Load ``content`` as a manifest: success or a ManifestError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_bytes(content)
        try:
            load_manifests([path])
        except ManifestError as error:
            assert error.issues
            for issue in error.issues:
                assert "\n" not in str(issue)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_bytes_never_traceback(content: bytes) -> None:
    _check_bytes(content)


_YAML_PIECES = st.sampled_from(
    [" ", "  ", "\n", "- ", ": ", "[", "]", "{", "}", ", ", "#", "&a ", "*a", "!!",
     "!t ", "|", ">", "'", '"', "%YAML 1.2\n", "---\n", "...\n", "? ", "~", "NO",
     "010", "1:20", "2026-02-30", "45,50", "\t", "\ufeff", "é", "e\u0301", "\\",
     "lots", "upId", "apiVersion: v1\n", "price", "1e999999", "0x1F", ".inf"]
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.lists(_YAML_PIECES, max_size=60))
def test_yaml_fragments_never_traceback(pieces: list[str]) -> None:
    _check_bytes("".join(pieces).encode("utf-8"))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(VALID_CASES),
    st.lists(
        st.tuples(st.integers(0, 3000), st.sampled_from(["insert", "delete", "set"]),
                  st.binary(min_size=1, max_size=3)),
        min_size=1, max_size=5,
    ),
)  # fmt: skip
def test_mutated_manifest_never_traceback(
    case: Path, mutations: list[tuple[int, str, bytes]]
) -> None:
    content = bytearray(case.read_bytes())
    for position, action, data in mutations:
        index = position % (len(content) + 1)
        if action == "insert":
            content[index:index] = data
        elif action == "delete":
            del content[index : index + len(data)]
        else:
            content[index : index + len(data)] = data
    _check_bytes(bytes(content))


@settings(max_examples=5, deadline=None)
@given(st.binary(min_size=1, max_size=500))
def test_cli_bytes_exit_1(content: bytes) -> None:
    entry_point = Path(sys.executable).with_name("reconciler")
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "fuzz.yaml").write_bytes(content)
        completed = subprocess.run(
            [str(entry_point), "validate", "fuzz.yaml"],
            cwd=folder,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CLI_TIMEOUT,
            check=False,
        )

    assert completed.returncode == EXIT_ERROR
    assert completed.stdout.splitlines()[-1].endswith("nothing was sent to MyNotary.")
    assert "Traceback" not in completed.stderr
