"""The fast paths for valid manifests agree with the slow paths that write messages.

The loader reads regular files without positions, and the schema check tries a
compiled validator first; both fall back to the full reading or to jsonschema.
These tests check that both ways give the same data and the same verdict.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from benchmarks.estate import render_manifest
from reconciler.manifest.loader import _IRREGULAR
from reconciler.manifest.loader import LoadedFile
from reconciler.manifest.loader import LoadError
from reconciler.manifest.loader import _build_fast
from reconciler.manifest.loader import _Builder
from reconciler.manifest.loader import _Loader
from reconciler.manifest.loader import load_file
from reconciler.manifest.schema import _is_valid_fast
from reconciler.manifest.schema import _validator
from reconciler.manifest.schema import text_paths

ROOT = Path(__file__).parent.parent
CASE_FILES = sorted((ROOT / "tests" / "cases").rglob("*.yaml"))
EXAMPLE_FILES = sorted((ROOT / "manifests").glob("*.yaml"))
TEXT_PATHS = text_paths("v1")


def _read_slowly(text: str) -> LoadedFile:
    loaded = LoadedFile("m.yaml", None)
    builder = _Builder(loaded, TEXT_PATHS)
    for event in yaml.parse(text, Loader=_Loader):
        builder.feed(event)
    return loaded


def _texts() -> list[tuple[str, str]]:
    texts = [
        (path.name, path.read_bytes().decode("utf-8-sig", "replace"))
        for path in CASE_FILES
    ]
    texts += [(path.name, path.read_text(encoding="utf-8")) for path in EXAMPLE_FILES]
    texts.append(("generated", render_manifest(3, 40)))
    return texts


@pytest.mark.parametrize(("name", "text"), _texts(), ids=lambda value: str(value)[:40])
def test_fast_loader_same_data(name: str, text: str) -> None:
    try:
        slow = _read_slowly(text)
    except (yaml.YAMLError, LoadError):
        assert _build_fast(text, TEXT_PATHS) is _IRREGULAR
        return
    fast = _build_fast(text, TEXT_PATHS)
    if slow.issues or slow.data is None:
        assert fast is _IRREGULAR
    else:
        assert fast == slow.data


def test_fast_loader_positions_on_demand(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(render_manifest(1, 3), encoding="utf-8")
    loaded = load_file(path, "m.yaml", text_paths=TEXT_PATHS)

    location = loaded.locate(("lots", 1, "number"))

    assert (location.line, location.column) == (31, 13)


@pytest.mark.parametrize("path", CASE_FILES + EXAMPLE_FILES, ids=lambda path: path.name)
def test_compiled_validator_same_verdict(path: Path) -> None:
    try:
        loaded = load_file(path, path.name, text_paths=TEXT_PATHS)
    except LoadError as error:
        if error.loaded is None:
            pytest.skip("the loader rejects this file before any schema check")
        loaded = error.loaded
    if not isinstance(loaded.data, dict):
        pytest.skip("not a mapping: rejected before any schema check")
    is_valid = not any(True for _ in _validator("v1").iter_errors(loaded.data))

    assert _is_valid_fast("v1", loaded.data) is is_valid
