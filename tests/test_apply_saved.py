"""Applying what was approved: saved plans, approved digests, and their refusals.

Each refusal is checked to write nothing: not to MyNotary (the sandbox's records
and versions), not to the link table, and not to the apply log.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import CliResult
from conftest import ServedSandbox

from reconciler import approval
from reconciler import commands
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import ReconcilerError
from reconciler.mynotary.client import MyNotaryClient
from reconciler.mynotary.client import MyNotaryError
from reconciler.plan import PlanOptions
from reconciler.planfile import read_plan_file

RunCli = Callable[..., CliResult]
Document = dict[str, Any]

FLAT = "LOT-TEST-BRET-2"
CELLAR = "LOT-TEST-BRET-3"
PROGRAMME = "PRG-TEST-BRET"


NEW_LOT_NUMBER = "900"


class Setup:
    """A served sandbox holding the Bretonnière programme, applied and linked."""

    def __init__(
        self,
        sandbox: ServedSandbox,
        run_cli: RunCli,
        workdir: Path,
        document: Document,
        write_manifest: Callable[..., Path],
    ) -> None:
        self.sandbox = sandbox
        self.run_cli = run_cli
        self.workdir = workdir
        self.document = document
        self.write_manifest = write_manifest

    def run(self, *arguments: str) -> CliResult:
        return self.run_cli(*arguments, *self.sandbox.target_arguments())

    def run_without_target(self, *arguments: str) -> CliResult:
        return self.run_cli(*arguments)

    @property
    def links(self) -> Path:
        return self.workdir / "links.yaml"

    @property
    def apply_log(self) -> Path:
        return self.workdir / "links.yaml.applied"

    def mynotary_id(self, up_id: str) -> int:
        table = yaml.safe_load(self.links.read_text(encoding="utf-8"))
        return int(table["links"][up_id]["mynotaryId"])

    def records(self) -> list[tuple[Any, ...]]:
        return self.sandbox.query(
            "SELECT id, version, questions FROM records ORDER BY id"
        )

    def edit_remote(self, up_id: str, questions: dict[str, Any]) -> None:
        """Change a record on MyNotary, as someone using MyNotary would."""
        record_id = self.mynotary_id(up_id)
        url = f"{self.sandbox.url}/records/{record_id}"
        version = httpx.get(url).json()["version"]
        response = httpx.patch(url, json={"version": version, "questions": questions})
        response.raise_for_status()

    def change_price(self, price: float) -> None:
        self.document["lots"][1]["price"] = price
        self.write_manifest(self.document)

    def edit_manifest_add_lot(self) -> None:
        self.document["lots"].append(
            {
                "upId": "LOT-TEST-NEW",
                "number": NEW_LOT_NUMBER,
                "nature": "parking",
                "status": "available",
            }
        )
        self.write_manifest(self.document)

    def create_remote_twin_of_new_lot(self) -> None:
        """Create the new lot on MyNotary by hand, as someone using MyNotary would."""
        programme_id = self.mynotary_id(self.document["upId"])
        body = {
            "organizationId": 1,
            "creatorId": 1,
            "type": "RECORD__BIEN__LOT_HORS_HABITATION",
            "programmeId": programme_id,
            "externalReference": None,
            "questions": {"numero_lot": NEW_LOT_NUMBER},
        }
        httpx.post(f"{self.sandbox.url}/records", json=body).raise_for_status()

    def count_lots_numbered(self, number: str) -> int:
        rows = self.records()
        return sum(1 for row in rows if json.loads(row[2]).get("numero_lot") == number)

    def state(self) -> tuple[Any, ...]:
        """Everything a refused apply must leave as it was."""
        log = self.apply_log.read_bytes() if self.apply_log.exists() else None
        return (self.records(), self.links.read_bytes(), log)


@pytest.fixture
def setup(
    served_sandbox: ServedSandbox,
    run_cli: RunCli,
    workdir: Path,
    manifest_document: Document,
    write_manifest: Callable[..., Path],
) -> Setup:
    write_manifest(manifest_document)
    ready = Setup(served_sandbox, run_cli, workdir, manifest_document, write_manifest)
    result = ready.run("apply", "--auto-approve")
    assert result.code == 0, result.stdout + result.stderr
    return ready


@pytest.fixture
def saved_plan(setup: Setup) -> Path:
    """A saved plan with one update: the flat's price."""
    setup.change_price(201000.00)
    result = setup.run("plan", "--out", "plan.json")
    assert result.code == 0, result.stderr
    return setup.workdir / "plan.json"


