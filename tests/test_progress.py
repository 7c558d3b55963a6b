"""Progress of plans and applies: a bar on a terminal, plain lines otherwise, never
on standard output."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from resilience import sandbox_settings
from resilience import write_estate

from reconciler import commands
from reconciler.plan import PlanOptions
from reconciler.progress import BarProgress
from reconciler.progress import PlainProgress
from reconciler.progress import Progress
from reconciler.progress import progress_for
from reconciler.sandbox.server import running_server

if TYPE_CHECKING:
    from conftest import CliResult

RunCli = Callable[..., "CliResult"]


class Terminal(io.StringIO):
    """A text stream whose ``isatty`` returns True."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_progress_for_terminal() -> None:
    assert isinstance(progress_for(Terminal(), {}), BarProgress)


def test_progress_for_pipe() -> None:
    assert isinstance(progress_for(io.StringIO(), {}), PlainProgress)


def test_progress_for_ci_terminal() -> None:
    assert isinstance(progress_for(Terminal(), {"CI": "true"}), PlainProgress)


def test_plain_progress_short_task_silent() -> None:
    stream = io.StringIO()
    progress = PlainProgress(stream, interval=10, clock=FakeClock())

    with progress.task("Reading lots", 3) as advance:
        for _ in range(3):
            advance(1)

    assert stream.getvalue() == ""


def test_plain_progress_lines_every_interval() -> None:
    stream = io.StringIO()
    clock = FakeClock()
    progress = PlainProgress(stream, interval=10, clock=clock)

    with progress.task("Applying changes", 8) as advance:
        for _ in range(8):
            clock.now += 4
            advance(1)

    # A line once 10 s have passed since the last one, and one at the end.
    assert stream.getvalue().splitlines() == [
        "Applying changes: 3/8 (38%), 12 s",
        "Applying changes: 6/8 (75%), 24 s",
        "Applying changes: 8/8 (100%), 32 s, done",
    ]


def test_progress_base_shows_nothing() -> None:
    progress = Progress()

    with progress.task("Reading lots", 2) as advance:
        advance(2)
        printed = progress.print_line("line", Terminal())

    assert printed is False


def test_bar_progress_line_above_bar() -> None:
    terminal = Terminal()
    output = Terminal()
    progress = BarProgress(terminal)

    with progress.task("Applying changes", 2) as advance:
        printed = progress.print_line("+ created lot 1 [LOT-1]", output)
        advance(1)
    after = progress.print_line("Apply finished", output)

    assert printed is True
    assert "+ created lot 1 [LOT-1]" in terminal.getvalue()
    assert output.getvalue() == ""
    assert after is False


def test_bar_progress_piped_output_untouched() -> None:
    terminal = Terminal()
    piped = io.StringIO()
    console = commands.Console(out=piped, err=terminal, progress=BarProgress(terminal))

    with console.progress.task("Applying changes", 1):
        console.print("+ created lot 1 [LOT-1]")

    assert piped.getvalue() == "+ created lot 1 [LOT-1]\n"
    assert "created" not in terminal.getvalue()


# Commands against a served sandbox


@pytest.fixture
def estate(tmp_path: Path) -> Path:
    folder = tmp_path / "manifests"
    write_estate(folder, programmes=3, lots=4)
    return folder


def test_apply_progress_on_stderr(tmp_path: Path, estate: Path) -> None:
    out = io.StringIO()
    err = io.StringIO()
    console = commands.Console(
        out=out, err=err, progress=PlainProgress(err, interval=0)
    )

    with running_server(tmp_path / "sandbox.db") as url:
        settings = sandbox_settings(url, tmp_path / "links.yaml")
        request = commands.ApplyRequest(
            plan=commands.PlanRequest([estate], settings, PlanOptions()),
            auto_approve=True,
            parallelism=2,
            confirm=lambda: True,
        )
        applied = commands.run_apply(request, console)
        planned = commands.run_plan(
            commands.PlanRequest([estate], settings, PlanOptions(), parallelism=1),
            detailed_exitcode=True,
            console=console,
        )

    progress_lines = err.getvalue().splitlines()
    assert applied == 0
    assert planned == 0
    assert "Applying changes: 15/15 (100%), 0 s, done" in progress_lines
    assert "Reading lots: 3/3 (100%), 0 s, done" in progress_lines
    assert "Applying changes" not in out.getvalue()
    assert "Reading lots" not in out.getvalue()
    assert out.getvalue().count("+ created") == 15


def test_cli_plan_piped_no_progress(
    tmp_path: Path, estate: Path, run_cli: RunCli
) -> None:
    with running_server(tmp_path / "sandbox.db") as url:
        result = run_cli(
            "plan",
            str(estate),
            *("--url", url, "--organization", "1", "--user", "1"),
            *("--links", str(tmp_path / "links.yaml"), "--parallelism", "3"),
        )

    assert result.code == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout.startswith(f"Target: {url} (organization 1)\n")
