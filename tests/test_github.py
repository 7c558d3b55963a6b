"""The GitHub steps of the workflows, against a fake GitHub API on 127.0.0.1."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CliResult
from fake_github import BOT
from fake_github import TOKEN
from fake_github import FakeGitHub
from fake_github import blob_sha
from fake_github import github_environment
from fake_github import serve_fake_github

from reconciler.github import DRIFT_MARKER
from reconciler.github import PLAN_MARKER
from reconciler.github import GitHubClient
from reconciler.github import GitHubError
from reconciler.github import GitHubSettings
from reconciler.github import commit_files
from reconciler.github import drift_issue_body
from reconciler.github import find_approved_digest
from reconciler.github import git_blob_sha
from reconciler.github import plan_comment_body
from reconciler.github import pull_files
from reconciler.github import sync_drift_issue
from reconciler.github import upsert_plan_comment

RunCli = Callable[..., CliResult]

HEAD = "a" * 40
MERGE = "b" * 40
DIGEST = "0123456789abcdef"


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
def api_url(fake: FakeGitHub) -> Iterator[str]:
    with serve_fake_github(fake) as url:
        yield url


@pytest.fixture
def client(api_url: str) -> Iterator[GitHubClient]:
    settings = GitHubSettings.from_environment(github_environment(api_url))
    with GitHubClient(settings) as github:
        yield github


# Settings


def test_settings_need_token() -> None:
    environment = github_environment("https://api.github.com")
    del environment["GITHUB_TOKEN"]
    with pytest.raises(GitHubError, match="GITHUB_TOKEN is not set"):
        GitHubSettings.from_environment(environment)


def test_settings_reject_plain_http_to_remote_host() -> None:
    environment = github_environment("http://api.github.example")
    with pytest.raises(GitHubError, match="is not an https URL"):
        GitHubSettings.from_environment(environment)


def test_settings_repr_hides_token() -> None:
    settings = GitHubSettings.from_environment(github_environment("https://x.test"))
    assert TOKEN not in repr(settings)


def test_settings_run_url() -> None:
    settings = GitHubSettings.from_environment(github_environment("https://x.test"))
    assert (
        settings.run_url == "https://github.example/acme/programmes/actions/runs/4242"
    )


def test_client_error_names_status(client: GitHubClient) -> None:
    settings = GitHubSettings(client.settings.api_url, "acme/other", TOKEN)
    with GitHubClient(settings) as other, pytest.raises(GitHubError) as raised:
        upsert_plan_comment(other, 1, "body")
    assert "failed with status 404: Not Found" in str(raised.value)


def test_client_wrong_token_hint(api_url: str) -> None:
    settings = GitHubSettings(api_url, "acme/programmes", "wrong")
    with GitHubClient(settings) as other, pytest.raises(GitHubError) as raised:
        upsert_plan_comment(other, 1, "body")
    assert "status 401: Bad credentials; check the token" in str(raised.value)


# The plan comment


def test_comment_created_once_then_edited(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    first = upsert_plan_comment(client, 7, plan_comment_body("plan 1", DIGEST, HEAD))
    second = upsert_plan_comment(client, 7, plan_comment_body("plan 2", DIGEST, HEAD))

    assert (first, second) == ("created", "updated")
    comments = fake.comments_of(7)
    assert len(comments) == 1
    assert comments[0]["body"].endswith("plan 2")


def test_comment_unchanged_writes_nothing(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    body = plan_comment_body("plan", DIGEST, HEAD)
    upsert_plan_comment(client, 7, body)
    writes_before = len(fake.writes())

    outcome = upsert_plan_comment(client, 7, body)

    assert outcome == "unchanged"
    assert len(fake.writes()) == writes_before


def test_comment_ignores_marker_of_other_author(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    forged = fake.add_comment(7, f"{PLAN_MARKER}\nforged plan", user="mallory")

    upsert_plan_comment(client, 7, plan_comment_body("plan", DIGEST, HEAD))

    assert fake.comments[forged["id"]]["body"].endswith("forged plan")
    assert len(fake.comments_of(7)) == 2


def test_comment_found_on_later_page(client: GitHubClient, fake: FakeGitHub) -> None:
    fake.page_size = 2
    for index in range(5):
        fake.add_comment(7, f"review {index}", user="reviewer")
    ours = fake.add_comment(7, plan_comment_body("old plan", DIGEST, HEAD))

    upsert_plan_comment(client, 7, plan_comment_body("new plan", DIGEST, HEAD))

    assert fake.comments[ours["id"]]["body"].endswith("new plan")
    assert len(fake.comments_of(7)) == 6


def test_comment_body_carries_digest_and_head() -> None:
    body = plan_comment_body("text", DIGEST, HEAD)
    assert body.splitlines()[:2] == [
        PLAN_MARKER,
        f"<!-- reconciler:plan-digest {DIGEST} head {HEAD} -->",
    ]


# The approved digest


def test_approved_digest_of_merged_pull(client: GitHubClient, fake: FakeGitHub) -> None:
    pull = fake.merged_pull(MERGE, HEAD)
    fake.add_comment(pull["number"], plan_comment_body("plan", DIGEST, HEAD))

    approved = find_approved_digest(client, MERGE)

    assert approved.digest == DIGEST
    assert approved.pull_request == pull["number"]


def test_approved_digest_plan_of_older_push(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    pull = fake.merged_pull(MERGE, HEAD)
    fake.add_comment(pull["number"], plan_comment_body("plan", DIGEST, "c" * 40))

    with pytest.raises(GitHubError) as raised:
        find_approved_digest(client, MERGE)

    assert str(raised.value) == (
        f"the plan comment on pull request #{pull['number']} shows the plan of "
        f"commit {'c' * 12}, but the pull request was merged at {'a' * 12}; the "
        "plan of the last push did not finish, so nothing was approved"
    )


def test_approved_digest_forged_comment(client: GitHubClient, fake: FakeGitHub) -> None:
    pull = fake.merged_pull(MERGE, HEAD)
    forged = plan_comment_body("plan", DIGEST, HEAD)
    fake.add_comment(pull["number"], forged, user="mallory")

    with pytest.raises(GitHubError, match="has no plan comment with a digest"):
        find_approved_digest(client, MERGE)


def test_approved_digest_failed_plan(client: GitHubClient, fake: FakeGitHub) -> None:
    pull = fake.merged_pull(MERGE, HEAD)
    fake.add_comment(pull["number"], plan_comment_body("failed", None, HEAD))

    with pytest.raises(GitHubError, match="has no plan comment with a digest"):
        find_approved_digest(client, MERGE)


def test_approved_digest_direct_push(client: GitHubClient) -> None:
    with pytest.raises(GitHubError, match="is not the merge of a pull request"):
        find_approved_digest(client, MERGE)


# The drift issue


def _sync(client: GitHubClient, has_drift: bool, digest: str) -> str:
    return sync_drift_issue(
        client,
        has_drift=has_drift,
        digest=digest,
        body=drift_issue_body(f"report {digest}", digest),
        closing_comment="No drift any more.",
    )


def test_drift_issue_lifecycle(client: GitHubClient, fake: FakeGitHub) -> None:
    outcomes = [
        _sync(client, True, "aaaa"),
        _sync(client, True, "aaaa"),
        _sync(client, True, "bbbb"),
        _sync(client, False, "cccc"),
        _sync(client, False, "cccc"),
    ]

    assert outcomes == ["opened", "unchanged", "updated", "closed", "none"]
    assert len(fake.issues) == 1
    issue = fake.issues[1]
    assert issue["state"] == "closed"
    assert issue["body"].endswith("report bbbb")
    assert [item["body"] for item in fake.comments_of(1)] == ["No drift any more."]


def test_drift_issue_unchanged_writes_nothing(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    _sync(client, True, "aaaa")
    writes_before = len(fake.writes())

    _sync(client, True, "aaaa")

    assert len(fake.writes()) == writes_before


def test_drift_issue_label(client: GitHubClient, fake: FakeGitHub) -> None:
    _sync(client, True, "aaaa")
    assert fake.issues[1]["labels"] == [{"name": "reconciler-drift"}]


def test_drift_issue_skips_pull_requests_and_others(
    client: GitHubClient, fake: FakeGitHub
) -> None:
    fake.add_issue(f"{DRIFT_MARKER} in a pull request", is_pull=True)
    fake.add_issue(f"{DRIFT_MARKER} written by hand", user="mallory")

    outcome = _sync(client, True, "aaaa")

    assert outcome == "opened"
    assert len(fake.issues) == 3


def test_drift_issue_no_drift_no_issue(client: GitHubClient, fake: FakeGitHub) -> None:
    assert _sync(client, False, "aaaa") == "none"
    assert fake.writes() == []


# Files on a branch


def test_git_blob_sha_matches_git() -> None:
    # `printf 'hello\n' | git hash-object --stdin`
    assert git_blob_sha(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_commit_files_create_update_unchanged(
    client: GitHubClient, fake: FakeGitHub, tmp_path: Path
) -> None:
    table = tmp_path / "links.yaml"
    table.write_bytes(b"version: 1\n")
    fake.files[("main", table.as_posix())] = b"version: 0\n"
    log = tmp_path / "links.yaml.applied"
    log.write_bytes(b"{}\n")
    missing = tmp_path / "absent.txt"

    lines = commit_files(client, "main", [table, log, missing], "Update")
    again = commit_files(client, "main", [table, log], "Update")

    assert fake.files[("main", table.as_posix())] == b"version: 1\n"
    assert fake.files[("main", log.as_posix())] == b"{}\n"
    assert lines[0].startswith(f"{table.as_posix()}: committed to main as ")
    assert lines[2] == f"{missing.as_posix()}: absent here, not committed"
    assert again == [
        f"{table.as_posix()}: unchanged on main",
        f"{log.as_posix()}: unchanged on main",
    ]


def test_commit_files_sends_base64_and_sha(
    client: GitHubClient, fake: FakeGitHub, tmp_path: Path
) -> None:
    table = tmp_path / "links.yaml"
    table.write_bytes(b"new\n")
    fake.files[("main", table.as_posix())] = b"old\n"

    commit_files(client, "main", [table], "Update the link table")

    put = next(item for item in fake.requests if item.method == "PUT")
    assert put.body == {
        "message": "Update the link table",
        "content": base64.b64encode(b"new\n").decode(),
        "branch": "main",
        "sha": blob_sha(b"old\n"),
    }


def test_commit_files_conflict(tmp_path: Path) -> None:
    fake = FakeGitHub()
    table = tmp_path / "links.yaml"
    table.write_bytes(b"ours\n")
    fake.files[("main", table.as_posix())] = b"base\n"

    with serve_fake_github(fake) as url:
        settings = GitHubSettings.from_environment(github_environment(url))
        with GitHubClient(settings) as github:
            original = github.request

            def racing_request(method: str, path: str, **options: object) -> object:
                # Someone commits the file between our read and our write.
                if method == "PUT":
                    fake.files[("main", table.as_posix())] = b"theirs\n"
                return original(method, path, **options)  # type: ignore[arg-type]

            github.request = racing_request  # type: ignore[method-assign,assignment]
            with pytest.raises(GitHubError, match="changed on main meanwhile"):
                commit_files(github, "main", [table], "Update")

    assert fake.files[("main", table.as_posix())] == b"theirs\n"


def test_pull_files(client: GitHubClient, fake: FakeGitHub, tmp_path: Path) -> None:
    table = tmp_path / "state" / "links.yaml"
    log = tmp_path / "state" / "links.yaml.applied"
    fake.files[("main", table.as_posix())] = b"from main\n"

    lines = pull_files(client, "main", [table, log])

    assert table.read_bytes() == b"from main\n"
    assert not log.exists()
    assert lines == [
        f"{table.as_posix()}: taken from main",
        f"{log.as_posix()}: not on main, kept as it is",
    ]


# The command line


def test_cli_comment_plan_failed(
    run_cli: RunCli, fake: FakeGitHub, api_url: str, workdir: Path
) -> None:
    (workdir / "plan.log").write_text(
        "manifests/a.yaml:3:1 name: \x1b[31mmissing\x1b[0m ```\n", encoding="utf-8"
    )

    result = run_cli(
        "github",
        "comment-plan",
        "--pr",
        "3",
        "--plan",
        "plan.json",
        "--log",
        "plan.log",
        "--head-sha",
        HEAD,
        extra_env=github_environment(api_url),
    )

    assert result.code == 0, result.stderr
    body = fake.comments_of(3)[0]["body"]
    assert "### Plan failed: no plan was made" in body
    assert "````text\nmanifests/a.yaml:3:1 name: missing ```\n````" in body
    assert "\x1b" not in body
    assert "plan-digest" not in body


def test_cli_approved_digest_prints_digest(
    run_cli: RunCli, fake: FakeGitHub, api_url: str
) -> None:
    pull = fake.merged_pull(MERGE, HEAD)
    fake.add_comment(pull["number"], plan_comment_body("plan", DIGEST, HEAD))

    result = run_cli(
        "github",
        "approved-digest",
        "--commit",
        MERGE,
        extra_env=github_environment(api_url),
    )

    assert result.code == 0
    assert result.stdout == f"{DIGEST}\n"


def test_cli_approved_digest_refusal(run_cli: RunCli, api_url: str) -> None:
    result = run_cli(
        "github",
        "approved-digest",
        "--commit",
        MERGE,
        extra_env=github_environment(api_url),
    )

    assert result.code == 1
    assert result.stdout == ""
    assert "is not the merge of a pull request" in result.stderr


def test_cli_drift_issue_bad_report(
    run_cli: RunCli, api_url: str, workdir: Path
) -> None:
    (workdir / "drift.json").write_text(json.dumps({"formatVersion": 9}))

    result = run_cli(
        "github",
        "drift-issue",
        "--report",
        "drift.json",
        extra_env=github_environment(api_url),
    )

    assert result.code == 1
    expected = "drift.json is not a drift report of format version 1"
    assert expected in result.stderr


def test_cli_never_prints_token(run_cli: RunCli, api_url: str, workdir: Path) -> None:
    environment = github_environment(api_url)
    environment["GITHUB_REPOSITORY"] = "acme/other"

    result = run_cli(
        "-v", "github", "approved-digest", "--commit", MERGE, extra_env=environment
    )

    assert result.code == 1
    assert TOKEN not in result.stdout + result.stderr


def test_bot_is_default_author() -> None:
    settings = GitHubSettings.from_environment(github_environment("https://x.test"))
    assert settings.author == BOT


def test_cli_commit_state_replays_journal(
    run_cli: RunCli, fake: FakeGitHub, api_url: str, workdir: Path
) -> None:
    from reconciler.links import Link
    from reconciler.links import LinkState
    from reconciler.links import LinkTable
    from reconciler.links import TargetIdentity

    path = Path("state") / "links.yaml"
    table = LinkTable(workdir / path, TargetIdentity("sandbox", 1))
    table.save()
    # An apply killed after this create: the link is only in the journal.
    table.record(Link("LOT-1", "lot", LinkState.LINKED, 1101, "PRG-1", "1"))
    table.close_journal()

    result = run_cli(
        "github",
        "commit-state",
        "--target",
        "sandbox",
        "--links",
        str(path),
        extra_env=github_environment(api_url),
    )

    assert result.code == 0, result.stderr
    committed = fake.files[("main", "state/links.yaml")].decode("utf-8")
    assert '"LOT-1": {' in committed
    assert '"mynotaryId": 1101' in committed
    assert not (workdir / "state" / "links.yaml.journal").exists()
    assert result.stdout.startswith("state/links.yaml: committed to main as ")
    assert "state/links.yaml.applied: absent here, not committed" in result.stdout


def test_cli_pull_state(
    run_cli: RunCli, fake: FakeGitHub, api_url: str, workdir: Path
) -> None:
    fake.files[("main", "state/links.yaml")] = b"# from main\n"
    fake.files[("main", "state/links.yaml.applied")] = b"{}\n"

    result = run_cli("github", "pull-state", extra_env=github_environment(api_url))

    assert result.code == 0, result.stderr
    assert (workdir / "state" / "links.yaml").read_bytes() == b"# from main\n"
    assert (workdir / "state" / "links.yaml.applied").read_bytes() == b"{}\n"


def test_cli_comment_plan_twice(
    run_cli: RunCli, fake: FakeGitHub, api_url: str, workdir: Path
) -> None:
    from sample_plans import sample_plan

    from reconciler.planfile import SavedPlan
    from reconciler.planfile import Sources
    from reconciler.planfile import write_plan_file

    sources = Sources(("manifests",), (), "sha256:0", "links.yaml", "sha256:0")
    saved = SavedPlan(sample_plan(), sources)
    write_plan_file(saved, workdir / "plan.json")
    arguments = ["github", "comment-plan", "--pr", "5", "--plan", "plan.json"]
    arguments += ["--head-sha", HEAD]

    first = run_cli(*arguments, extra_env=github_environment(api_url))
    second = run_cli(*arguments, extra_env=github_environment(api_url))

    assert first.stdout == "Plan comment on pull request #5: created.\n"
    assert second.stdout == "Plan comment on pull request #5: unchanged.\n"
    comments = fake.comments_of(5)
    assert len(comments) == 1
    assert comments[0]["body"].startswith(
        f"{PLAN_MARKER}\n<!-- reconciler:plan-digest {saved.digest} head {HEAD} -->\n"
        "### Plan: 1 to create, 3 to update, 1 to link, 1 to unlink.\n"
    )
