"""The text rendering of a plan: the digest line and colour only on a terminal."""

from __future__ import annotations

import io
import os
import pty
import select
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import CliResult
from conftest import clean_environment
from sample_plans import sample_plan
from syrupy.assertion import SnapshotAssertion

from reconciler import cli
from reconciler.planfile import plan_digest
from reconciler.render.text import format_field
from reconciler.render.text import render_plan

ESCAPE = "\x1b["


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_text_sample(snapshot: SnapshotAssertion) -> None:
    assert render_plan(sample_plan()) == snapshot


def test_text_ends_with_digest() -> None:
    text = render_plan(sample_plan())
    assert text.endswith(f"\nPlan digest: {plan_digest(sample_plan())}\n")


def test_console_colours_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert ESCAPE in cli._console().styler("+", "green")


def test_console_no_colour_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setattr(sys, "stdout", _Terminal())
    assert cli._console().styler("+", "green") == "+"


def test_console_no_colour_when_piped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert cli._console().styler("+", "green") == "+"


def _run_on_terminal(arguments: list[str], environment: dict[str, str]) -> str:
    """Run ``reconciler`` with a pseudo-terminal as standard output; return it."""
    leader, follower = pty.openpty()
    entry_point = Path(sys.executable).with_name("reconciler")
    process = subprocess.Popen(
        [str(entry_point), *arguments],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=environment,
        cwd=os.getcwd(),
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode("utf-8", errors="replace")


@pytest.fixture
def demo_folder(workdir: Path, run_cli: Callable[..., CliResult]) -> Path:
    manifests = Path(__file__).parents[1] / "manifests"
    target = workdir / "manifests"
    target.mkdir()
    for manifest in manifests.glob("*.yaml"):
        (target / manifest.name).write_bytes(manifest.read_bytes())
    result = run_cli("sandbox", "demo")
    assert result.code == 0, result.stderr
    return workdir


def test_plan_coloured_on_terminal(demo_folder: Path) -> None:
    output = _run_on_terminal(["plan"], clean_environment())
    assert ESCAPE in output


def test_plan_no_colour_with_no_color_on_terminal(demo_folder: Path) -> None:
    output = _run_on_terminal(["plan"], clean_environment(NO_COLOR="1"))
    assert "Plan digest:" in output
    assert ESCAPE not in output


def test_plan_no_colour_when_piped(
    demo_folder: Path, run_cli: Callable[..., CliResult]
) -> None:
    result = run_cli("plan")
    assert "Plan digest:" in result.stdout
    assert ESCAPE not in result.stdout + result.stderr


def test_text_escape_code_shown_escaped() -> None:
    text = render_plan(sample_plan())
    assert "\x1b" not in text
    assert 'building: "\\x1b[31mB\\x1b[0m" → "B"' in text


def test_text_shows_invisible_spaces() -> None:
    assert format_field("name", "R\u00e9sidence\u00a0Ascoubia") == (
        '"R\u00e9sidence<U+00A0>Ascoubia"'
    )