# Saved plans


def test_saved_plan_applied(setup: Setup, saved_plan: Path) -> None:
    result = setup.run("apply", "--plan", "plan.json")

    assert result.code == 0, result.stderr
    assert "~ updated lot 2 (appartement) [LOT-TEST-BRET-2]" in result.stdout
    assert setup.run("plan", "--detailed-exitcode").code == 0


def test_saved_plan_written_notice(setup: Setup, saved_plan: Path) -> None:
    result = setup.run("plan", "--out", "again.json")
    assert (
        "Plan written to again.json; apply exactly this plan with "
        "`reconciler apply --plan again.json`"
    ) in result.stderr


def test_saved_plan_stdout_text_file_json(setup: Setup, saved_plan: Path) -> None:
    document = json.loads(saved_plan.read_text(encoding="utf-8"))
    result = setup.run("plan", "--out", "again.json")
    assert document["changes"][0]["upId"] == FLAT
    assert result.stdout.startswith("Target: ")


def test_saved_plan_remote_edited(setup: Setup, saved_plan: Path) -> None:
    setup.edit_remote(FLAT, {"batiment": "B"})
    before = setup.state()
    record_id = setup.mynotary_id(FLAT)

    result = setup.run("apply", "--plan", "plan.json")

    assert result.code == 1
    assert setup.state() == before
    assert result.stderr.endswith(
        "error: plan file plan.json is stale: lot 2 (appartement) [LOT-TEST-BRET-2] "
        f"#{record_id} is at version 2 on MyNotary, the plan saw version 1; nothing "
        "was applied: run `reconciler plan --out plan.json` again\n"
    )


def test_saved_plan_manifest_edited(setup: Setup, saved_plan: Path) -> None:
    setup.change_price(202000.00)
    before = setup.state()

    result = setup.run("apply", "--plan", "plan.json")

    assert result.code == 1
    assert setup.state() == before
    assert (
        "error: plan file plan.json is stale: the manifests changed since it was "
        "made (their content changed); nothing was applied: run `reconciler plan "
        "--out plan.json` again"
    ) in result.stderr


def test_saved_plan_manifest_added(
    setup: Setup, saved_plan: Path, manifest_document: Document
) -> None:
    other = dict(manifest_document, upId="PRG-TEST-OTHER", lots=[])
    setup.write_manifest(other, name="other.yaml")
    before = setup.state()

    result = setup.run("apply", "--plan", "plan.json")

    assert result.code == 1
    assert setup.state() == before
    assert "(added manifests/other.yaml)" in result.stderr


def test_saved_plan_link_table_edited(setup: Setup, saved_plan: Path) -> None:
    with setup.links.open("a", encoding="utf-8") as table:
        table.write("# repaired by hand\n")
    before = setup.state()

    result = setup.run("apply", "--plan", "plan.json")

    assert result.code == 1
    assert setup.state() == before
    assert "the link table links.yaml changed since it was made" in result.stderr


def test_saved_plan_applied_twice(setup: Setup, saved_plan: Path) -> None:
    first = setup.run("apply", "--plan", "plan.json")
    before = setup.state()

    second = setup.run("apply", "--plan", "plan.json")

    assert first.code == 0
    assert second.code == 1
    assert setup.state() == before
    assert "error: plan file plan.json was already applied (" in second.stderr
    assert "a plan is applied at most once" in second.stderr


