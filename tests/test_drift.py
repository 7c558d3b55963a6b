"""Drift detection: remote edits, records gone, orphans, and the drift issue."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from conftest import CliResult
from conftest import ServedSandbox
from fake_github import FakeGitHub
from fake_github import github_environment
from fake_github import serve_fake_github
from syrupy.assertion import SnapshotAssertion

from reconciler.drift import DriftedRecord
from reconciler.drift import DriftReport
from reconciler.drift import DriftReportError
from reconciler.drift import OrphanRecord
from reconciler.drift import RecordRef
from reconciler.drift import from_json
from reconciler.drift import to_json
from reconciler.links import TargetIdentity
from reconciler.plan import FieldChange
from reconciler.render.drift import render_drift_markdown
from reconciler.render.drift import render_drift_text

RunCli = Callable[..., CliResult]
Document = dict[str, Any]

TARGET = TargetIdentity("https://mynotary.test/api", 1)
FLAT = "LOT-TEST-BRET-2"
CELLAR = "LOT-TEST-BRET-3"
PROGRAMME = "PRG-TEST-BRET"


def sample_report() -> DriftReport:
    flat = RecordRef(FLAT, "lot", "lot 2 (appartement)", PROGRAMME, "Bretonnière", 1102)
    cellar = RecordRef(CELLAR, "lot", "lot 3 (cave)", PROGRAMME, "Bretonnière", 1103)
    fields = (
        FieldChange("livingArea", Decimal("46.00"), Decimal("45.50")),
        FieldChange("building", "A\u00a0", "A"),
    )
    orphan = OrphanRecord(1199, PROGRAMME, "Bretonnière", 1001, "7", "RECORD__X")
    return DriftReport(
        TARGET,
        (DriftedRecord(flat, fields),),
        (cellar,),
        (orphan,),
        pending_changes=2,
        problems=0,
    )


def empty_report() -> DriftReport:
    return DriftReport(TARGET, (), (), ())


# Renderings and the JSON report


def test_drift_text(snapshot: SnapshotAssertion) -> None:
    assert render_drift_text(sample_report()) == snapshot


def test_drift_markdown(snapshot: SnapshotAssertion) -> None:
    assert render_drift_markdown(sample_report()) == snapshot


def test_drift_json(snapshot: SnapshotAssertion) -> None:
    assert json.dumps(to_json(sample_report()), indent=2) == snapshot


def test_drift_text_none(snapshot: SnapshotAssertion) -> None:
    assert render_drift_text(empty_report()) == snapshot


def test_drift_json_round_trip() -> None:
    report = sample_report()
    assert from_json(json.loads(json.dumps(to_json(report))), "drift.json") == report


def test_drift_json_invalid() -> None:
    document = to_json(sample_report())
    del document["missing"]
    with pytest.raises(DriftReportError, match="is not a valid drift report"):
        from_json(document, "drift.json")


def test_drift_digest_ignores_pending() -> None:
    report = sample_report()
    other = DriftReport(
        report.target, report.drifted, report.missing, report.orphans, 9, 9
    )
    assert other.digest == report.digest


def test_drift_digest_follows_findings() -> None:
    report = sample_report()
    fewer = DriftReport(report.target, report.drifted, (), report.orphans)
    assert fewer.digest != report.digest


def test_drift_markdown_limit() -> None:
    refs = [
        RecordRef(
            f"LOT-{index}", "lot", f"lot {index}", f"PRG-{index % 50}", "P", index
        )
        for index in range(3000)
    ]
    report = DriftReport(TARGET, (), tuple(refs), ())

    text = render_drift_markdown(report, full_report="the drift artifact")

    assert len(text) <= 65_000
    assert "finding(s) in" in text
    assert "are not shown**" in text


# Against the sandbox


class Sandbox:
    def __init__(self, served: ServedSandbox, run_cli: RunCli, workdir: Path) -> None:
        self.served = served
        self.run_cli = run_cli
        self.workdir = workdir

    def run(self, *arguments: str, **options: Any) -> CliResult:
        return self.run_cli(*arguments, *self.served.target_arguments(), **options)

    def mynotary_id(self, up_id: str) -> int:
        table = yaml.safe_load((self.workdir / "links.yaml").read_text("utf-8"))
        return int(table["links"][up_id]["mynotaryId"])

    def edit(self, up_id: str, questions: dict[str, Any]) -> None:
        url = f"{self.served.url}/records/{self.mynotary_id(up_id)}"
        version = httpx.get(url).json()["version"]
        httpx.patch(url, json={"version": version, "questions": questions})

    def delete(self, up_id: str) -> None:
        # MyNotary's API has no delete; someone removed the record on MyNotary.
        connection = sqlite3.connect(self.served.database)
        with connection:
            connection.execute(
                "DELETE FROM records WHERE id = ?", (self.mynotary_id(up_id),)
            )
        connection.close()

    def create_lot(self, number: str) -> int:
        body = {
            "organizationId": 1,
            "creatorId": 1,
            "type": "RECORD__BIEN__LOT_HORS_HABITATION",
            "programmeId": self.mynotary_id(PROGRAMME),
            "externalReference": None,
            "questions": {"numero_lot": number},
        }
        response = httpx.post(f"{self.served.url}/records", json=body)
        return int(response.json()["id"])

    def state(self) -> tuple[Any, ...]:
        records = self.served.query("SELECT id, version, questions FROM records")
        return (records, (self.workdir / "links.yaml").read_bytes())


@pytest.fixture
def sandbox(
    served_sandbox: ServedSandbox,
    run_cli: RunCli,
    workdir: Path,
    manifest_document: Document,
    write_manifest: Callable[..., Path],
) -> Sandbox:
    write_manifest(manifest_document)
    ready = Sandbox(served_sandbox, run_cli, workdir)
    result = ready.run("apply", "--auto-approve")
    assert result.code == 0, result.stderr
    return ready


def test_drift_none(sandbox: Sandbox) -> None:
    result = sandbox.run("drift")
    assert result.code == 0
    assert (
        "No drift: MyNotary matches the manifests for every linked record.\n"
        in result.stdout
    )


def test_drift_remote_edited(sandbox: Sandbox) -> None:
    sandbox.edit(FLAT, {"batiment": "B"})
    flat_id = sandbox.mynotary_id(FLAT)

    result = sandbox.run("drift")

    assert result.code == 2
    assert (
        f"  ~ changed on MyNotary: lot 2 (appartement) #{flat_id} [{FLAT}]\n"
        '      building: Up "A", MyNotary "B"\n'
    ) in result.stdout
    assert "Drift: 1 linked record(s) changed on MyNotary, 0 missing" in result.stdout


def test_drift_remote_gone(sandbox: Sandbox) -> None:
    cellar_id = sandbox.mynotary_id(CELLAR)
    sandbox.delete(CELLAR)

    result = sandbox.run("drift")

    assert result.code == 2
    assert (
        f"  ! missing on MyNotary: lot 3 (cave) #{cellar_id} [{CELLAR}]"
        in result.stdout
    )
    assert "0 linked record(s) changed on MyNotary, 1 missing" in result.stdout


def test_drift_orphan(sandbox: Sandbox) -> None:
    orphan_id = sandbox.create_lot("77")

    result = sandbox.run("drift")

    assert result.code == 2
    assert (
        f"  ? orphan, not in the link table: lot 77 #{orphan_id} "
        "(RECORD__BIEN__LOT_HORS_HABITATION)"
    ) in result.stdout


def test_drift_unlinked_record_not_orphan(
    sandbox: Sandbox,
    manifest_document: Document,
    write_manifest: Callable[..., Path],
) -> None:
    manifest_document["lots"][2]["link"] = {"unlinked": True}
    write_manifest(manifest_document)
    assert sandbox.run("apply", "--auto-approve").code == 0

    result = sandbox.run("drift")

    assert result.code == 0, result.stdout
    assert "orphan" not in result.stdout


def test_drift_only_reads(sandbox: Sandbox) -> None:
    sandbox.edit(FLAT, {"batiment": "B"})
    sandbox.create_lot("77")
    before = sandbox.state()

    for output_format in ("text", "markdown", "json"):
        sandbox.run("drift", "--format", output_format)

    assert sandbox.state() == before
    assert not (sandbox.workdir / "links.yaml.applied").exists()


def test_drift_json_format(sandbox: Sandbox) -> None:
    sandbox.edit(FLAT, {"surface_habitable": 46})

    result = sandbox.run("drift", "--format", "json")

    document = json.loads(result.stdout)
    field = document["drifted"][0]["fields"][0]
    assert result.code == 2
    assert document["hasDrift"] is True
    assert field["name"] == "livingArea"
    assert Decimal(field["up"]) == Decimal("45.50")
    assert Decimal(field["mynotary"]) == Decimal("46")


def test_drift_markdown_format(sandbox: Sandbox) -> None:
    sandbox.edit(FLAT, {"batiment": "B"})
    result = sandbox.run("drift", "--format", "markdown")
    assert result.stdout.startswith("### Drift: 1 linked record(s) changed")
    assert "\x1b" not in result.stdout


def test_drift_error_exit(workdir: Path, run_cli: RunCli) -> None:
    result = run_cli("drift", "missing-folder", "--target", "sandbox")
    assert result.code == 1


def test_drift_issue_from_report(sandbox: Sandbox) -> None:
    fake = FakeGitHub()
    report = sandbox.workdir / "drift.json"
    with serve_fake_github(fake) as api_url:
        environment = github_environment(api_url)

        def detect() -> str:
            result = sandbox.run("drift", "--format", "json")
            report.write_text(result.stdout, encoding="utf-8")
            issue = sandbox.run_cli(
                "github", "drift-issue", "--report", "drift.json", extra_env=environment
            )
            assert issue.code == 0, issue.stderr
            return issue.stdout

        quiet = detect()
        sandbox.edit(FLAT, {"batiment": "B"})
        opened = detect()
        same = detect()
        sandbox.edit(FLAT, {"batiment": "A"})
        closed = detect()

    assert [quiet, opened, same, closed] == [
        "Drift issue: none.\n",
        "Drift issue: opened.\n",
        "Drift issue: unchanged.\n",
        "Drift issue: closed.\n",
    ]
    issue = fake.issues[1]
    assert issue["state"] == "closed"
    assert "changed on MyNotary" in issue["body"]
