"""Static checks of the GitHub workflows, which can't run on these machines.

check-jsonschema validates them against its bundled GitHub workflow schema,
offline. The other tests check the points the workflows must keep: least
privilege, the approval gate, one apply at a time, the fork guard, the schedule
and secrets that only reach the steps that need them, never a log.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

WORKFLOWS = Path(__file__).parents[1] / ".github" / "workflows"
# The workflows of the review loop; the structural checks apply to every workflow.
NAMES = ("tests.yml", "plan.yml", "apply.yml", "drift.yml")
ALL = tuple(sorted(path.name for path in WORKFLOWS.glob("*.yml")))
PARIS = ZoneInfo("Europe/Paris")

Workflow = dict[str, Any]


def load(name: str) -> Workflow:
    # PyYAML reads the key `on` as True (YAML 1.1), so it is put back as "on".
    document: Workflow = yaml.safe_load((WORKFLOWS / name).read_text("utf-8"))
    if True in document:
        document["on"] = document.pop(True)  # type: ignore[call-overload]
    return document


def steps(workflow: Workflow) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_present() -> None:
    assert set(NAMES) <= set(ALL)


def test_workflows_match_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [
            str(checker),
            "--builtin-schema",
            "vendor.github-workflows",
            *(str(WORKFLOWS / name) for name in ALL),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", ALL)
def test_workflow_denies_by_default(name: str) -> None:
    assert load(name)["permissions"] == {}


@pytest.mark.parametrize("name", ALL)
def test_workflow_every_job_has_permissions(name: str) -> None:
    for job_name, job in load(name)["jobs"].items():
        assert "permissions" in job, f"{name}: job {job_name} has no permissions"
        assert job["permissions"] not in ("write-all", "read-all")


@pytest.mark.parametrize("name", ALL)
def test_workflow_checkout_keeps_no_credentials(name: str) -> None:
    for step in steps(load(name)):
        if str(step.get("uses", "")).startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False


def test_tests_on_push_and_pull_request() -> None:
    assert set(load("tests.yml")["on"]) == {"push", "pull_request"}


def test_plan_on_pull_request_paths() -> None:
    trigger = load("plan.yml")["on"]
    assert set(trigger) == {"pull_request"}
    assert trigger["pull_request"]["paths"] == [
        "manifests/**",
        "schemas/**",
        "state/links.yaml",
    ]


def test_plan_fork_guard() -> None:
    jobs = load("plan.yml")["jobs"]
    same = "github.event.pull_request.head.repo.full_name == github.repository"
    fork = "github.event.pull_request.head.repo.full_name != github.repository"
    assert jobs["plan"]["if"] == same
    assert jobs["fork"]["if"] == fork
    explanation = "\n".join(step.get("run", "") for step in jobs["fork"]["steps"])
    assert "GitHub gives its workflows no secrets" in explanation
    assert "secrets." not in yaml.safe_dump(jobs["fork"])


def test_plan_job_permissions() -> None:
    jobs = load("plan.yml")["jobs"]
    assert jobs["plan"]["permissions"] == {
        "contents": "read",
        "pull-requests": "write",
    }
    assert jobs["fork"]["permissions"] == {"contents": "read"}


def test_plan_comment_and_artifact() -> None:
    plan_steps = load("plan.yml")["jobs"]["plan"]["steps"]
    commands = " ".join(str(step.get("run", "")) for step in plan_steps)
    uploads = [step for step in plan_steps if "upload-artifact" in step.get("uses", "")]
    assert "reconciler plan --detailed-exitcode --out plan.json" in commands
    assert "reconciler github comment-plan" in commands
    assert uploads[0]["with"] == {"name": "reconciler-plan", "path": "plan.json"}


def test_apply_on_main_only() -> None:
    trigger = load("apply.yml")["on"]
    assert set(trigger) == {"push"}
    assert trigger["push"]["branches"] == ["main"]


def test_apply_environment_and_concurrency() -> None:
    job = load("apply.yml")["jobs"]["apply"]
    assert job["environment"] == "mynotary"
    assert job["concurrency"] == {
        "group": "reconciler-apply",
        "cancel-in-progress": False,
    }
    assert job["needs"] == "approved-plan"
    assert job["permissions"] == {"contents": "write"}


def test_apply_uses_approved_digest() -> None:
    workflow = load("apply.yml")
    job = workflow["jobs"]["apply"]
    runs = [str(step.get("run", "")) for step in job["steps"]]
    approved = workflow["jobs"]["approved-plan"]
    assert job["env"]["EXPECTED_DIGEST"] == (
        "${{ needs.approved-plan.outputs.digest }}"
    )
    assert 'reconciler apply --expect-digest "$EXPECTED_DIGEST"' in runs
    assert approved["permissions"] == {"contents": "read", "pull-requests": "read"}
    assert "reconciler github approved-digest" in str(approved["steps"])


def test_apply_commits_link_table_even_on_failure() -> None:
    job = load("apply.yml")["jobs"]["apply"]
    commit = next(
        step for step in job["steps"] if "commit-state" in step.get("run", "")
    )
    assert commit["if"].startswith("always()")


def test_drift_schedule_early_morning_paris() -> None:
    trigger = load("drift.yml")["on"]
    assert "workflow_dispatch" in trigger
    minute, hour, *rest = trigger["schedule"][0]["cron"].split()
    assert rest == ["*", "*", "*"]
    for day in (datetime.date(2026, 1, 15), datetime.date(2026, 7, 15)):
        utc = datetime.datetime.combine(
            day, datetime.time(int(hour), int(minute)), tzinfo=datetime.UTC
        )
        paris = utc.astimezone(PARIS)
        assert 5 <= paris.hour < 8, f"{paris} is not early morning in Paris"


def test_drift_permissions() -> None:
    job = load("drift.yml")["jobs"]["drift"]
    assert job["permissions"] == {"contents": "read", "issues": "write"}


def test_drift_issue_step() -> None:
    runs = [str(step.get("run", "")) for step in steps(load("drift.yml"))]
    assert any("reconciler drift --format json > drift.json" in run for run in runs)
    assert "reconciler github drift-issue --report drift.json" in runs


@pytest.mark.parametrize("name", ALL)
def test_workflow_secrets_only_in_env(name: str) -> None:
    """A secret reaches a step as an environment variable, never in its script."""
    for step in steps(load(name)):
        assert "secrets." not in str(step.get("run", "")), step
        assert "github.token" not in str(step.get("run", "")), step


@pytest.mark.parametrize("name", ALL)
def test_workflow_never_echoes_secret(name: str) -> None:
    text = (WORKFLOWS / name).read_text("utf-8")
    echoed = re.search(r"(echo|printf|cat)[^\n]*(API_KEY|TOKEN|secrets\.)", text)
    assert echoed is None


@pytest.mark.parametrize("name", ALL)
def test_workflow_no_expression_in_scripts(name: str) -> None:
    """Event data goes through env, so a branch name can't inject shell code."""
    for step in steps(load(name)):
        assert "${{" not in str(step.get("run", "")), step


def test_api_key_only_where_needed() -> None:
    users = {
        (name, job_name)
        for name in NAMES
        for job_name, job in load(name)["jobs"].items()
        if "secrets.MYNOTARY_API_KEY" in yaml.safe_dump(job)
    }
    assert users == {
        ("plan.yml", "plan"),
        ("apply.yml", "apply"),
        ("drift.yml", "drift"),
    }


def test_workflows_call_only_reconciler() -> None:
    """Beyond setup, every command a step runs is `reconciler` or shell plumbing."""
    for name in NAMES[1:]:
        for step in steps(load(name)):
            run = str(step.get("run", ""))
            assert "curl" not in run
            assert "gh " not in run
            assert "git " not in run
