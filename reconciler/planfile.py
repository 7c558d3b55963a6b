"""Saved plans: the JSON plan file, and the digests that tie a plan to its inputs.

``docs/plan-format.md`` describes the format. A saved plan is the plan plus an
envelope: format and tool versions, the manifest files and the link table it was
computed from (each as a SHA-256 digest of the file bytes), and the plan digest.

Values are written by their field's kind, so they read back exactly: decimals as
strings with their digits ("57.50"), dates as ISO text, integers as JSON integers,
references as lists of strings. No API key or other secret is part of a plan.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from decimal import InvalidOperation
from pathlib import Path
from typing import Any

from reconciler import __version__
from reconciler.errors import ReconcilerError
from reconciler.fields import FIELDS_BY_NAME
from reconciler.fields import FieldKind
from reconciler.links import LinkTable
from reconciler.links import TargetIdentity
from reconciler.normalize import Value
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import FieldChange
from reconciler.plan import Plan
from reconciler.plan import Problem

FORMAT_VERSION = 1
TOOL_NAME = "reconciler"

# Hex digits kept of the SHA-256 of a plan's changes: 64 bits, short enough to
# read in a pull request and to type, long enough that no edit finds the same
# digest by chance.
PLAN_DIGEST_LENGTH = 16


class PlanFileError(ReconcilerError):
    """A plan file can't be read: missing, not JSON, or not of a known format."""


@dataclass(frozen=True)
class Sources:
    """The inputs a plan was computed from, as digests of their bytes.

    ``manifest_paths`` are the PATHS given to ``plan``; ``manifest_files`` the
    manifest files found under them, in sorted order.
    """

    manifest_paths: tuple[str, ...]
    manifest_files: tuple[str, ...]
    manifests_digest: str
    links_path: str
    links_digest: str
    recreate_missing: bool = False


@dataclass(frozen=True)
class SavedPlan:
    """A plan with the envelope that lets ``apply --plan`` check it is still fresh."""

    plan: Plan
    sources: Sources
    tool_version: str = __version__
    format_version: int = FORMAT_VERSION

    @property
    def digest(self) -> str:
        return plan_digest(self.plan)

    @property
    def plan_id(self) -> str:
        """The identity of this plan file, recorded when it is applied.

        It is the SHA-256 of the file's content, so the same plan of the same
        inputs and record versions has the same id.
        """
        body = canonical_json(_envelope(self))
        return hashlib.sha256(body.encode("utf-8")).hexdigest()


# Digests


def plan_digest(plan: Plan) -> str:
    """Return the short digest of the plan's changes.

    It covers each change's action, kind, programme, Up id and MyNotary id, and
    each field's before and after values, in plan order; not record versions, the
    envelope or problems. The same changes always give the same digest.
    """
    body = canonical_json([change_identity(change) for change in plan.changes])
    return hashlib.sha256(body.encode("utf-8")).hexdigest()[:PLAN_DIGEST_LENGTH]


def change_identity(change: Change) -> dict[str, Any]:
    """Return the part of a change that the plan digest covers."""
    return {
        "action": change.action.value,
        "kind": change.kind,
        "programme": change.programme_up_id,
        "upId": change.up_id,
        "mynotaryId": change.mynotary_id,
        "fields": [
            [
                item.name,
                encode_value(item.name, item.before),
                encode_value(item.name, item.after),
            ]
            for item in change.fields
        ],
    }


def digest_files(paths: Iterable[Path], names: Iterable[str]) -> str:
    """Return the SHA-256 of the files' names and bytes, in the order given.

    A missing file counts as absent, which differs from an empty file.
    """
    digest = hashlib.sha256()
    for path, name in zip(paths, names, strict=True):
        digest.update(name.encode("utf-8") + b"\0")
        try:
            content = path.read_bytes()
        except FileNotFoundError:
            digest.update(b"absent\0")
            continue
        digest.update(f"{len(content)}\0".encode())
        digest.update(content)
    return "sha256:" + digest.hexdigest()


def digest_manifests(files: Iterable[Path]) -> tuple[tuple[str, ...], str]:
    """Return the manifest files' names, sorted, and the digest of their bytes."""
    ordered = sorted(files, key=_relative_name)
    names = tuple(_relative_name(path) for path in ordered)
    return names, digest_files(ordered, names)


def digest_link_table(links_path: Path) -> str:
    """Return the digest of the link table file and of its journal, if any."""
    journal = links_path.with_name(links_path.name + ".journal")
    return digest_files([links_path, journal], ["table", "journal"])