def test_saved_plan_logged_once(setup: Setup, saved_plan: Path) -> None:
    setup.run("apply", "--plan", "plan.json")
    entries = approval.ApplyLog(setup.apply_log).entries()
    saved = read_plan_file(saved_plan)
    assert [(entry["type"], entry["planId"]) for entry in entries] == [
        ("plan-file", saved.plan_id)
    ]


def test_saved_plan_other_target(setup: Setup, saved_plan: Path) -> None:
    result = setup.run_without_target(
        "apply", "--plan", "plan.json", "--target", "sandbox", "--links", "links.yaml"
    )
    assert result.code == 1
    assert "was made for http://127.0.0.1:" in result.stderr


def test_saved_plan_rejects_paths(setup: Setup, saved_plan: Path) -> None:
    result = setup.run("apply", "--plan", "plan.json", "manifests")

    assert result.code == 1
    assert "--plan applies the saved plan as it is: drop PATHS" in result.stderr


def test_saved_plan_blocked(setup: Setup) -> None:
    setup.document["lots"][2]["link"] = {"attach": 999999}
    setup.write_manifest(setup.document)
    planned = setup.run("plan", "--out", "plan.json")

    result = setup.run("apply", "--plan", "plan.json")

    assert planned.code == 1
    assert "fix its problems and plan again" in planned.stderr
    assert result.code == 1
    assert "is blocked by 1 problem(s); fix them" in result.stderr


def test_show_formats(setup: Setup, saved_plan: Path) -> None:
    text = setup.run_without_target("show", "plan.json")
    markdown = setup.run_without_target("show", "plan.json", "--format", "markdown")
    document = setup.run_without_target("show", "plan.json", "--format", "json")

    digest = read_plan_file(saved_plan).digest
    assert text.stdout.endswith(f"Plan digest: {digest}\n")
    assert markdown.stdout.startswith("### Plan: 0 to create, 1 to update,")
    assert json.loads(document.stdout) == json.loads(saved_plan.read_text("utf-8"))


# The conditional update, in process


def _settings(setup: Setup) -> Any:
    options = TargetOptions(
        url=setup.sandbox.url,
        organization_id=1,
        user_id=1,
        links_path=Path("links.yaml"),
    )
    return resolve_settings(options, {})


def _request(setup: Setup, **changes: Any) -> commands.ApplyRequest:
    plan = commands.PlanRequest([Path("manifests")], _settings(setup), PlanOptions())
    return commands.ApplyRequest(
        plan=plan,
        auto_approve=True,
        parallelism=4,
        confirm=lambda: False,
        **changes,
    )


def _run_apply(request: commands.ApplyRequest) -> tuple[int, str]:
    output = io.StringIO()
    console = commands.Console(out=output, err=output)
    return commands.run_apply(request, console), output.getvalue()


