"""The README's first run: ``reconciler sandbox demo && reconciler plan`` on a
copy of the project's example manifests, in the embedded sandbox."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from syrupy.assertion import SnapshotAssertion

if TYPE_CHECKING:
    from conftest import CliResult

RunCli = Callable[..., "CliResult"]

PROJECT_MANIFESTS = Path(__file__).parents[1] / "manifests"


@pytest.fixture
def demo(workdir: Path, run_cli: RunCli) -> CliResult:
    """Copy the example manifests into ``workdir`` and load the demo scenario."""
    shutil.copytree(PROJECT_MANIFESTS, workdir / "manifests")
    return run_cli("sandbox", "demo")


def test_demo_loads(demo: CliResult) -> None:
    assert demo.code == 0
    assert demo.stdout.splitlines()[0] == "Sandbox reset in .reconciler/ with:"
    assert demo.stdout.splitlines()[-1] == "Next: reconciler plan"


def test_demo_plan_every_action(
    demo: CliResult, run_cli: RunCli, snapshot: SnapshotAssertion
) -> None:
    result = run_cli("plan")
    lines = result.stdout.splitlines()

    assert result.code == 0
    for action in ("+ create", "~ update", "<= link", "- unlink"):
        assert any(line.startswith(f"  {action} ") for line in lines), action
    assert result.stdout == snapshot


def test_demo_plan_same_bytes(demo: CliResult, run_cli: RunCli) -> None:
    # Different hash seeds change the iteration order of sets and of dicts built
    # from them, so equal output shows the plan does not depend on it.
    first = run_cli("plan", extra_env={"PYTHONHASHSEED": "1"})
    second = run_cli("plan", extra_env={"PYTHONHASHSEED": "2024"})

    assert first.stdout.encode() == second.stdout.encode()


def test_demo_apply_then_clean(demo: CliResult, run_cli: RunCli) -> None:
    applied = run_cli("apply", "--auto-approve")
    after = run_cli("plan", "--detailed-exitcode")

    assert applied.code == 0
    assert after.code == 0
    assert "No changes. MyNotary matches the manifests." in after.stdout.splitlines()


def test_demo_reset(demo: CliResult, run_cli: RunCli) -> None:
    assert run_cli("apply", "--auto-approve").code == 0

    again = run_cli("sandbox", "demo")
    plan = run_cli("plan", "--detailed-exitcode")

    assert again.code == 0
    assert plan.code == 2
