"""The ``reconciler`` command run in a subprocess: exit codes, output streams,
target selection and error reporting."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from reconciler.commands import SANDBOX_NOTICE

if TYPE_CHECKING:
    from conftest import CliResult
    from conftest import ServedSandbox

RunCli = Callable[..., "CliResult"]

ISSUE_LINE = re.compile(
    r"^(?P<file>[^:\s]+):(?P<line>\d+):(?P<column>\d+) (?P<path>\S+): .+$"
)
SECRET_KEY = "mk_test_7d4e1f0a9b2c"
NOT_SANDBOX = (
    "error: no MyNotary URL is set and CI is set, so the sandbox is not used: "
    "set MYNOTARY_URL (or --url), or pass --target sandbox\n"
)


@pytest.fixture
def unused_target() -> list[str]:
    """Return target options for a loopback port that nothing listens on.

    Retries are off, so a request that should not have been sent fails at once.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    return ["--url", url, "--organization", "1", "--user", "1", "--max-retries", "0"]


def edit_manifest(path: Path, *replacements: tuple[str, str]) -> None:
    text = path.read_text(encoding="utf-8")
    for old, new in replacements:
        assert old in text, f"{old!r} is not in {path}"
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")


def break_siren(manifests: Path) -> Path:
    path = manifests / "residence-bretonniere.yaml"
    edit_manifest(path, ('"918730466"', '"918730467"'))
    return path


def line_and_column(path: Path, needle: str) -> tuple[int, int]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if needle in line:
            return number, line.index(needle) + 1
    raise AssertionError(f"{needle!r} is not in {path}")


# validate


def test_cli_validate_valid(manifests: Path, run_cli: RunCli) -> None:
    result = run_cli("validate")

    assert result.code == 0
    assert result.stdout == (
        "2 manifest(s) valid: 2 programme(s), 5 lot(s), 0 warning(s).\n"
    )


def test_cli_validate_invalid(manifests: Path, run_cli: RunCli) -> None:
    path = break_siren(manifests)
    line, column = line_and_column(path, '"918730467"')

    result = run_cli("validate")

    assert result.code == 1
    assert len(result.stdout.splitlines()) == 2
    assert result.stdout.startswith(
        f"manifests/residence-bretonniere.yaml:{line}:{column} promoter.siren: "
        "'918730467' is not a valid SIREN"
    )
    assert result.stdout.splitlines()[1] == (
        "1 error(s), 0 warning(s); nothing was sent to MyNotary."
    )


def test_cli_validate_line_format(manifests: Path, run_cli: RunCli) -> None:
    path = manifests / "residence-ascoubia.yaml"
    edit_manifest(path, ("vatRate: 20", "vatRate: twenty"), ('"64700"', '"647"'))
    line, column = line_and_column(path, '"647"')

    result = run_cli("validate", "manifests/residence-ascoubia.yaml")
    issues = result.stdout.splitlines()[:-1]
    matches = [ISSUE_LINE.match(issue) for issue in issues]

    assert result.code == 1
    assert len(issues) == 3
    for issue, match in zip(issues, matches, strict=True):
        assert match is not None, issue
    assert [match["path"] for match in matches if match] == [
        "address.postalCode",
        "lots[0].vatRate",
        "lots[1].vatRate",
    ]
    assert issues[0].startswith(
        f"manifests/residence-ascoubia.yaml:{line}:{column} address.postalCode: "
    )


def test_cli_validate_strict_warning(manifests: Path, run_cli: RunCli) -> None:
    path = manifests / "residence-ascoubia.yaml"
    edit_manifest(
        path,
        ("livingArea: 61.00", "livingArea: 8.00"),
        ("carrezArea: 60.02", "carrezArea: 7.50"),
    )
    line, column = line_and_column(path, "8.00")

    relaxed = run_cli("validate")
    strict = run_cli("validate", "--strict")

    assert relaxed.code == 0
    assert relaxed.stdout.startswith(
        f"manifests/residence-ascoubia.yaml:{line}:{column} lots[0].livingArea: "
        "warning: "
    )
    assert strict.code == 1
    assert strict.stdout.splitlines()[-1] == "Failing because of warnings (--strict)."


