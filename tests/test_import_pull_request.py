"""The import workflow: its static check, and its GitHub calls against a fake API.

The fake of ``fake_github`` serves issues, comments and contents. The git data and
pull request routes the import needs are added here, on the same server.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import fake_github
import pytest
import yaml
from conftest import CliResult
from fake_github import REPOSITORY
from fake_github import TOKEN
from fake_github import FakeGitHub
from fake_github import RecordedRequest
from fake_github import github_environment
from fake_github import serve_fake_github
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

from reconciler.github import GitHubClient
from reconciler.github import GitHubSettings
from reconciler.importer.pull_request import IMPORT_BRANCH
from reconciler.importer.pull_request import IMPORT_MARKER
from reconciler.importer.pull_request import ImportProposal
from reconciler.importer.pull_request import PullRequestAction
from reconciler.importer.pull_request import import_pull_request_body
from reconciler.importer.pull_request import open_import_pull_request

ROOT = Path(__file__).parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "import.yml"
GRID = ROOT / "tests" / "fixtures" / "import" / "lot-grid-fr-utf8-bom.csv"
BASE_SHA = "c" * 40
BASE_TREE = "d" * 40
RunCli = Callable[..., CliResult]


def _sha(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()


@dataclass
class FakeGit:
    """Branches, commits, trees and pull requests of the fake repository."""

    refs: dict[str, str] = field(default_factory=lambda: {"main": BASE_SHA})
    commits: dict[str, dict[str, Any]] = field(
        default_factory=lambda: {BASE_SHA: {"tree": BASE_TREE, "parents": []}}
    )
    trees: dict[str, dict[str, str]] = field(default_factory=lambda: {BASE_TREE: {}})
    pulls: dict[int, dict[str, Any]] = field(default_factory=dict)
    numbers: Iterator[int] = field(default_factory=lambda: itertools.count(7))

    def files_of(self, branch: str) -> dict[str, str]:
        """Return the files of the commit ``branch`` points at."""
        return self.trees[self.commits[self.refs[branch]]["tree"]]


def _git_routes(state: FakeGitHub, git: FakeGit) -> list[Route]:
    prefix = "/repos/{owner}/{name}"

    async def refuse(request: Request) -> Response | None:
        body = None
        if request.method in ("POST", "PATCH"):
            body = await request.json()
        recorded = RecordedRequest(
            request.method, request.url.path, dict(request.query_params), body
        )
        state.requests.append(recorded)
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        return None

    def body_of() -> Any:
        return state.requests[-1].body

    async def get_ref(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        branch = request.path_params["branch"]
        if branch not in git.refs:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return JSONResponse({"object": {"sha": git.refs[branch]}})

    async def create_ref(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        branch = body_of()["ref"].removeprefix("refs/heads/")
        if branch in git.refs:
            return JSONResponse(
                {"message": "Reference already exists"}, status_code=422
            )
        git.refs[branch] = body_of()["sha"]
        return JSONResponse({"object": {"sha": git.refs[branch]}}, status_code=201)

    async def update_ref(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        git.refs[request.path_params["branch"]] = body_of()["sha"]
        return JSONResponse({"object": {"sha": body_of()["sha"]}})

    async def get_commit(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        commit = git.commits[request.path_params["sha"]]
        return JSONResponse(
            {"sha": request.path_params["sha"], "tree": {"sha": commit["tree"]}}
        )

    async def create_tree(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        files = dict(git.trees[body_of()["base_tree"]])
        files.update({entry["path"]: entry["content"] for entry in body_of()["tree"]})
        sha = _sha("tree", files)
        git.trees[sha] = files
        return JSONResponse({"sha": sha}, status_code=201)

    async def create_commit(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        sha = _sha("commit", body_of())
        git.commits[sha] = {"tree": body_of()["tree"], "parents": body_of()["parents"]}
        return JSONResponse({"sha": sha}, status_code=201)

    async def pulls(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        if request.method == "POST":
            number = next(git.numbers)
            pull = {**body_of(), "number": number, "state": "open"}
            pull["html_url"] = f"https://github.example/{REPOSITORY}/pull/{number}"
            git.pulls[number] = pull
            return JSONResponse(pull, status_code=201)
        owner = REPOSITORY.split("/")[0]
        found = [
            pull
            for pull in git.pulls.values()
            if f"{owner}:{pull['head']}" == request.query_params.get("head")
            and pull["state"] == request.query_params.get("state", "open")
        ]
        return JSONResponse(found)

    async def pull(request: Request) -> Response:
        if (refused := await refuse(request)) is not None:
            return refused
        number = request.path_params["number"]
        git.pulls[number].update(body_of())
        return JSONResponse(git.pulls[number])

    return [
        Route(f"{prefix}/git/ref/heads/{{branch:path}}", get_ref, methods=["GET"]),
        Route(f"{prefix}/git/refs", create_ref, methods=["POST"]),
        Route(
            f"{prefix}/git/refs/heads/{{branch:path}}", update_ref, methods=["PATCH"]
        ),
        Route(f"{prefix}/git/commits/{{sha}}", get_commit, methods=["GET"]),
        Route(f"{prefix}/git/trees", create_tree, methods=["POST"]),
        Route(f"{prefix}/git/commits", create_commit, methods=["POST"]),
        Route(f"{prefix}/pulls", pulls, methods=["GET", "POST"]),
        Route(f"{prefix}/pulls/{{number:int}}", pull, methods=["PATCH"]),
    ]


@pytest.fixture
def fake() -> FakeGitHub:
    return FakeGitHub()


@pytest.fixture
def git() -> FakeGit:
    return FakeGit()


@pytest.fixture
def api_url(
    fake: FakeGitHub, git: FakeGit, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    create_app = fake_github.create_app

    def create_app_with_git(state: FakeGitHub) -> Starlette:
        app = create_app(state)
        app.router.routes[:0] = _git_routes(state, git)
        return app

    monkeypatch.setattr(fake_github, "create_app", create_app_with_git)
    with serve_fake_github(fake) as url:
        yield url


@pytest.fixture
def client(api_url: str) -> Iterator[GitHubClient]:
    settings = GitHubSettings.from_environment(github_environment(api_url))
    with GitHubClient(settings) as github:
        yield github


def proposal(text: str = "lots: []\n") -> ImportProposal:
    files = {Path("manifests/residence-les-iris.yaml"): text.encode()}
    return ImportProposal(files, "Import Up exports", "Lots: 1 created.")


def test_pull_request_opened(client: GitHubClient, git: FakeGit) -> None:
    result = open_import_pull_request(client, proposal())

    assert result.action is PullRequestAction.OPENED
    assert git.pulls[result.number]["head"] == IMPORT_BRANCH
    assert git.pulls[result.number]["base"] == "main"
    assert git.refs[IMPORT_BRANCH] == result.head_sha


def test_pull_request_commit_on_base(client: GitHubClient, git: FakeGit) -> None:
    result = open_import_pull_request(client, proposal())

    assert git.commits[result.head_sha]["parents"] == [BASE_SHA]
    assert git.files_of(IMPORT_BRANCH) == {
        "manifests/residence-les-iris.yaml": "lots: []\n"
    }


def test_pull_request_updated_once(client: GitHubClient, git: FakeGit) -> None:
    first = open_import_pull_request(client, proposal())

    second = open_import_pull_request(client, proposal("lots: [1]\n"))

    assert second.action is PullRequestAction.UPDATED
    assert second.number == first.number
    assert len(git.pulls) == 1
    assert git.files_of(IMPORT_BRANCH) == {
        "manifests/residence-les-iris.yaml": "lots: [1]\n"
    }


def test_pull_request_branch_moved_to_new_base(
    client: GitHubClient, git: FakeGit
) -> None:
    open_import_pull_request(client, proposal())
    git.commits["e" * 40] = {"tree": BASE_TREE, "parents": [BASE_SHA]}
    git.refs["main"] = "e" * 40

    result = open_import_pull_request(client, proposal())

    assert git.commits[result.head_sha]["parents"] == ["e" * 40]


def test_pull_request_body() -> None:
    body = import_pull_request_body("Lots: 1 created.\n")

    assert body.startswith(IMPORT_MARKER + "\n")
    assert "```text\nLots: 1 created.\n```\n" in body


def test_pull_request_needs_files(client: GitHubClient) -> None:
    with pytest.raises(ValueError, match="at least one changed file"):
        open_import_pull_request(client, ImportProposal({}, "t", "s"))


def test_cli_pull_request_outputs(
    run_cli: RunCli, api_url: str, workdir: Path, git: FakeGit
) -> None:
    (workdir / "manifests").mkdir()
    (workdir / "manifests" / "a.yaml").write_text("lots: []\n", encoding="utf-8")
    (workdir / "summary.txt").write_text("Lots: 1 created.\n", encoding="utf-8")

    result = run_cli(
        *("import", "pull-request", "--summary", "summary.txt", "manifests/a.yaml"),
        extra_env=github_environment(api_url),
    )

    assert result.code == 0
    assert result.stdout.splitlines() == [
        "pull-request=7",
        f"head-sha={git.refs[IMPORT_BRANCH]}",
    ]
    assert TOKEN not in result.stdout + result.stderr


def test_cli_pull_request_no_change(
    run_cli: RunCli, api_url: str, workdir: Path, fake: FakeGitHub
) -> None:
    (workdir / "summary.txt").write_text("", encoding="utf-8")

    result = run_cli(
        "import",
        "pull-request",
        "--summary",
        "summary.txt",
        extra_env=github_environment(api_url),
    )

    assert result.code == 0
    assert result.stdout == ""
    assert fake.requests == []


def test_cli_pull_request_rejects_outside_path(
    run_cli: RunCli, api_url: str, workdir: Path
) -> None:
    (workdir / "summary.txt").write_text("", encoding="utf-8")

    result = run_cli(
        *("import", "pull-request", "--summary", "summary.txt", "../secret.yaml"),
        extra_env=github_environment(api_url),
    )

    assert result.code == 1
    assert result.stderr.strip() == (
        "error: ../secret.yaml is not a path inside the repository; pass paths "
        "relative to its root, as git status prints them"
    )


def load_workflow() -> dict[Any, Any]:
    document: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return document


def step(name: str) -> dict[str, Any]:
    steps: list[dict[str, Any]] = load_workflow()["jobs"]["import"]["steps"]
    return next(item for item in steps if item.get("name") == name)


def test_workflow_schema() -> None:
    checker = Path(sys.executable).with_name("check-jsonschema")

    completed = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_workflow_trigger() -> None:
    # PyYAML reads the key `on` as True (YAML 1.1).
    trigger = load_workflow()[True]

    assert trigger["push"] == {"branches": ["main"], "paths": ["exports/**"]}


def test_workflow_permissions() -> None:
    workflow = load_workflow()

    assert workflow["permissions"] == {}
    assert workflow["jobs"]["import"]["permissions"] == {
        "contents": "write",
        "pull-requests": "write",
    }


def test_workflow_checkout_keeps_no_token() -> None:
    checkout = load_workflow()["jobs"]["import"]["steps"][0]

    assert checkout["with"] == {"persist-credentials": False}


def run_step(
    name: str, cwd: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """Run the shell script of the workflow step ``name`` with bash, as Actions does."""
    path = f"{Path(sys.executable).parent}:/usr/bin:/bin"
    return subprocess.run(
        ["bash", "-e", "-c", step(name)["run"]],
        cwd=cwd,
        env={"PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def repository(tmp_path: Path) -> Path:
    """Return a git repository laid out like the project: mappings and one export."""
    folder = tmp_path / "repository"
    (folder / "exports" / "lot-grid-fr").mkdir(parents=True)
    shutil.copytree(ROOT / "mappings", folder / "mappings")
    shutil.copyfile(GRID, folder / "exports" / "lot-grid-fr" / "grid.csv")
    git = ["git", "-c", "user.name=Test", "-c", "user.email=test@example.invalid"]
    subprocess.run(["git", "init", "-q", str(folder)], check=True)
    subprocess.run([*git, "-C", str(folder), "add", "."], check=True)
    subprocess.run([*git, "-C", str(folder), "commit", "-q", "-m", "base"], check=True)
    return folder


def test_workflow_steps_open_pull_request(
    repository: Path, api_url: str, git: FakeGit
) -> None:
    outputs = repository.parent / "github-output"
    outputs.write_text("", encoding="utf-8")
    environment = github_environment(api_url, GITHUB_OUTPUT=str(outputs))

    imported = run_step("Import every export", repository, environment)
    opened = run_step("Open or update the import pull request", repository, environment)

    assert imported.returncode == 0, imported.stderr
    assert opened.returncode == 0, opened.stderr
    assert sorted(git.files_of(IMPORT_BRANCH)) == [
        "manifests/residence-cote-plage.yaml",
        "manifests/residence-les-iris.yaml",
    ]
    assert outputs.read_text(encoding="utf-8").splitlines() == [
        "pull-request=7",
        f"head-sha={git.refs[IMPORT_BRANCH]}",
    ]
    body = git.pulls[7]["body"]
    assert "$ reconciler import csv exports/lot-grid-fr/grid.csv" in body
    assert "Wrote 2 manifest(s)." in body
