"""The plan file format: exact round trip, digests, and files that are refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from sample_plans import TARGET
from sample_plans import empty_plan
from sample_plans import lot_update
from sample_plans import sample_plan

from reconciler import __version__
from reconciler.links import LinkTable
from reconciler.plan import Plan
from reconciler.planfile import PlanFileError
from reconciler.planfile import SavedPlan
from reconciler.planfile import Sources
from reconciler.planfile import digest_link_table
from reconciler.planfile import digest_manifests
from reconciler.planfile import from_json
from reconciler.planfile import plan_digest
from reconciler.planfile import read_plan_file
from reconciler.planfile import sources_of
from reconciler.planfile import to_json
from reconciler.planfile import write_plan_file

SOURCES = Sources(
    manifest_paths=("manifests",),
    manifest_files=("manifests/residence-d-orio.yaml",),
    manifests_digest="sha256:" + "1" * 64,
    links_path="state/links.yaml",
    links_digest="sha256:" + "2" * 64,
)


def saved(plan: Plan | None = None) -> SavedPlan:
    return SavedPlan(plan or sample_plan(), SOURCES)


def test_planfile_round_trip_exact(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(saved(), path)

    loaded = read_plan_file(path)

    assert loaded == saved()


def test_planfile_decimal_keeps_digits() -> None:
    document = to_json(saved())
    update = document["changes"][1]
    assert update["fields"][0] == {
        "name": "livingArea",
        "before": "57.50",
        "after": "45.50",
    }


def test_planfile_date_iso() -> None:
    document = to_json(saved())
    assert document["changes"][0]["fields"][1]["after"] == "2017-01-20"


def test_planfile_envelope() -> None:
    document = to_json(saved())
    assert document["formatVersion"] == 1
    assert document["tool"] == {"name": "reconciler", "version": __version__}
    assert document["target"] == {
        "url": "https://mynotary.test/api",
        "organizationId": 1,
    }
    assert document["summary"] == {
        "create": 1,
        "update": 3,
        "link": 1,
        "unlink": 1,
        "problems": 0,
    }
    assert list(document)[-1] == "digest"


def test_planfile_change_record_versions() -> None:
    document = to_json(saved())
    assert [change["version"] for change in document["changes"]] == [
        3,
        1,
        None,
        4,
        None,
        2,
    ]


def test_digest_same_changes_same_digest() -> None:
    assert plan_digest(sample_plan()) == plan_digest(sample_plan())


def test_digest_ignores_versions() -> None:
    plan = Plan(TARGET, (lot_update(),), ())
    bumped = Plan(TARGET, (dataclasses.replace(lot_update(), version=9),), ())
    assert plan_digest(plan) == plan_digest(bumped)


def test_digest_ignores_envelope() -> None:
    other = dataclasses.replace(SOURCES, manifests_digest="sha256:" + "3" * 64)
    assert SavedPlan(sample_plan(), other).digest == saved().digest


def test_digest_changes_with_a_value() -> None:
    change = lot_update()
    fields = (dataclasses.replace(change.fields[0], after=change.fields[0].before),)
    edited = Plan(TARGET, (dataclasses.replace(change, fields=fields),), ())
    assert plan_digest(edited) != plan_digest(Plan(TARGET, (change,), ()))


def test_digest_changes_with_mynotary_id() -> None:
    change = lot_update()
    moved = Plan(TARGET, (dataclasses.replace(change, mynotary_id=9999),), ())
    assert plan_digest(moved) != plan_digest(Plan(TARGET, (change,), ()))


def test_digest_is_short_hex() -> None:
    digest = plan_digest(empty_plan())
    assert len(digest) == 16
    assert int(digest, 16) >= 0


def test_plan_id_changes_with_versions() -> None:
    plan = Plan(TARGET, (lot_update(),), ())
    bumped = Plan(TARGET, (dataclasses.replace(lot_update(), version=9),), ())
    assert SavedPlan(plan, SOURCES).plan_id != SavedPlan(bumped, SOURCES).plan_id


def test_planfile_missing(tmp_path: Path) -> None:
    with pytest.raises(PlanFileError) as raised:
        read_plan_file(tmp_path / "plan.json")
    assert str(raised.value) == (
        f"plan file {tmp_path / 'plan.json'} does not exist; write one with "
        f"`reconciler plan --out {tmp_path / 'plan.json'}`"
    )


def test_planfile_not_json(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text("{", encoding="utf-8")
    with pytest.raises(PlanFileError, match="is not valid JSON"):
        read_plan_file(path)


def test_planfile_other_format_version() -> None:
    document = to_json(saved())
    document["formatVersion"] = 2
    with pytest.raises(PlanFileError) as raised:
        from_json(document, "plan.json")
    assert str(raised.value) == (
        "plan.json has plan format version 2; this reconciler reads version 1: run "
        "`reconciler plan --out` again"
    )


def test_planfile_other_tool_version() -> None:
    document = to_json(saved())
    document["tool"]["version"] = "0.0.1"
    with pytest.raises(PlanFileError, match=r"was made by reconciler 0\.0\.1"):
        from_json(document, "plan.json")


def test_planfile_edited_value_refused() -> None:
    document = to_json(saved())
    document["changes"][1]["fields"][0]["after"] = "99.00"
    with pytest.raises(PlanFileError, match="was edited after it was written"):
        from_json(document, "plan.json")


def test_planfile_invalid_decimal() -> None:
    document = to_json(saved())
    document["changes"][1]["fields"][0]["after"] = "forty"
    with pytest.raises(PlanFileError) as raised:
        from_json(document, "plan.json")
    assert str(raised.value) == (
        "plan.json: changes[1]: invalid decimal value 'forty' for field 'livingArea'"
    )


def test_planfile_unknown_field() -> None:
    document = to_json(saved())
    document["changes"][1]["fields"][0]["name"] = "colour"
    with pytest.raises(PlanFileError, match="unknown field 'colour'"):
        from_json(document, "plan.json")


def test_planfile_missing_member() -> None:
    document = to_json(saved())
    del document["changes"][0]["upId"]
    with pytest.raises(PlanFileError, match="is not a valid plan file"):
        from_json(document, "plan.json")


def test_planfile_no_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    key = "KEY-planfile-must-never-hold-4f1c"
    monkeypatch.setenv("MYNOTARY_API_KEY", key)
    write_plan_file(saved(), Path("plan.json"))
    assert key not in Path("plan.json").read_text(encoding="utf-8")


def test_digest_manifests_sorted_and_relative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "b.yaml").write_text("b", encoding="utf-8")
    (tmp_path / "a.yaml").write_text("a", encoding="utf-8")

    names, digest = digest_manifests([tmp_path / "b.yaml", Path("a.yaml")])
    _, same = digest_manifests([Path("a.yaml"), Path("b.yaml")])

    assert names == ("a.yaml", "b.yaml")
    assert digest == same


def test_digest_manifests_follows_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.yaml"
    path.write_text("name: A\n", encoding="utf-8")
    _, before = digest_manifests([path])
    path.write_text("name: A \n", encoding="utf-8")
    _, after = digest_manifests([path])
    assert before != after


def test_digest_link_table_includes_journal(tmp_path: Path) -> None:
    table = tmp_path / "links.yaml"
    table.write_text("version: 1\n", encoding="utf-8")
    before = digest_link_table(table)
    (tmp_path / "links.yaml.journal").write_text("{}\n", encoding="utf-8")
    assert digest_link_table(table) != before


def test_digest_link_table_missing_differs_from_empty(tmp_path: Path) -> None:
    table = tmp_path / "links.yaml"
    missing = digest_link_table(table)
    table.write_bytes(b"")
    assert digest_link_table(table) != missing


def test_sources_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    manifest = Path("manifests") / "a.yaml"
    manifest.parent.mkdir()
    manifest.write_text("a", encoding="utf-8")
    links = LinkTable(Path("state") / "links.yaml", TARGET)

    sources = sources_of([Path("manifests")], [manifest], links, recreate_missing=True)

    assert sources.manifest_paths == ("manifests",)
    assert sources.manifest_files == ("manifests/a.yaml",)
    assert sources.links_path == "state/links.yaml"
    assert sources.recreate_missing is True


def test_planfile_text_is_json_with_fixed_order(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    write_plan_file(saved(), path)
    document = json.loads(path.read_text(encoding="utf-8"))
    assert list(document) == [
        "formatVersion",
        "tool",
        "target",
        "sources",
        "summary",
        "changes",
        "problems",
        "planId",
        "digest",
    ]
