"""Imports of whole exports: golden files, re-imports, broken inputs, the CLI."""

from __future__ import annotations

import difflib
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import CliResult

from reconciler.importer import ImportReport
from reconciler.importer import ImportRequest
from reconciler.importer import LotGridError
from reconciler.importer import import_csv
from reconciler.importer import render_report
from reconciler.importer.build import LotState
from reconciler.manifest import load_manifests

ROOT = Path(__file__).parent.parent
FIXTURES = Path(__file__).parent / "fixtures" / "import"
EXPECTED = FIXTURES / "expected"
GRID_UTF8 = FIXTURES / "lot-grid-fr-utf8-bom.csv"
GRID_WINDOWS = FIXTURES / "lot-grid-fr-windows-1252.csv"
GRID_MAPPING = ROOT / "mappings" / "lot-grid-fr.yaml"
DVF = ROOT / "data" / "dvf" / "hendaye-2019-2023.csv"
DVF_MAPPING = ROOT / "mappings" / "dvf.yaml"
EXAMPLE_PROGRAMMES = (
    "PRG-64260-AB0490",
    "PRG-64260-AD0588",
    "PRG-64260-AL0253",
    "PRG-64260-AO0471",
)
IRIS = "residence-les-iris.yaml"


def write_grid(folder: Path, edit: Callable[[str], str] = lambda text: text) -> Path:
    """Write the French lot grid, changed by ``edit``, as UTF-8 with a BOM."""
    text = GRID_UTF8.read_text(encoding="utf-8-sig")
    path = folder / "lot-grid.csv"
    path.write_bytes(b"\xef\xbb\xbf" + edit(text).encode("utf-8"))
    return path


def run_import(
    export: Path,
    into: Path,
    *,
    mapping: Path = GRID_MAPPING,
    programmes: tuple[str, ...] = (),
    prune: bool = False,
    strict: bool = False,
) -> ImportReport:
    """Import ``export`` with the French lot grid mapping unless told otherwise."""
    request = ImportRequest(export, mapping, into, programmes, prune, strict)
    return import_csv(request)


def read_folder(folder: Path) -> dict[str, str]:
    """Return the text of every file in ``folder`` by name."""
    return {path.name: path.read_text(encoding="utf-8") for path in folder.iterdir()}


