"""The example manifests under tests/cases, run through ``reconciler validate``.

Each invalid case is a manifest (or a folder of manifests) with one kind of fault,
and a sidecar ``NAME.expected`` holding the exact lines ``validate`` prints for it,
with paths relative to the repository root. Valid cases may have one too, for the
warnings and the summary line.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from reconciler.commands import Console
from reconciler.commands import run_validate
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_OK

REPOSITORY = Path(__file__).resolve().parent.parent
CASES = Path(__file__).resolve().parent / "cases"
MANIFEST_SUFFIXES = (".yaml", ".yml")


def _cases(kind: str) -> list[Path]:
    folder = CASES / kind
    return sorted(
        path
        for path in folder.iterdir()
        if path.is_dir() or path.suffix in MANIFEST_SUFFIXES
    )


def _expected_lines(case: Path) -> list[str]:
    sidecar = case.parent / f"{case.stem if case.is_file() else case.name}.expected"
    return sidecar.read_text(encoding="utf-8").splitlines()


def _validate(case: Path, *, strict: bool = False) -> tuple[int, list[str]]:
    out = io.StringIO()
    console = Console(out=out, err=io.StringIO())
    code = run_validate([case.relative_to(REPOSITORY)], strict=strict, console=console)
    return code, out.getvalue().splitlines()


@pytest.fixture
def in_repository(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from the repository root, so messages name files as the sidecars do."""
    monkeypatch.chdir(REPOSITORY)


@pytest.mark.usefixtures("in_repository")
@pytest.mark.parametrize("case", _cases("invalid"), ids=lambda path: path.stem)
def test_invalid_case(case: Path) -> None:
    code, lines = _validate(case)

    assert lines == _expected_lines(case)
    assert code == EXIT_ERROR


@pytest.mark.usefixtures("in_repository")
@pytest.mark.parametrize("case", _cases("valid"), ids=lambda path: path.stem)
def test_valid_case(case: Path) -> None:
    code, lines = _validate(case)

    assert code == EXIT_OK
    sidecar = case.with_suffix(".expected")
    if sidecar.exists():
        assert lines == _expected_lines(case)


@pytest.mark.usefixtures("in_repository")
def test_errors_of_all_files_in_one_run() -> None:
    """Errors of several files come in one run, sorted by file and line."""
    names = ["several-files", "decimal-comma.yaml", "not-utf8.yaml", "empty.yaml"]
    cases = [CASES / "invalid" / name for name in names]
    expected = [
        line
        for case in sorted(cases)
        for line in _expected_lines(case)
        if not line.endswith("nothing was sent to MyNotary.")
    ]
    out = io.StringIO()
    paths = [case.relative_to(REPOSITORY) for case in cases]

    code = run_validate(paths, strict=False, console=Console(out, io.StringIO()))

    lines = out.getvalue().splitlines()
    assert code == EXIT_ERROR
    assert lines[:-1] == expected
    assert lines[-1] == f"{len(expected)} error(s), 0 warning(s); " + (
        "nothing was sent to MyNotary."
    )


@pytest.mark.usefixtures("in_repository")
def test_warning_strict_fails() -> None:
    code, lines = _validate(CASES / "valid" / "small-dwelling.yaml", strict=True)

    assert code == EXIT_ERROR
    assert lines[-1] == "Failing because of warnings (--strict)."


@pytest.mark.usefixtures("in_repository")
def test_example_manifests_valid() -> None:
    code, lines = _validate(REPOSITORY / "manifests", strict=True)

    assert code == EXIT_OK, "\n".join(lines)


def test_cli_invalid_exit_code(run_cli: Callable[..., Any], workdir: Path) -> None:
    shutil.copy(CASES / "invalid" / "decimal-comma.yaml", workdir / "x.yaml")

    result = run_cli("validate", "x.yaml")

    assert result.code == EXIT_ERROR
    assert result.stdout.splitlines() == [
        "x.yaml:35:17 lots[1].carrezArea: '44,10' is not a number (use a dot: 44.10)",
        "x.yaml:55:17 lots[3].livingArea: '45,50' is not a number (use a dot: 45.50)",
        "2 error(s), 0 warning(s); nothing was sent to MyNotary.",
    ]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_invalid_manifest_sends_nothing(
    command: str, run_cli: Callable[..., Any], served_sandbox: Any, workdir: Path
) -> None:
    """One invalid manifest among valid ones: nothing reaches MyNotary."""
    folder = workdir / "manifests"
    folder.mkdir()
    shutil.copy(CASES / "valid" / "minimal.yaml", folder / "minimal.yaml")
    shutil.copy(CASES / "invalid" / "siren.yaml", folder / "siren.yaml")
    options = ["--auto-approve"] if command == "apply" else []

    result = run_cli(command, *served_sandbox.target_arguments(), *options)

    assert result.code == EXIT_ERROR
    assert result.stdout.splitlines()[-1] == (
        "1 error(s), 0 warning(s); nothing was sent to MyNotary."
    )
    assert served_sandbox.query("SELECT COUNT(*) FROM records") == [(0,)]
