"""Fixtures shared by the plan, link table, apply and command-line tests.

End-to-end tests run the installed ``reconciler`` command in a subprocess, in a
temporary working folder, against the sandbox served on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.sandbox.server import running_server

FIXTURES = Path(__file__).parent / "fixtures"
BRETONNIERE = FIXTURES / "residence-bretonniere.yaml"
ASCOUBIA = FIXTURES / "residence-ascoubia.yaml"

# Seconds a command-line run may take before the test fails instead of hanging.
CLI_TIMEOUT = 120

# Variables that would change which target a subprocess uses, or its colours.
_TARGET_VARIABLES = ("CI", "NO_COLOR")
_TARGET_PREFIX = "MYNOTARY_"

Document = dict[str, Any]


def clean_environment(**extra: str) -> dict[str, str]:
    """Return this process's environment without target settings, plus ``extra``."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in _TARGET_VARIABLES and not name.startswith(_TARGET_PREFIX)
    }
    environment.update(extra)
    return environment


@pytest.fixture
def manifest_document() -> Document:
    """Return the Bretonnière fixture manifest as a mapping the test may change."""
    document: Document = yaml.safe_load(BRETONNIERE.read_text(encoding="utf-8"))
    return document


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Make an empty working folder the current one, so file names are relative."""
    folder = tmp_path / "work"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def write_manifest(workdir: Path) -> Callable[..., Path]:
    """Return a function that writes a manifest mapping under ``manifests/``."""

    def write(document: Document, name: str = "residence-bretonniere.yaml") -> Path:
        path = workdir / "manifests" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def manifests(workdir: Path) -> Path:
    """Copy both fixture manifests, unchanged, into ``manifests/`` of ``workdir``."""
    folder = workdir / "manifests"
    folder.mkdir()
    for source in (BRETONNIERE, ASCOUBIA):
        shutil.copyfile(source, folder / source.name)
    return folder


@dataclass(frozen=True)
class ServedSandbox:
    """A sandbox served on 127.0.0.1, and the SQLite file that stores its records."""

    url: str
    database: Path

    def target_arguments(self, links: str = "links.yaml") -> list[str]:
        """Return the command-line options that point at this sandbox."""
        return [
            *("--url", self.url),
            *("--organization", "1", "--user", "1"),
            *("--links", links),
        ]

    def query(self, sql: str, *arguments: Any) -> list[tuple[Any, ...]]:
        """Run a read-only query on the store, through a connection of its own."""
        connection = sqlite3.connect(f"file:{self.database}?mode=ro", uri=True)
        try:
            return connection.execute(sql, arguments).fetchall()
        finally:
            connection.close()

    def lot_numbers(self, programme_reference: str) -> list[str]:
        """Return the lot numbers of the programme with this Up id, sorted."""
        rows = self.query(
            "SELECT json_extract(lot.questions, '$.numero_lot') FROM records lot"
            " JOIN records programme ON lot.programme_id = programme.id"
            " WHERE programme.external_reference = ?",
            programme_reference,
        )
        return sorted(str(row[0]) for row in rows)

    def programme_count(self, programme_reference: str) -> int:
        """Return how many programme records carry this Up id."""
        rows = self.query(
            "SELECT COUNT(*) FROM records WHERE external_reference = ?",
            programme_reference,
        )
        return int(rows[0][0])


@pytest.fixture
def served_sandbox(tmp_path: Path) -> Iterator[ServedSandbox]:
    """Serve an empty sandbox on 127.0.0.1 for the length of one test."""
    database = tmp_path / "sandbox.db"
    with running_server(database) as url:
        yield ServedSandbox(url, database)


@dataclass(frozen=True)
class CliResult:
    """What one run of the command printed, and its exit code."""

    code: int
    stdout: str
    stderr: str


def _entry_point() -> Path:
    # The console script sits beside the interpreter of the environment the project
    # is installed in, in the development venv as in the one .ci/run creates.
    return Path(sys.executable).with_name("reconciler")


@pytest.fixture
def run_cli(workdir: Path) -> Callable[..., CliResult]:
    """Return a function that runs ``reconciler ARGS`` in a subprocess in ``workdir``.

    The environment has no target settings except those in ``extra_env``.
    """
    entry_point = _entry_point()
    if not entry_point.exists():
        pytest.fail(f"{entry_point} is missing; install the project with pip -e .")

    def run(*arguments: str, extra_env: dict[str, str] | None = None) -> CliResult:
        completed = subprocess.run(
            [str(entry_point), *arguments],
            cwd=workdir,
            env=clean_environment(**(extra_env or {})),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=CLI_TIMEOUT,
            check=False,
        )
        return CliResult(completed.returncode, completed.stdout, completed.stderr)

    return run
