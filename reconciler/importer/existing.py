"""The manifests already in the target folder, read twice: by the project's loader
for their values, and as round-trip trees for editing."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ruamel.yaml.comments import CommentedMap

from reconciler.importer.document import parse_document
from reconciler.manifest import find_manifest_files
from reconciler.manifest import load_manifests
from reconciler.manifest.model import LotManifest
from reconciler.manifest.model import ProgrammeManifest


@dataclass(frozen=True)
class ExistingManifest:
    """One manifest of the target folder: its path, text and loaded values."""

    relative_path: Path
    text: str
    programme: ProgrammeManifest

    def document(self) -> CommentedMap:
        """Return a fresh round-trip tree of the file, to edit."""
        return parse_document(self.text)

    def lot(self, up_id: str) -> LotManifest | None:
        """Return the lot with Up id ``up_id``, if the manifest has one."""
        for lot in self.programme.lots:
            if lot.up_id == up_id:
                return lot
        return None

    def lot_by_number(self, number: str) -> LotManifest | None:
        """Return the lot numbered ``number``, if the manifest has one."""
        for lot in self.programme.lots:
            if lot.number == number:
                return lot
        return None


def load_existing(folder: Path) -> dict[str, ExistingManifest]:
    """Return the manifests under ``folder`` by programme Up id.

    Raises ``ManifestError`` when any of them is invalid, since an import must start
    from manifests that pass ``reconciler validate``.
    """
    if not folder.is_dir() or not find_manifest_files([folder]):
        return {}
    loaded = load_manifests([folder])
    existing = {}
    # Every file is valid here, so the loader returns one programme per file, in
    # file order.
    for path, programme in zip(loaded.files, loaded.programmes, strict=True):
        text = path.read_text(encoding="utf-8-sig")
        relative_path = path.relative_to(folder)
        existing[programme.up_id] = ExistingManifest(relative_path, text, programme)
    return existing
