"""The link table: which MyNotary record each Up record is linked to.

Like Terraform's state, the table belongs to one target (a MyNotary URL and
organization) and is rejected for any other. It is a YAML file, rewritten whole and
atomically at the end of an apply. During an apply every change goes first to an
append-only journal beside it (one JSON object per line, flushed and synced to disk
before and after each remote call), so a process killed at any instant loses no
link: the next run replays the journal and rewrites the table.
"""

from __future__ import annotations

import enum
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TextIO

import yaml

from reconciler.errors import ConfigurationError

TABLE_FORMAT_VERSION = 1

logger = logging.getLogger(__name__)

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_HEADER = (
    "# Link table: the MyNotary record each Up record is linked to.\n"
    "# Written by `reconciler apply`; edit it only to repair a link by hand.\n"
)


class LinkState(enum.Enum):
    LINKED = "linked"
    UNLINKED = "unlinked"
    CREATING = "creating"


@dataclass(frozen=True, order=True)
class TargetIdentity:
    """The MyNotary a link table and a plan belong to."""

    url: str
    organization_id: int

    def __str__(self) -> str:
        return f"{self.url} (organization {self.organization_id})"


@dataclass(frozen=True)
class Link:
    """The link of one Up record.

    ``programme`` and ``number`` are the natural key that finds the record on
    MyNotary again when a create's response was lost: the programme's Up id for a
    programme, the lot number within its programme for a lot.
    """

    up_id: str
    kind: str
    state: LinkState
    mynotary_id: int | None
    programme: str | None = None
    number: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Link:
        """Return the link of a journal entry; raise ValueError if it is malformed."""
        mynotary_id = data.get("mynotary_id")
        if mynotary_id is not None and (
            not isinstance(mynotary_id, int) or isinstance(mynotary_id, bool)
        ):
            raise ValueError(f"mynotary_id {mynotary_id!r} is not an integer")
        return cls(
            up_id=str(data["up_id"]),
            kind=str(data["kind"]),
            state=LinkState(data["state"]),
            mynotary_id=mynotary_id,
            programme=data.get("programme"),
            number=data.get("number"),
        )