def changed_lines(before: str, after: str) -> list[str]:
    """Return the removed and added lines between two texts."""
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="")
    return [
        line
        for line in diff
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def lot_states(report: ImportReport) -> dict[str, LotState]:
    """Return the state of every lot of the report by Up id."""
    return {lot.up_id: lot.state for outcome in report.outcomes for lot in outcome.lots}


def grid_error(export: Path, into: Path) -> LotGridError:
    """Return the error of an import that must fail."""
    with pytest.raises(LotGridError) as raised:
        run_import(export, into)
    return raised.value


@pytest.mark.parametrize("source", [GRID_UTF8, GRID_WINDOWS], ids=["utf8", "cp1252"])
def test_import_lot_grid_golden(tmp_path: Path, source: Path) -> None:
    export = tmp_path / "lot-grid.csv"
    shutil.copyfile(source, export)

    run_import(export, tmp_path / "manifests")

    expected = read_folder(EXPECTED / "lot-grid-fr")
    assert read_folder(tmp_path / "manifests") == expected


def test_import_lot_grid_reading(tmp_path: Path) -> None:
    export = tmp_path / "lot-grid.csv"
    shutil.copyfile(GRID_WINDOWS, export)

    report = run_import(export, tmp_path / "manifests")

    assert render_report(report).splitlines()[0] == (
        "Read lot-grid.csv (Windows-1252, separator ';'): 9 row(s)."
    )


def test_import_lot_grid_summary(tmp_path: Path) -> None:
    report = run_import(write_grid(tmp_path), tmp_path / "manifests")

    into = tmp_path / "manifests"
    assert render_report(report).splitlines() == [
        "Read lot-grid.csv (UTF-8 with BOM, separator ';'): 9 row(s).",
        f"{into}/residence-les-iris.yaml: created, programme PRG-IRIS, 4 lot(s)",
        f"{into}/residence-cote-plage.yaml: created, programme PRG-PLAGE, 2 lot(s)",
        "Lots: 6 created, 0 changed, 0 unchanged, 0 absent from the export, "
        "0 removed, 0 left out.",
        "Rows: 6 imported, 3 skipped:",
        "  1 empty",
        "  row 6: duplicate of row 5",
        "  row 10: missing lot number in column 'N° lot'",
        "Wrote 2 manifest(s).",
    ]


def test_import_accounts_every_row(tmp_path: Path) -> None:
    report = run_import(write_grid(tmp_path), tmp_path / "manifests")

    rows = sorted({row.row for row in report.skipped} | {2, 3, 4, 5, 8, 9})
    assert report.imported_rows + len(report.skipped) == report.row_count
    assert rows == list(range(2, 11))


def test_import_result_validates(tmp_path: Path) -> None:
    run_import(write_grid(tmp_path), tmp_path / "manifests")

    loaded = load_manifests([tmp_path / "manifests"])

    assert len(loaded.programmes) == 2
    assert loaded.warnings == ()


def test_import_yaml_1_1_readers(tmp_path: Path) -> None:
    run_import(write_grid(tmp_path), tmp_path / "manifests")

    text = (tmp_path / "manifests" / IRIS).read_text(encoding="utf-8")
    # PyYAML's SafeLoader follows YAML 1.1, where a plain NO is false and 010 is 8.
    document = yaml.load(text, Loader=yaml.SafeLoader)
    lots = {lot["upId"]: lot for lot in document["lots"]}
    assert document["address"]["postalCode"] == "01000"
    assert lots["LOT-IRIS-010"]["number"] == "010"
    assert lots["LOT-IRIS-010"]["orientation"] == "NO"


def test_import_dvf_golden(tmp_path: Path) -> None:
    export = tmp_path / DVF.name
    shutil.copyfile(DVF, export)
    programmes = ("PRG-64260-AB0490", "PRG-64260-AL0253")

    run_import(export, tmp_path / "dvf", mapping=DVF_MAPPING, programmes=programmes)

    assert read_folder(tmp_path / "dvf") == read_folder(EXPECTED / "dvf")


def test_import_dvf_reproduces_examples(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", into)

    report = run_import(DVF, into, mapping=DVF_MAPPING, programmes=EXAMPLE_PROGRAMMES)

    assert read_folder(into) == read_folder(ROOT / "manifests")
    assert set(lot_states(report).values()) == {LotState.UNCHANGED}
    assert len(lot_states(report)) == 163
    assert report.written == []


def test_import_dvf_omits_carrez_above_living(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", into)

    report = run_import(
        DVF, into, mapping=DVF_MAPPING, programmes=("PRG-64260-AB0490",)
    )

    issue = report.rejections.omitted[("PRG-64260-AB0490", "31", "carrezArea")]
    assert str(issue).startswith(
        "row 1436, column 'lot1_surface_carrez' (T): Carrez surface 29.28 is above "
        "the surface habitable 29.00"
    )


def test_import_dvf_counts_rows(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", into)

    report = run_import(DVF, into, mapping=DVF_MAPPING, programmes=EXAMPLE_PROGRAMMES)

    lines = render_report(report).splitlines()
    assert "Rows: 176 imported, 2399 skipped:" in lines
    assert "  345 not selected by the mapping's conditions" in lines
    assert "  2047 of programmes not selected with --programme" in lines
    assert "  row 793: duplicate of row 792" in lines


def test_reimport_changes_nothing(tmp_path: Path) -> None:
    export = write_grid(tmp_path)
    into = tmp_path / "manifests"
    run_import(export, into)
    before = read_folder(into)

    report = run_import(export, into)

    assert read_folder(into) == before
    assert report.written == []
    assert set(lot_states(report).values()) == {LotState.UNCHANGED}


def test_reimport_one_surface_changes_one_line(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    before = (into / IRIS).read_text(encoding="utf-8")

    report = run_import(
        write_grid(tmp_path, lambda t: t.replace("62,00", "63,00")), into
    )

    after = (into / IRIS).read_text(encoding="utf-8")
    assert changed_lines(before, after) == [
        "-    livingArea: 62.00",
        "+    livingArea: 63.00",
    ]
    assert lot_states(report)["LOT-IRIS-010"] is LotState.CHANGED


def test_reimport_keeps_comments_links_and_fields(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    path = into / IRIS
    edited = (
        path.read_text(encoding="utf-8")
        .replace(
            "expectedDelivery: 2026-06-30\n",
            "# Permit from the town hall's letter.\n"
            "buildingPermit:\n"
            '  number: "PC 001 053 24 B0001"\n'
            "  date: 2024-01-15\n"
            "expectedDelivery: 2026-06-30\n",
        )
        .replace(
            "    status: optioned\n",
            "    status: optioned  # until the bank answers\n"
            "    link:\n"
            "      attach: 4242\n",
        )
        .replace(
            "    status: sold\n",
            "    status: sold\n"
            "    link:\n"
            "      unlinked: true\n"
            "      reason: Sold before the interconnection\n",
        )
    )
    path.write_text(edited, encoding="utf-8")

    run_import(write_grid(tmp_path, lambda t: t.replace("62,00", "63,00")), into)

    assert changed_lines(edited, path.read_text(encoding="utf-8")) == [
        "-    livingArea: 62.00",
        "+    livingArea: 63.00",
    ]


def test_reimport_adds_lot_in_order(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    before = (into / IRIS).read_text(encoding="utf-8")
    new_row = (
        "IRIS;Résidence Les Iris;7 bis;Rue de l'Église;01000;Bourg-en-Bresse;"
        "Côte Basque Promotion Démo SAS;918730466;30/06/2026;A;1;005;Appartement;"
        "1;30,00;;Est;;120 000,00;20 %;Libre\r\n"
    )

    report = run_import(write_grid(tmp_path, lambda t: t + new_row), into)

    lots = yaml.safe_load((into / IRIS).read_text(encoding="utf-8"))["lots"]
    assert [lot["number"] for lot in lots] == ["C02", "P01", "001", "005", "010"]
    assert lot_states(report)["LOT-IRIS-005"] is LotState.CREATED
    assert len(changed_lines(before, (into / IRIS).read_text(encoding="utf-8"))) == 11


def test_reimport_reports_absent_lot(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    before = read_folder(into)

    report = run_import(write_grid(tmp_path, _without_cellar), into)

    assert lot_states(report)["LOT-IRIS-C02"] is LotState.ABSENT
    assert read_folder(into) == before
    assert (
        "  ? lot C02 [LOT-IRIS-C02]: not in the export; kept (pass --prune to "
        "remove it)" in render_report(report).splitlines()
    )


def test_reimport_prune_removes_lot(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)

    report = run_import(write_grid(tmp_path, _without_cellar), into, prune=True)

    lots = yaml.safe_load((into / IRIS).read_text(encoding="utf-8"))["lots"]
    assert "C02" not in [lot["number"] for lot in lots]
    assert lot_states(report)["LOT-IRIS-C02"] is LotState.REMOVED


def _without_cellar(text: str) -> str:
    return "".join(line for line in text.splitlines(True) if ";C02;" not in line)


def test_import_missing_column(tmp_path: Path) -> None:
    export = write_grid(
        tmp_path, lambda t: t.replace(";Surface Carrez;", ";Carrez;", 1)
    )

    error = grid_error(export, tmp_path / "manifests")

    assert len(error.issues) == 1
    assert str(error.issues[0]).startswith(
        "row 1: column 'Surface Carrez' is missing from the header; the mapping "
    )
    assert not (tmp_path / "manifests").exists()


def test_import_unknown_translated_value(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace("20 %;Libre", "20 %;Bloqué", 1))

    error = grid_error(export, tmp_path / "manifests")

    assert [str(issue) for issue in error.issues] == [
        "row 2, column 'Statut' (U): unknown status 'Bloqué'; add it to the "
        "mapping's translate list (known: 'acté', 'disponible', 'libre', 'option', "
        "'optionné', 'réservé', 'vendu')"
    ]
    assert not (tmp_path / "manifests").exists()


def test_import_lot_number_twice(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace(";010;", ";001;", 1))

    error = grid_error(export, tmp_path / "manifests")

    assert [str(issue) for issue in error.issues] == [
        "row 3, column 'N° lot' (L): lot number '001' of programme PRG-IRIS is "
        "already given at row 2; keep one row per lot"
    ]
    assert not (tmp_path / "manifests").exists()


def test_import_broken_input_keeps_manifests(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    before = read_folder(into)
    export = write_grid(
        tmp_path,
        lambda t: t.replace("62,00", "63,00").replace(";010;", ";001;", 1),
    )

    grid_error(export, into)

    assert read_folder(into) == before


def test_import_skips_unparsable_surface(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace("62,00", "62,0O"))

    report = run_import(export, tmp_path / "manifests")

    assert (
        "  row 3, column 'Surface habitable' (O): unparsable livingArea '62,0O': "
        "expected a number such as 1 234,50"
    ) in render_report(report).splitlines()
    assert lot_states(report)["LOT-IRIS-010"] is LotState.LEFT_OUT
    assert "LOT-IRIS-010" not in (tmp_path / "manifests" / IRIS).read_text(
        encoding="utf-8"
    )


def test_import_strict_writes_nothing(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace("62,00", "62,0O"))

    with pytest.raises(LotGridError) as raised:
        run_import(export, tmp_path / "manifests", strict=True)

    assert [issue.where.row for issue in raised.value.issues if issue.where] == [3]
    assert not (tmp_path / "manifests").exists()


def test_import_skips_invalid_row(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace("44,10 m²", "46,10 m²"))

    report = run_import(export, tmp_path / "manifests")

    issue = report.rejections.lots[("PRG-IRIS", "001")]
    assert str(issue).startswith(
        "row 2, column 'Surface Carrez' (P): Carrez surface 46.10 is above the "
        "surface habitable 45.50"
    )
    assert lot_states(report)["LOT-IRIS-001"] is LotState.LEFT_OUT
    assert lot_states(report)["LOT-IRIS-P01"] is LotState.CREATED


def test_import_invalid_row_leaves_existing_lot(tmp_path: Path) -> None:
    into = tmp_path / "manifests"
    run_import(write_grid(tmp_path), into)
    before = read_folder(into)

    report = run_import(
        write_grid(tmp_path, lambda t: t.replace("44,10 m²", "46,10 m²")), into
    )

    assert read_folder(into) == before
    assert lot_states(report)["LOT-IRIS-001"] is LotState.LEFT_OUT


def test_import_prune_refuses_row_errors(tmp_path: Path) -> None:
    export = write_grid(tmp_path, lambda t: t.replace("62,00", "62,0O"))

    with pytest.raises(LotGridError) as raised:
        run_import(export, tmp_path / "manifests", prune=True)

    messages = [str(issue) for issue in raised.value.issues]
    assert "--prune needs an export without row errors" in messages


def test_import_programme_selection(tmp_path: Path) -> None:
    report = run_import(
        write_grid(tmp_path), tmp_path / "out", programmes=("PRG-IRIS",)
    )

    assert [outcome.up_id for outcome in report.outcomes] == ["PRG-IRIS"]
    assert sorted(read_folder(tmp_path / "out")) == [IRIS]


def test_import_unknown_programme(tmp_path: Path) -> None:
    with pytest.raises(LotGridError) as raised:
        run_import(write_grid(tmp_path), tmp_path / "out", programmes=("PRG-NONE",))

    assert [str(issue) for issue in raised.value.issues] == [
        "programme PRG-NONE has no rows in lot-grid.csv; check --programme"
    ]


def test_cli_import_csv(run_cli: Callable[..., CliResult], workdir: Path) -> None:
    shutil.copyfile(GRID_UTF8, workdir / "lot-grid.csv")

    result = run_cli("import", "csv", "lot-grid.csv", "--mapping", str(GRID_MAPPING))

    assert result.code == 0
    assert result.stdout.splitlines()[-1] == "Wrote 2 manifest(s)."
    assert (workdir / "manifests" / IRIS).exists()


def test_cli_import_broken(run_cli: Callable[..., CliResult], workdir: Path) -> None:
    write_grid(workdir, lambda t: t.replace(";010;", ";001;", 1))

    result = run_cli("import", "csv", "lot-grid.csv", "--mapping", str(GRID_MAPPING))

    assert result.code == 1
    assert result.stdout.splitlines()[-1] == "1 problem(s); nothing was written."
    assert not (workdir / "manifests").exists()


def test_cli_import_invalid_manifests(
    run_cli: Callable[..., CliResult], workdir: Path
) -> None:
    shutil.copyfile(GRID_UTF8, workdir / "lot-grid.csv")
    (workdir / "manifests").mkdir()
    (workdir / "manifests" / "broken.yaml").write_text("apiVersion: v1\n")

    result = run_cli("import", "csv", "lot-grid.csv", "--mapping", str(GRID_MAPPING))

    assert result.code == 1
    assert result.stdout.splitlines()[-1] == (
        "The manifests in manifests are invalid, so nothing was imported; fix them "
        "first (reconciler validate manifests)."
    )


SINGLE_MAPPING = """\
apiVersion: v1
kind: Mapping
numbers: {decimal: ".", thousands: []}
programme:
  name: {constant: Résidence Test}
  address.street: {constant: Rue Haute}
  address.postalCode: {constant: "64700"}
  address.city: {constant: Hendaye}
  promoter.name: {constant: Côte Basque Promotion Démo SAS}
  promoter.siren: {constant: "918730466"}
lots:
  fields:
    upId: {template: "{programme.upId}-{lot.number}"}
    number: {column: lot}
    nature: {column: kind}
    price: {column: price_k, scale: 1000}
    status: {column: status, default: available}
"""


def write_single(folder: Path, rows: str) -> tuple[Path, Path]:
    """Write a one-programme mapping and a comma-separated export."""
    mapping = folder / "single.yaml"
    mapping.write_text(SINGLE_MAPPING, encoding="utf-8")
    export = folder / "single.csv"
    export.write_text("lot,kind,price_k,status\n" + rows, encoding="utf-8")
    return mapping, export


def test_import_single_programme(tmp_path: Path) -> None:
    mapping, export = write_single(tmp_path, "1,parking,12.5,\n2,Cave,6,sold\n")

    run_import(export, tmp_path / "out", mapping=mapping, programmes=("PRG-T",))

    document = yaml.safe_load((tmp_path / "out" / "residence-test.yaml").read_text())
    assert document["upId"] == "PRG-T"
    assert document["lots"][0] == {
        "upId": "PRG-T-1",
        "number": "1",
        "nature": "parking",
        "price": 12500.0,
        "status": "available",
    }
    assert document["lots"][1]["nature"] == "cave"


def test_import_single_needs_programme(tmp_path: Path) -> None:
    mapping, export = write_single(tmp_path, "1,parking,12.5,\n")

    with pytest.raises(LotGridError) as raised:
        run_import(export, tmp_path / "out", mapping=mapping)

    assert [str(issue) for issue in raised.value.issues] == [
        f"the mapping {mapping} reads no programme Up id, so the export is one "
        "programme: name it with one --programme UP_ID"
    ]


def test_import_row_with_extra_cells(tmp_path: Path) -> None:
    mapping, export = write_single(tmp_path, "1,parking,12.5,,oops\n2,cave,6,sold\n")

    report = run_import(export, tmp_path / "out", mapping=mapping, programmes=("P",))

    assert lot_states(report) == {"P-1": LotState.LEFT_OUT, "P-2": LotState.CREATED}
    assert (
        "  row 2: the row has 5 cells but the header has 4; check the separator"
        in render_report(report).splitlines()
    )
