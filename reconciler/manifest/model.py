"""Programmes and lots as read from valid manifests: the desired state."""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.normalize import Value


@dataclass(frozen=True)
class LinkIntent:
    """A link set by hand in a manifest: attach to a MyNotary id, or never push."""

    attach: int | None = None
    is_unlinked: bool = False
    reason: str | None = None


@dataclass(frozen=True)
class LotManifest:
    """One lot of a programme, with its normalized fields."""

    up_id: str
    fields: dict[str, Value]
    link: LinkIntent | None

    @property
    def number(self) -> str:
        return str(self.fields["number"])

    @property
    def nature(self) -> str:
        return str(self.fields["nature"])


@dataclass(frozen=True)
class ProgrammeManifest:
    """One programme manifest: the programme's fields, link intent and lots."""

    up_id: str
    file: str
    fields: dict[str, Value]
    link: LinkIntent | None
    lots: tuple[LotManifest, ...]

    @property
    def name(self) -> str:
        return str(self.fields["name"])