def test_cli_validate_missing_path(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("validate", "nowhere")

    assert result.code == 1
    assert result.stdout.splitlines()[0] == (
        "nowhere:1:1: no such file or folder; pass manifest files or folders"
    )


# plan


def test_cli_plan_invalid_sends_nothing(
    manifests: Path, run_cli: RunCli, unused_target: list[str]
) -> None:
    break_siren(manifests)

    result = run_cli("plan", *unused_target)

    assert result.code == 1
    assert "1 error(s), 0 warning(s); nothing was sent to MyNotary." in (
        result.stdout.splitlines()
    )
    assert result.stderr == ""


def test_cli_plan_unreachable(
    manifests: Path, run_cli: RunCli, unused_target: list[str]
) -> None:
    # The counterpart of the test above. With valid manifests the same URL is
    # tried, and the failure to connect is reported on one line.
    result = run_cli("plan", *unused_target)

    assert result.code == 1
    assert result.stderr.startswith(
        "error: MyNotary request GET /records?organizationId=1"
    )
    assert "ConnectError" in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_cli_plan_exit_codes(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()

    plain = run_cli("plan", *target)
    detailed = run_cli("plan", "--detailed-exitcode", *target)

    assert plain.code == 0
    assert detailed.code == 2
    assert plain.stdout == detailed.stdout


def test_cli_plan_blocked(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    Path("links.yaml").unlink()

    result = run_cli("plan", "--detailed-exitcode", *target)

    # Both programmes are duplicate candidates. Their lots are not listed,
    # because the programme's problem must be fixed first.
    summary = (
        "Plan blocked: 2 problem(s) to fix before any change is applied "
        "(0 to create, 0 to update, 0 to link, 0 to unlink planned)."
    )
    assert result.code == 1
    assert summary in result.stdout.splitlines()


def test_cli_key_not_printed(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()
    environment = {"MYNOTARY_API_KEY": SECRET_KEY}

    result = run_cli("--debug", "plan", *target, extra_env=environment)

    assert result.code == 0
    assert "GET /records" in result.stderr
    assert SECRET_KEY not in result.stdout
    assert SECRET_KEY not in result.stderr


# apply needs approval: see test_apply.py


# status


def test_cli_status_text(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    edit_manifest(
        manifests / "residence-bretonniere.yaml",
        ("livingArea: 45.50", "livingArea: 46.00"),
    )

    result = run_cli("status", *target)
    lines = result.stdout.splitlines()
    flat = next(index for index, line in enumerate(lines) if "LOT-TEST-BRET-2" in line)

    assert result.code == 0
    assert lines[0].split() == ["UP", "ID", "RECORD", "LINK", "SYNC"]
    assert lines[flat].endswith("out of sync")
    assert lines[flat + 1] == "    livingArea: Up 46.00 / MyNotary 45.50"
    assert lines[-1] == "7 records: 6 in sync, 1 not."


def test_cli_status_json(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    edit_manifest(
        manifests / "residence-bretonniere.yaml",
        ("livingArea: 45.50", "livingArea: 46.00"),
    )

    result = run_cli("status", "--format", "json", *target)
    document = json.loads(result.stdout)
    rows = {row["upId"]: row for row in document["records"]}
    flat = rows["LOT-TEST-BRET-2"]

    assert result.code == 0
    assert document["target"] == f"{served_sandbox.url} (organization 1)"
    assert len(rows) == 7
    assert flat["sync"] == "out of sync"
    assert flat["link"] == f"linked #{flat['mynotaryId']}"
    assert flat["differences"] == [
        {"field": "livingArea", "up": "46.00", "mynotary": "45.50"}
    ]
    assert rows["LOT-TEST-BRET-3"]["sync"] == "in sync"


def test_cli_status_before_apply(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    result = run_cli("status", "--format", "json", *served_sandbox.target_arguments())
    rows = json.loads(result.stdout)["records"]

    assert result.code == 0
    assert {row["sync"] for row in rows} == {"not on MyNotary"}
    assert {row["link"] for row in rows} == {"not linked"}


def test_cli_status_blocked_programme(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    target = served_sandbox.target_arguments()
    assert run_cli("apply", "--auto-approve", *target).code == 0
    Path("links.yaml").unlink()

    result = run_cli("status", "--format", "json", *target)
    rows = {row["upId"]: row for row in json.loads(result.stdout)["records"]}

    assert result.code == 0
    assert rows["PRG-TEST-BRET"]["sync"] == "blocked"
    assert rows["LOT-TEST-BRET-2"]["sync"] == "blocked"
    assert rows["LOT-TEST-BRET-2"]["detail"] == (
        "not compared: its programme is blocked"
    )


# Errors and --debug


def test_cli_error_one_line(workdir: Path, run_cli: RunCli) -> None:
    url = "http://mynotary.example.test"

    result = run_cli("plan", "--url", url, "--organization", "1", "--user", "1")

    assert result.code == 1
    assert result.stderr == (
        f"error: MyNotary URL '{url}' uses plain http to a remote host; use https\n"
    )


def test_cli_debug_traceback(workdir: Path, run_cli: RunCli) -> None:
    url = "http://mynotary.example.test"

    result = run_cli(
        "--debug", "plan", "--url", url, "--organization", "1", "--user", "1"
    )

    assert result.code == 1
    assert result.stderr.startswith("Traceback (most recent call last):\n")
    assert result.stderr.splitlines()[-1] == (
        "reconciler.errors.ConfigurationError: MyNotary URL "
        f"'{url}' uses plain http to a remote host; use https"
    )


def test_cli_links_of_other_target(
    manifests: Path, served_sandbox: ServedSandbox, run_cli: RunCli
) -> None:
    assert run_cli("apply", "--auto-approve").code == 0

    result = run_cli("plan", *served_sandbox.target_arguments(".reconciler/links.yaml"))

    assert result.code == 1
    assert result.stderr == (
        "error: link table .reconciler/links.yaml belongs to sandbox "
        f"(organization 1), not to {served_sandbox.url} (organization 1); "
        "pass --links with the table of this target\n"
    )


def test_cli_help_lists_exit_codes(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("plan", "--help")

    assert result.code == 0
    assert "2 changes pending" in " ".join(result.stdout.split())


# The embedded sandbox


def test_cli_embedded_sandbox_default(manifests: Path, run_cli: RunCli) -> None:
    result = run_cli("plan")

    assert result.code == 0
    assert result.stderr == SANDBOX_NOTICE + "\n"
    assert "notice" not in result.stdout
    assert result.stdout.startswith("Target: sandbox (organization 1)\n")
    assert Path(".reconciler/sandbox.db").exists()


def test_cli_embedded_sandbox_apply(manifests: Path, run_cli: RunCli) -> None:
    applied = run_cli("apply", "--auto-approve")
    after = run_cli("plan", "--detailed-exitcode")

    assert applied.code == 0
    assert applied.stderr.count(SANDBOX_NOTICE) == 1
    assert after.code == 0
    assert Path(".reconciler/links.yaml").exists()


def test_cli_ci_without_url(manifests: Path, run_cli: RunCli) -> None:
    result = run_cli("plan", extra_env={"CI": "1"})

    assert result.code == 1
    assert result.stderr == NOT_SANDBOX
    assert result.stdout == ""
    assert not Path(".reconciler").exists()


def test_cli_api_key_without_url(manifests: Path, run_cli: RunCli) -> None:
    result = run_cli("plan", extra_env={"MYNOTARY_API_KEY": SECRET_KEY})

    assert result.code == 1
    assert result.stderr == NOT_SANDBOX.replace("CI is set", "an API key is set")
    assert SECRET_KEY not in result.stderr


def test_cli_explicit_sandbox_in_ci(manifests: Path, run_cli: RunCli) -> None:
    result = run_cli("plan", "--target", "sandbox", extra_env={"CI": "1"})

    assert result.code == 0
    assert result.stdout.startswith("Target: sandbox (organization 1)\n")


@pytest.mark.parametrize(
    "arguments",
    [("plan", "--formt", "json"), ("bogus",), ("drift", "--format", "yaml")],
)
def test_cli_usage_error_exits_one(run_cli: RunCli, arguments: tuple[str, ...]) -> None:
    result = run_cli(*arguments)

    assert result.code == 1
    assert "Error:" in result.stderr


@pytest.mark.usefixtures("workdir")
def test_cli_module_exit_code() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "reconciler", "validate", "missing-folder"],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1