def _relative_name(path: Path) -> str:
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path.as_posix()
    return Path(relative).as_posix() if not relative.startswith("..") else str(path)


def canonical_json(value: Any) -> str:
    """Return ``value`` as JSON with sorted keys and no spaces, for digests."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


# Values


def encode_value(name: str, value: Value) -> Any:
    """Return a field's value as a JSON value that reads back exactly."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, tuple):
        return list(value)
    return value


def decode_value(name: str, raw: Any, where: str) -> Value:
    """Return the value of the field ``name`` written as ``raw`` in a plan file."""
    spec = FIELDS_BY_NAME.get(name)
    if spec is None:
        raise PlanFileError(f"{where}: unknown field '{name}'")
    if raw is None:
        return None
    try:
        return _decode_kind(spec.kind, raw)
    except (ValueError, TypeError, InvalidOperation):
        raise PlanFileError(
            f"{where}: invalid {spec.kind.value} value {raw!r} for field '{name}'"
        ) from None


def _decode_kind(kind: FieldKind, raw: Any) -> Value:
    match kind:
        case FieldKind.DECIMAL:
            return Decimal(_expect(raw, str))
        case FieldKind.DATE:
            return datetime.date.fromisoformat(_expect(raw, str))
        case FieldKind.INTEGER:
            if isinstance(raw, bool):
                raise TypeError("a boolean is not an integer")
            return int(_expect(raw, int))
        case FieldKind.REFERENCES:
            items = _expect(raw, list)
            return tuple(_expect(item, str) for item in items)
        case FieldKind.TEXT | FieldKind.ENUM:
            return str(_expect(raw, str))


def _expect(raw: Any, kind: type) -> Any:
    if not isinstance(raw, kind):
        raise TypeError(f"expected {kind.__name__}")
    return raw


# Writing


def to_json(saved: SavedPlan) -> dict[str, Any]:
    """Return the plan file's JSON document; the plan digest is its last member."""
    document = _envelope(saved)
    document["planId"] = saved.plan_id
    document["digest"] = saved.digest
    return document


def _envelope(saved: SavedPlan) -> dict[str, Any]:
    plan = saved.plan
    sources = saved.sources
    return {
        "formatVersion": saved.format_version,
        "tool": {"name": TOOL_NAME, "version": saved.tool_version},
        "target": {
            "url": plan.target.url,
            "organizationId": plan.target.organization_id,
        },
        "sources": {
            "manifests": {
                "paths": list(sources.manifest_paths),
                "files": list(sources.manifest_files),
                "digest": sources.manifests_digest,
            },
            "linkTable": {"path": sources.links_path, "digest": sources.links_digest},
            "recreateMissing": sources.recreate_missing,
        },
        "summary": {action.value: plan.count(action) for action in Action}
        | {"problems": len(plan.problems)},
        "changes": [_change_to_json(change) for change in plan.changes],
        "problems": [_problem_to_json(problem) for problem in plan.problems],
    }


def _change_to_json(change: Change) -> dict[str, Any]:
    return {
        "action": change.action.value,
        "kind": change.kind,
        "upId": change.up_id,
        "mynotaryId": change.mynotary_id,
        "previousId": change.previous_id,
        "version": change.version,
        "programme": {"upId": change.programme_up_id, "name": change.programme_name},
        "label": change.label,
        "lotNumber": change.lot_number,
        "reason": change.reason,
        "fields": [
            {
                "name": item.name,
                "before": encode_value(item.name, item.before),
                "after": encode_value(item.name, item.after),
            }
            for item in change.fields
        ],
        "desired": {
            name: encode_value(name, value) for name, value in change.desired.items()
        },
    }


def _problem_to_json(problem: Problem) -> dict[str, Any]:
    return {
        "upId": problem.up_id,
        "where": problem.where,
        "message": problem.message,
        "fix": problem.fix,
    }


def render_json(saved: SavedPlan) -> str:
    """Return the plan file's text: indented JSON, keys in a fixed order."""
    return json.dumps(to_json(saved), indent=2, ensure_ascii=False) + "\n"


def write_plan_file(saved: SavedPlan, path: Path) -> None:
    """Write the plan file atomically, so a reader never sees half a plan."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(render_json(saved), encoding="utf-8")
    os.replace(temporary, path)


# Reading


def read_plan_file(path: Path) -> SavedPlan:
    """Read and check a plan file; raise ``PlanFileError`` with the fix if invalid."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanFileError(
            f"plan file {path} does not exist; write one with `reconciler plan "
            f"--out {path}`"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PlanFileError(f"plan file {path} is not valid JSON: {error}") from None
    return from_json(document, str(path))


