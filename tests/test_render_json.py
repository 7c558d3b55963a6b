"""The JSON rendering of a plan, which is the plan file's format."""

from __future__ import annotations

import json

from sample_plans import sample_plan
from syrupy.assertion import SnapshotAssertion

from reconciler.planfile import SavedPlan
from reconciler.planfile import Sources
from reconciler.planfile import from_json
from reconciler.planfile import render_json

SOURCES = Sources(
    manifest_paths=("manifests",),
    manifest_files=("manifests/residence-d-orio.yaml",),
    manifests_digest="sha256:" + "1" * 64,
    links_path="state/links.yaml",
    links_digest="sha256:" + "2" * 64,
)


def test_json_sample(snapshot: SnapshotAssertion) -> None:
    assert render_json(SavedPlan(sample_plan(), SOURCES)) == snapshot


def test_json_deterministic() -> None:
    first = render_json(SavedPlan(sample_plan(), SOURCES))
    assert first == render_json(SavedPlan(sample_plan(), SOURCES))


def test_json_reads_back() -> None:
    saved = SavedPlan(sample_plan(), SOURCES)
    document = json.loads(render_json(saved))
    assert from_json(document, "plan.json") == saved


def test_json_no_escape_codes_outside_strings() -> None:
    text = render_json(SavedPlan(sample_plan(), SOURCES))
    assert "\x1b" not in text
    assert "\\u001b[31mB" in text
