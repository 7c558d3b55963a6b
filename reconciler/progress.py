"""Progress of long plans and applies, shown on standard error.

On a terminal, a rich progress bar, removed when its task ends. When standard
error is not a terminal, or ``CI`` is set, plain lines instead: one every
``PLAIN_INTERVAL`` seconds while a task runs, and a last one when it ends, so a
task shorter than the interval prints nothing. Progress never goes to standard
output, which contains the plan and the applied changes.

Commands open a task with ``Progress.task`` and hand its ``advance`` callback to
the domain modules, which never see this module.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import TextIO

from rich.console import Console as RichConsole
from rich.progress import BarColumn
from rich.progress import MofNCompleteColumn
from rich.progress import Progress as RichProgressBar
from rich.progress import TextColumn
from rich.progress import TimeElapsedColumn
from rich.progress import TimeRemainingColumn
from rich.text import Text

# Seconds between two plain progress lines; CI logs get a few lines per long task.
PLAIN_INTERVAL = 10.0

Advance = Callable[[int], None]


class Progress:
    """Shows nothing: the progress of commands run by tests or as a library."""

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        """Show a task of ``total`` steps while the block runs; yield ``advance``."""
        yield _ignore

    def print_line(self, text: str, stream: TextIO) -> bool:
        """Print a line of output above a live bar; False if there is none."""
        return False


def _ignore(steps: int) -> None:
    return None


def progress_for(stream: TextIO, environ: Mapping[str, str]) -> Progress:
    """Return a bar when ``stream`` is a terminal outside CI, else plain lines."""
    if stream.isatty() and not environ.get("CI"):
        return BarProgress(stream)
    return PlainProgress(stream)


class PlainProgress(Progress):
    """Plain lines on ``stream`` for tasks that outlast ``interval`` seconds."""

    def __init__(
        self,
        stream: TextIO,
        *,
        interval: float = PLAIN_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stream = stream
        self._interval = interval
        self._clock = clock

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        line = _PlainTask(description, total, self._interval, self._clock)
        yield lambda steps: self._write(line.advance(steps))
        self._write(line.finish())

    def _write(self, line: str | None) -> None:
        if line is None:
            return
        self._stream.write(line + "\n")
        self._stream.flush()


class _PlainTask:
    """The lines of one task: due every ``interval`` seconds, and at the end."""

    def __init__(
        self,
        description: str,
        total: int,
        interval: float,
        clock: Callable[[], float],
    ) -> None:
        self.description = description
        self.total = total
        self.done = 0
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last_line = self._started
        self._has_printed = False

    def advance(self, steps: int) -> str | None:
        self.done += steps
        now = self._clock()
        if now - self._last_line < self._interval:
            return None
        self._last_line = now
        self._has_printed = True
        return self._line(now)

    def finish(self) -> str | None:
        if not self._has_printed:
            return None
        return self._line(self._clock()) + ", done"

    def _line(self, now: float) -> str:
        share = self.done / self.total if self.total else 1.0
        return (
            f"{self.description}: {self.done}/{self.total} ({share:.0%}),"
            f" {now - self._started:.0f} s"
        )


class BarProgress(Progress):
    """A rich progress bar on the terminal ``stream``."""

    def __init__(self, stream: TextIO) -> None:
        self._console = RichConsole(file=stream)
        self._bar: RichProgressBar | None = None

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Advance]:
        bar = RichProgressBar(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        with bar:
            task_id = bar.add_task(description, total=total)
            self._bar = bar
            try:
                yield lambda steps: bar.advance(task_id, steps)
            finally:
                self._bar = None

    def print_line(self, text: str, stream: TextIO) -> bool:
        # A line written straight to the terminal under a live bar would be drawn
        # over; printed by the bar's console, it goes above the bar. Output that
        # goes to a file or a pipe is written there as usual.
        if self._bar is None or not stream.isatty():
            return False
        self._bar.console.print(Text.from_ansi(text), soft_wrap=True)
        return True