def from_json(document: Any, where: str) -> SavedPlan:
    """Return the saved plan of a plan file's JSON document."""
    if not isinstance(document, dict):
        raise PlanFileError(f"{where} is not a plan file: expected a JSON object")
    _check_versions(document, where)
    try:
        saved = _read_document(document, where)
    except (KeyError, TypeError, ValueError) as error:
        raise PlanFileError(
            f"{where} is not a valid plan file (format version {FORMAT_VERSION}): "
            f"{type(error).__name__} {error}; write it again with `reconciler plan "
            "--out`"
        ) from None
    _check_digest(saved, document, where)
    return saved


def _check_versions(document: dict[str, Any], where: str) -> None:
    version = document.get("formatVersion")
    if version != FORMAT_VERSION:
        raise PlanFileError(
            f"{where} has plan format version {version!r}; this reconciler reads "
            f"version {FORMAT_VERSION}: run `reconciler plan --out` again"
        )
    tool = document.get("tool") or {}
    if tool.get("version") != __version__:
        raise PlanFileError(
            f"{where} was made by reconciler {tool.get('version')}, not by this "
            f"version ({__version__}): run `reconciler plan --out` again"
        )


def _read_document(document: dict[str, Any], where: str) -> SavedPlan:
    target = document["target"]
    plan = Plan(
        TargetIdentity(str(target["url"]), int(target["organizationId"])),
        tuple(
            _change_from_json(item, f"{where}: changes[{index}]")
            for index, item in enumerate(document["changes"])
        ),
        tuple(_problem_from_json(item) for item in document["problems"]),
    )
    sources = document["sources"]
    manifests = sources["manifests"]
    return SavedPlan(
        plan,
        Sources(
            manifest_paths=tuple(str(path) for path in manifests["paths"]),
            manifest_files=tuple(str(name) for name in manifests["files"]),
            manifests_digest=str(manifests["digest"]),
            links_path=str(sources["linkTable"]["path"]),
            links_digest=str(sources["linkTable"]["digest"]),
            recreate_missing=bool(sources.get("recreateMissing", False)),
        ),
        tool_version=str(document["tool"]["version"]),
        format_version=int(document["formatVersion"]),
    )


def _change_from_json(item: Mapping[str, Any], where: str) -> Change:
    fields = tuple(
        FieldChange(
            str(field["name"]),
            decode_value(str(field["name"]), field["before"], where),
            decode_value(str(field["name"]), field["after"], where),
        )
        for field in item["fields"]
    )
    desired = {
        str(name): decode_value(str(name), raw, where)
        for name, raw in item["desired"].items()
    }
    return Change(
        Action(item["action"]),
        kind=str(item["kind"]),
        up_id=str(item["upId"]),
        programme_up_id=str(item["programme"]["upId"]),
        programme_name=str(item["programme"]["name"]),
        label=str(item["label"]),
        mynotary_id=_optional_int(item["mynotaryId"]),
        previous_id=_optional_int(item["previousId"]),
        version=_optional_int(item["version"]),
        fields=fields,
        desired=desired,
        reason=item["reason"],
        lot_number=item["lotNumber"],
    )


def _optional_int(raw: Any) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int):
        raise TypeError(f"expected an integer id or version, found {raw!r}")
    return raw


def _problem_from_json(item: Mapping[str, Any]) -> Problem:
    return Problem(
        str(item["upId"]), str(item["where"]), str(item["message"]), str(item["fix"])
    )


def _check_digest(saved: SavedPlan, document: dict[str, Any], where: str) -> None:
    # The digest is what reviewers approve, so a file whose changes were edited
    # by hand after it was written must not pass for the approved plan.
    if document.get("digest") != saved.digest:
        raise PlanFileError(
            f"{where} was edited after it was written: its digest is "
            f"{document.get('digest')!r} but its changes have digest {saved.digest}; "
            "run `reconciler plan --out` again"
        )


def sources_of(
    paths: Iterable[Path],
    files: Iterable[Path],
    links: LinkTable,
    *,
    recreate_missing: bool,
) -> Sources:
    """Return the sources record of a plan computed from these inputs."""
    names, manifests_digest = digest_manifests(files)
    return Sources(
        manifest_paths=tuple(_relative_name(path) for path in paths),
        manifest_files=names,
        manifests_digest=manifests_digest,
        links_path=_relative_name(links.path),
        links_digest=digest_link_table(links.path),
        recreate_missing=recreate_missing,
    )