def test_saved_plan_update_is_conditional(
    setup: Setup, saved_plan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def check_passes(*arguments: Any) -> None:
        # The record moves after the last check and before the write.
        setup.edit_remote(FLAT, {"batiment": "C"})

    monkeypatch.setattr(commands, "check_fresh_plan", check_passes)
    flat_id = setup.mynotary_id(FLAT)

    code, output = _run_apply(_request(setup, plan_file=saved_plan))

    assert code == 1
    assert "failed with status 409" in output
    rows = setup.sandbox.query("SELECT questions FROM records WHERE id = ?", flat_id)
    questions = json.loads(rows[0][0], parse_float=Decimal)
    assert questions["batiment"] == "C"
    assert questions["prix_ttc"] == Decimal("198000.00")


def test_saved_plan_refused_after_twin_created(setup: Setup) -> None:
    setup.edit_manifest_add_lot()
    setup.run("plan", "--out", "with-new-lot.json")
    setup.create_remote_twin_of_new_lot()

    result = setup.run("apply", "--plan", "with-new-lot.json")

    assert result.code == 1
    assert "is stale: MyNotary changed since it was made" in result.stderr
    assert setup.count_lots_numbered(NEW_LOT_NUMBER) == 1


# Approved digests


def _digest(setup: Setup) -> str:
    setup.run("plan", "--out", "digest.json")
    return read_plan_file(setup.workdir / "digest.json").digest


def test_digest_match_applies(setup: Setup) -> None:
    setup.change_price(201000.00)
    digest = _digest(setup)

    result = setup.run("apply", "--expect-digest", digest)

    assert result.code == 0, result.stderr
    assert "~ updated lot 2 (appartement)" in result.stdout
    assert setup.run("plan", "--detailed-exitcode").code == 0


def test_digest_mismatch_refused(setup: Setup) -> None:
    setup.change_price(201000.00)
    digest = _digest(setup)
    setup.change_price(202000.00)
    before = setup.state()

    result = setup.run("apply", "--expect-digest", digest)

    assert result.code == 1
    assert setup.state() == before
    assert f"the plan's digest is {_digest(setup)}, not the approved {digest}" in (
        result.stderr
    )
    assert "nothing was applied" in result.stderr


def test_digest_remote_edit_refused(setup: Setup) -> None:
    setup.change_price(201000.00)
    digest = _digest(setup)
    setup.edit_remote(CELLAR, {"batiment": "Z"})
    before = setup.state()

    result = setup.run("apply", "--expect-digest", digest)

    assert result.code == 1
    assert setup.state() == before


def test_digest_nothing_to_apply(setup: Setup) -> None:
    result = setup.run("apply", "--expect-digest", "0123456789abcdef")
    assert result.code == 0
    assert "Nothing to apply: MyNotary matches the manifests." in result.stdout


def test_digest_resume_after_failure(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.document["name"] = "Résidence Bretonnière II"
    setup.change_price(201000.00)
    digest = _digest(setup)
    flat_id = setup.mynotary_id(FLAT)
    original = MyNotaryClient.update_record

    async def failing_update(
        self: MyNotaryClient, record_id: int, version: int, questions: Any
    ) -> Any:
        if record_id == flat_id:
            raise MyNotaryError(
                "MyNotary request failed with status 503: unavailable",
                method="PATCH",
                path=f"/records/{record_id}",
                status_code=503,
            )
        return await original(self, record_id, version, questions)

    monkeypatch.setattr(MyNotaryClient, "update_record", failing_update)
    first_code, _ = _run_apply(_request(setup, expected_digest=digest))
    monkeypatch.setattr(MyNotaryClient, "update_record", original)

    second_code, output = _run_apply(_request(setup, expected_digest=digest))

    assert first_code == 1
    assert second_code == 0, output
    assert (
        f"notice: resuming the approved apply of plan {digest}: 1 of its change(s) "
        "are not done yet"
    ) in output
    assert setup.run("plan", "--detailed-exitcode").code == 0


def test_digest_resume_refuses_other_change(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    setup.change_price(201000.00)
    digest = _digest(setup)

    async def unavailable(self: MyNotaryClient, *arguments: Any) -> Any:
        raise MyNotaryError(
            "MyNotary is unavailable", method="PATCH", path="/records", status_code=503
        )

    original = MyNotaryClient.update_record
    monkeypatch.setattr(MyNotaryClient, "update_record", unavailable)
    _run_apply(_request(setup, expected_digest=digest))
    monkeypatch.setattr(MyNotaryClient, "update_record", original)
    setup.change_price(205000.00)
    before = setup.state()

    with pytest.raises(ReconcilerError, match="not the approved"):
        _run_apply(_request(setup, expected_digest=digest))

    assert setup.state() == before


def test_digest_no_resume_after_complete_apply(setup: Setup) -> None:
    setup.change_price(201000.00)
    digest = _digest(setup)
    setup.run("apply", "--expect-digest", digest)
    setup.edit_remote(FLAT, {"prix_ttc": 1})
    before = setup.state()

    result = setup.run("apply", "--expect-digest", digest)

    assert result.code == 1
    assert setup.state() == before
    assert f"not the approved {digest}" in result.stderr


def test_approved_change_covers() -> None:
    log_entry = {"action": "update", "upId": FLAT, "after": [["price", "201000.00"]]}
    approved = approval.ApprovedChange.from_json(log_entry)
    assert approved.to_json() == log_entry


def test_apply_log_unfinished(tmp_path: Path) -> None:
    log = approval.ApplyLog(tmp_path / "links.yaml.applied")
    log.record_approved("aaaa", [])
    assert log.unfinished_approval("aaaa") == ()
    log.record_finished("aaaa", is_complete=False)
    assert log.unfinished_approval("aaaa") == ()
    log.record_finished("aaaa", is_complete=True)
    assert log.unfinished_approval("aaaa") is None


def test_apply_log_skips_broken_line(tmp_path: Path) -> None:
    path = tmp_path / "links.yaml.applied"
    path.write_text(
        '{"type": "approved", "digest": "aa", "changes": []}\n{"ty', "utf-8"
    )
    assert approval.ApplyLog(path).unfinished_approval("aa") == ()


def test_check_versions_missing_record() -> None:
    from sample_plans import TARGET
    from sample_plans import lot_update

    from reconciler.plan import Plan

    class Empty:
        async def get_record(self, record_id: int) -> None:
            return None

    plan = Plan(TARGET, (lot_update(),), ())
    with pytest.raises(approval.StalePlanError) as raised:
        asyncio.run(approval.check_versions(plan, Empty(), Path("plan.json")))
    assert "lot 12 (appartement) [LOT-TEST-ORIO-12] #2003 is missing on MyNotary" in (
        str(raised.value)
    )


# The API key never appears in any output


KEY = "KEY-recognizable-7f3a9c-never-print"


def test_key_never_in_output(
    tmp_path: Path,
    workdir: Path,
    run_cli: RunCli,
    manifest_document: Document,
    write_manifest: Callable[..., Path],
) -> None:
    from fake_github import FakeGitHub
    from fake_github import github_environment
    from fake_github import serve_fake_github

    from reconciler.sandbox.server import running_server

    write_manifest(manifest_document)
    fake = FakeGitHub()
    outputs: list[str] = []
    with (
        running_server(tmp_path / "keyed.db", api_key=KEY) as url,
        serve_fake_github(fake) as api_url,
    ):
        target = ["--url", url, "--organization", "1", "--user", "1"]
        target += ["--links", "links.yaml"]
        environment = {"MYNOTARY_API_KEY": KEY, **github_environment(api_url)}

        def run(*arguments: str, with_target: bool = True) -> CliResult:
            extra = target if with_target else []
            result = run_cli(*arguments, *extra, extra_env=environment)
            outputs.extend([result.stdout, result.stderr])
            return result

        assert run("plan", "--out", "plan.json").code == 0
        for output_format in ("text", "markdown", "json"):
            run("show", "plan.json", "--format", output_format, with_target=False)
            run("plan", "--format", output_format)
        run(
            "github",
            "comment-plan",
            "--pr",
            "1",
            "--plan",
            "plan.json",
            "--log",
            "missing.log",
            "--head-sha",
            "a" * 40,
            with_target=False,
        )
        assert run("-v", "apply", "--plan", "plan.json").code == 0
        for output_format in ("text", "markdown", "json"):
            run("drift", "--format", output_format)
        run("--debug", "status")
        run("-v", "apply", "--auto-approve")
        wrong = run_cli("plan", *target, extra_env={"MYNOTARY_API_KEY": KEY + "-wrong"})
        outputs.extend([wrong.stdout, wrong.stderr])

    files = [
        path.read_text("utf-8", errors="replace")
        for path in workdir.rglob("*")
        if path.is_file()
    ]
    sent = [json.dumps(request.body) for request in fake.requests]
    assert wrong.code == 1
    assert "status 401" in wrong.stderr
    assert len(outputs) > 20
    for text in [*outputs, *files, *sent]:
        assert KEY not in text