class LinkTable:
    """The links of one target, backed by a YAML file and its journal."""

    def __init__(self, path: Path, target: TargetIdentity) -> None:
        self.path = path
        self.target = target
        self.links: dict[str, Link] = {}
        self._journal: TextIO | None = None

    @property
    def journal_path(self) -> Path:
        return self.path.with_name(self.path.name + ".journal")

    @classmethod
    def load(cls, path: Path, target: TargetIdentity) -> LinkTable:
        """Read the table at ``path`` and replay its journal, if any.

        A missing file is an empty table. Raises ``ConfigurationError`` when the
        file belongs to another target.
        """
        table = cls(path, target)
        if path.exists():
            table._read_yaml()
        table.replay_journal()
        return table

    def _read_yaml(self) -> None:
        try:
            data = _parse_table(self.path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as error:
            raise ConfigurationError(
                f"can't read link table {self.path}: {error}"
            ) from None
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"link table {self.path} is not UTF-8 text; restore it from git"
            ) from None
        if not isinstance(data, dict) or data.get("version") != TABLE_FORMAT_VERSION:
            raise ConfigurationError(
                f"{self.path} is not a link table of format version "
                f"{TABLE_FORMAT_VERSION}"
            )
        target = data.get("target")
        links = data.get("links") or {}
        if not isinstance(target, dict) or not isinstance(links, dict):
            raise ConfigurationError(
                f"link table {self.path} needs a 'target' mapping and a 'links' "
                "mapping; restore it from git"
            )
        self._check_target(target)
        for up_id, entry in links.items():
            self.links[str(up_id)] = _link_from_yaml(str(up_id), entry)

    def _check_target(self, target: dict[str, Any]) -> None:
        organization = target.get("organizationId")
        if not isinstance(organization, int) or isinstance(organization, bool):
            raise ConfigurationError(
                f"link table {self.path} has no integer target.organizationId; "
                "restore it from git"
            )
        found = TargetIdentity(str(target.get("url")), organization)
        if found != self.target:
            raise ConfigurationError(
                f"link table {self.path} belongs to {found}, not to {self.target}; "
                "pass --links with the table of this target"
            )

    def replay_journal(self) -> int:
        """Apply the journal's entries to the table; return how many were read.

        A line that is not complete JSON is skipped with a warning, because a
        process killed while writing a line leaves one. No remote change is lost
        with it: the line before a remote call is complete before the call is sent.
        A line of JSON that is not a journal entry is an error.
        """
        if not self.journal_path.exists():
            return 0
        try:
            text = self.journal_path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise ConfigurationError(
                f"link table journal {self.journal_path} is not UTF-8 text"
            ) from None
        count = 0
        for number, line in enumerate(text.splitlines(), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                logger.warning(
                    "skipped line %s of %s: not complete JSON, as a write "
                    "interrupted by a crash leaves it",
                    number,
                    self.journal_path,
                )
                continue
            link = _link_from_journal(entry, self.journal_path, number)
            if link is not None:
                self.links[link.up_id] = link
                count += 1
        return count

    def has_journal(self) -> bool:
        return self.journal_path.exists() and self.journal_path.stat().st_size > 0

    def get(self, up_id: str) -> Link | None:
        return self.links.get(up_id)

    def by_mynotary_id(self) -> dict[int, Link]:
        """Return the links that carry a MyNotary id, keyed by that id."""
        return {
            link.mynotary_id: link
            for link in self.links.values()
            if link.mynotary_id is not None
        }

    def record(self, link: Link) -> None:
        """Set ``link`` and append it to the journal, synced to disk."""
        self.links[link.up_id] = link
        self.append_journal({"type": "link", "link": link.to_json()})

    def append_journal(self, entry: dict[str, Any]) -> None:
        """Append one entry to the journal and sync it to disk before returning."""
        if self._journal is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._journal = self.journal_path.open("a", encoding="utf-8")
            if _ends_mid_line(self.journal_path):
                # A process died while writing the last line. End that line, or
                # this run's first entry would join it and be lost on replay.
                self._journal.write("\n")
        self._journal.write(json.dumps(entry, sort_keys=True) + "\n")
        self._journal.flush()
        os.fsync(self._journal.fileno())

    def save(self) -> None:
        """Rewrite the YAML file atomically, then empty the journal."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as output:
            output.write(self.render())
            output.flush()
            os.fsync(output.fileno())
        os.replace(temporary, self.path)
        _sync_folder(self.path.parent)
        self.close_journal()
        if self.journal_path.exists():
            self.journal_path.unlink()
            _sync_folder(self.path.parent)

    def close_journal(self) -> None:
        if self._journal is not None:
            self._journal.close()
            self._journal = None

    def render(self) -> str:
        """Return the table as YAML in JSON's flow style: one line per link, sorted
        by Up id, so that a diff shows one line per link that changed.

        JSON is valid YAML, and it reads about thirty times faster than block YAML
        for the 50,000 links of a large estate.
        """
        target = json.dumps(
            {"url": self.target.url, "organizationId": self.target.organization_id},
            ensure_ascii=False,
        )
        lines = [
            "{",
            f'  "version": {TABLE_FORMAT_VERSION},',
            f'  "target": {target},',
            '  "links": {',
        ]
        entries = [
            f"    {json.dumps(up_id, ensure_ascii=False)}: "
            + json.dumps(_link_to_yaml(self.links[up_id]), ensure_ascii=False)
            for up_id in sorted(self.links)
        ]
        lines.append(",\n".join(entries))
        lines += ["  }", "}"]
        return _HEADER + "\n".join(line for line in lines if line) + "\n"

    def __iter__(self) -> Iterator[Link]:
        return iter(self.links.values())


def _parse_table(text: str) -> Any:
    """Parse a link table: as JSON when it is in the written form, else as YAML,
    so that a table edited by hand in block style is read too."""
    body = "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")
    )
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        return yaml.load(text, Loader=_Loader)


def _link_to_yaml(link: Link) -> dict[str, Any]:
    entry: dict[str, Any] = {"kind": link.kind}
    if link.programme is not None:
        entry["programme"] = link.programme
    if link.number is not None:
        entry["number"] = link.number
    entry["mynotaryId"] = link.mynotary_id
    entry["state"] = link.state.value
    return entry


def _link_from_journal(entry: Any, path: Path, number: int) -> Link | None:
    """Return the link a journal entry records, or None for other entries."""
    if not isinstance(entry, dict):
        raise ConfigurationError(
            f"line {number} of {path} is not a journal entry; remove that line"
        )
    if entry.get("type") != "link":
        return None
    try:
        return Link.from_json(entry["link"])
    except (KeyError, TypeError, ValueError):
        raise ConfigurationError(
            f"line {number} of {path} is not a valid link entry; remove that line"
        ) from None


def _link_from_yaml(up_id: str, entry: Any) -> Link:
    if not isinstance(entry, dict) or "state" not in entry:
        raise ConfigurationError(f"link table entry '{up_id}' is invalid: {entry!r}")
    mynotary_id = entry.get("mynotaryId")
    if mynotary_id is not None and (
        not isinstance(mynotary_id, int) or isinstance(mynotary_id, bool)
    ):
        raise ConfigurationError(
            f"link table entry '{up_id}' has mynotaryId {mynotary_id!r}; expected "
            "an integer id, or null"
        )
    if entry.get("kind", "lot") not in ("programme", "lot"):
        raise ConfigurationError(
            f"link table entry '{up_id}' has kind {entry.get('kind')!r}; expected "
            "programme or lot"
        )
    try:
        state = LinkState(entry["state"])
    except ValueError:
        states = ", ".join(state.value for state in LinkState)
        raise ConfigurationError(
            f"link table entry '{up_id}' has state {entry['state']!r}; "
            f"expected one of {states}"
        ) from None
    return Link(
        up_id=up_id,
        kind=str(entry.get("kind", "lot")),
        state=state,
        mynotary_id=int(mynotary_id) if mynotary_id is not None else None,
        programme=entry.get("programme"),
        number=None if entry.get("number") is None else str(entry["number"]),
    )


def _ends_mid_line(path: Path) -> bool:
    with path.open("rb") as journal:
        if journal.seek(0, os.SEEK_END) == 0:
            return False
        journal.seek(-1, os.SEEK_END)
        return journal.read(1) != b"\n"


def _sync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
