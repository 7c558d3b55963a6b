"""The link table: its YAML file, its target check and its journal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from reconciler.errors import ConfigurationError
from reconciler.links import Link
from reconciler.links import LinkState
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity

TARGET = TargetIdentity("https://mynotary.test/api", 1)
OTHER_TARGET = TargetIdentity("https://mynotary.test/api", 2)

PROGRAMME = Link("PRG-1", "programme", LinkState.LINKED, 1001)
FLAT = Link("LOT-1-2", "lot", LinkState.LINKED, 1102, "PRG-1", "2")
CELLAR = Link("LOT-1-3", "lot", LinkState.UNLINKED, 1103, "PRG-1", "3")
PARKING = Link("LOT-1-1", "lot", LinkState.CREATING, None, "PRG-1", "01")


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "links.yaml"


def table_with(path: Path, *links: Link) -> LinkTable:
    table = LinkTable(path, TARGET)
    for link in links:
        table.links[link.up_id] = link
    return table


def journal_line(link: Link) -> str:
    return json.dumps({"type": "link", "link": link.to_json()}) + "\n"


def test_links_round_trip(path: Path) -> None:
    table_with(path, PROGRAMME, FLAT, CELLAR, PARKING).save()

    loaded = LinkTable.load(path, TARGET)

    assert loaded.links == {
        "PRG-1": PROGRAMME,
        "LOT-1-2": FLAT,
        "LOT-1-3": CELLAR,
        "LOT-1-1": PARKING,
    }


def test_links_yaml_layout(path: Path) -> None:
    table_with(path, PROGRAMME, FLAT).save()

    document = yaml.safe_load(path.read_text(encoding="utf-8"))

    assert document == {
        "version": 1,
        "target": {"url": "https://mynotary.test/api", "organizationId": 1},
        "links": {
            "LOT-1-2": {
                "kind": "lot",
                "programme": "PRG-1",
                "number": "2",
                "mynotaryId": 1102,
                "state": "linked",
            },
            "PRG-1": {"kind": "programme", "mynotaryId": 1001, "state": "linked"},
        },
    }


def test_links_saved_sorted(path: Path) -> None:
    table_with(path, PROGRAMME, FLAT, PARKING).save()

    keys = list(yaml.safe_load(path.read_text(encoding="utf-8"))["links"])

    assert keys == ["LOT-1-1", "LOT-1-2", "PRG-1"]


def test_links_number_stays_text(path: Path) -> None:
    table_with(path, PARKING).save()

    loaded = LinkTable.load(path, TARGET)

    assert loaded.links["LOT-1-1"].number == "01"


def test_links_missing_file_empty(path: Path) -> None:
    table = LinkTable.load(path, TARGET)

    assert table.links == {}


def test_links_other_target_rejected(path: Path) -> None:
    table_with(path, PROGRAMME).save()

    with pytest.raises(ConfigurationError) as caught:
        LinkTable.load(path, OTHER_TARGET)

    assert str(caught.value) == (
        f"link table {path} belongs to https://mynotary.test/api (organization 1), "
        "not to https://mynotary.test/api (organization 2); pass --links with the "
        "table of this target"
    )


def test_links_other_url_rejected(path: Path) -> None:
    table_with(path, PROGRAMME).save()
    sandbox = TargetIdentity("sandbox", 1)

    with pytest.raises(ConfigurationError, match="pass --links"):
        LinkTable.load(path, sandbox)


def test_links_not_a_table(path: Path) -> None:
    path.parent.mkdir(parents=True)
    path.write_text("links: {}\n", encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        LinkTable.load(path, TARGET)

    assert str(caught.value) == (f"{path} is not a link table of format version 1")


def test_links_invalid_state(path: Path) -> None:
    table_with(path, PROGRAMME).save()
    text = path.read_text(encoding="utf-8")
    text = text.replace('"state": "linked"', '"state": "gone"')
    path.write_text(text, encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        LinkTable.load(path, TARGET)

    assert str(caught.value) == (
        "link table entry 'PRG-1' has state 'gone'; "
        "expected one of linked, unlinked, creating"
    )


def test_links_journal_replayed(path: Path) -> None:
    table_with(path, PROGRAMME).save()
    table = LinkTable.load(path, TARGET)
    table.record(PARKING)
    table.record(Link("LOT-1-1", "lot", LinkState.LINKED, 1101, "PRG-1", "01"))
    table.record(FLAT)
    table.close_journal()

    reloaded = LinkTable.load(path, TARGET)

    assert reloaded.links == {
        "PRG-1": PROGRAMME,
        "LOT-1-1": Link("LOT-1-1", "lot", LinkState.LINKED, 1101, "PRG-1", "01"),
        "LOT-1-2": FLAT,
    }


def test_links_journal_written_by_hand(path: Path) -> None:
    path.parent.mkdir(parents=True)
    journal = path.with_name("links.yaml.journal")
    journal.write_text(journal_line(PROGRAMME) + journal_line(PARKING), "utf-8")

    table = LinkTable.load(path, TARGET)

    assert table.links == {"PRG-1": PROGRAMME, "LOT-1-1": PARKING}


def test_links_journal_last_line_incomplete(path: Path) -> None:
    path.parent.mkdir(parents=True)
    journal = path.with_name("links.yaml.journal")
    journal.write_text(journal_line(PROGRAMME) + journal_line(FLAT)[:40], "utf-8")

    table = LinkTable.load(path, TARGET)

    assert table.links == {"PRG-1": PROGRAMME}


def test_links_journal_after_incomplete_line(path: Path) -> None:
    # A run after a crash mid-line appends to the same journal. Its first entry
    # must start a new line, or a second crash would lose it.
    path.parent.mkdir(parents=True)
    journal = path.with_name("links.yaml.journal")
    journal.write_text(journal_line(PROGRAMME) + journal_line(FLAT)[:40], "utf-8")
    table = LinkTable.load(path, TARGET)
    table.record(CELLAR)
    table.close_journal()

    reloaded = LinkTable.load(path, TARGET)

    assert reloaded.links == {"PRG-1": PROGRAMME, "LOT-1-3": CELLAR}


def test_links_journal_later_entry_wins(path: Path) -> None:
    table_with(path, FLAT).save()
    path.with_name("links.yaml.journal").write_text(journal_line(CELLAR), "utf-8")
    moved = Link("LOT-1-2", "lot", LinkState.UNLINKED, 1102, "PRG-1", "2")
    table = LinkTable.load(path, TARGET)
    table.record(moved)
    table.close_journal()

    reloaded = LinkTable.load(path, TARGET)

    assert reloaded.links == {"LOT-1-2": moved, "LOT-1-3": CELLAR}


def test_links_save_empties_journal(path: Path) -> None:
    table = LinkTable.load(path, TARGET)
    table.record(PROGRAMME)

    table.save()

    assert not table.journal_path.exists()
    assert not table.has_journal()
    assert LinkTable.load(path, TARGET).links == {"PRG-1": PROGRAMME}


def test_links_save_leaves_no_temporary(path: Path) -> None:
    table_with(path, PROGRAMME).save()

    assert sorted(item.name for item in path.parent.iterdir()) == ["links.yaml"]


def test_links_by_mynotary_id(path: Path) -> None:
    table = table_with(path, PROGRAMME, FLAT, PARKING)

    assert table.by_mynotary_id() == {1001: PROGRAMME, 1102: FLAT}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            "mynotaryId: abc\n    state: linked",
            "link table entry 'LOT-1' has mynotaryId 'abc'; expected an integer id, "
            "or null",
        ),
        (
            "mynotaryId: 3\n    state: linked\n    kind: cellar",
            "link table entry 'LOT-1' has kind 'cellar'; expected programme or lot",
        ),
    ],
)
def test_links_hand_edit_invalid(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "links.yaml"
    path.write_text(
        "version: 1\ntarget:\n  url: sandbox\n  organizationId: 1\n"
        f"links:\n  LOT-1:\n    {entry}\n",
        encoding="utf-8",
    )

    with pytest.raises(ConfigurationError) as error:
        LinkTable.load(path, TargetIdentity("sandbox", 1))

    assert str(error.value) == message


def test_links_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "links.yaml"
    path.write_bytes(b"version: 1\ntarget: {url: caf\xe9}\n")

    with pytest.raises(ConfigurationError) as error:
        LinkTable.load(path, TargetIdentity("sandbox", 1))

    assert (
        str(error.value) == f"link table {path} is not UTF-8 text; restore it from git"
    )


@pytest.mark.parametrize("line", ["[1]", '{"type": "link", "link": {}}'])
def test_links_journal_entry_invalid(tmp_path: Path, line: str) -> None:
    path = tmp_path / "links.yaml"
    (tmp_path / "links.yaml.journal").write_text(line + "\n", encoding="utf-8")

    with pytest.raises(ConfigurationError) as error:
        LinkTable.load(path, TargetIdentity("sandbox", 1))

    assert str(error.value).startswith(f"line 1 of {path}.journal is not a")


def test_links_one_line_per_link(path: Path) -> None:
    table_with(path, PROGRAMME, FLAT).save()

    lines = path.read_text(encoding="utf-8").splitlines()

    assert [line for line in lines if '"state"' in line] == [
        '    "LOT-1-2": {"kind": "lot", "programme": "PRG-1", "number": "2", '
        '"mynotaryId": 1102, "state": "linked"},',
        '    "PRG-1": {"kind": "programme", "mynotaryId": 1001, "state": "linked"}',
    ]


def test_links_block_yaml_read(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "# Edited by hand in block style.\n"
        "version: 1\n"
        "target:\n"
        "  url: https://mynotary.test/api\n"
        "  organizationId: 1\n"
        "links:\n"
        "  PRG-1:\n"
        "    kind: programme\n"
        "    mynotaryId: 1001\n"
        "    state: linked\n",
        encoding="utf-8",
    )

    assert LinkTable.load(path, TARGET).links == {"PRG-1": PROGRAMME}
