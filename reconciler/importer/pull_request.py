"""Open or update the one pull request that carries imported manifest changes.

The import workflow runs ``reconciler import csv`` on a checkout of the base branch,
then calls ``open_import_pull_request`` with the manifest files that changed. The
files become one commit on top of the base branch, made through GitHub's git data
API, and the fixed import branch is moved to it (forced, since the branch holds only
the latest import). The pull request from that branch is opened, or its title and
body are updated when it is already open, so each new export replaces the previous
proposal instead of piling up pull requests.
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from reconciler.github import GitHubClient
from reconciler.github import GitHubError

logger = logging.getLogger(__name__)

IMPORT_BRANCH = "import/up-exports"
IMPORT_MARKER = "<!-- reconciler:import -->"
FILE_MODE = "100644"
# GitHub rejects pull request bodies above 65,536 characters.
MAX_BODY_CHARS = 60_000


class PullRequestAction(enum.Enum):
    """Outcome of this run for the import pull request."""

    OPENED = "opened"
    UPDATED = "updated"


@dataclass(frozen=True)
class ImportProposal:
    """The files an import changed, and how to present them for review."""

    files: dict[Path, bytes]
    title: str
    summary: str
    base: str = "main"
    branch: str = IMPORT_BRANCH


@dataclass(frozen=True)
class PullRequestResult:
    """The import pull request after this run: number, web page and head commit."""

    number: int
    url: str
    head_sha: str
    action: PullRequestAction


def import_pull_request_body(summary: str) -> str:
    """Return the pull request body: the import summaries, in a code block."""
    if len(summary) > MAX_BODY_CHARS:
        summary = summary[:MAX_BODY_CHARS] + "\n… (cut; the workflow log has the rest)"
    fence = "````" if "```" in summary else "```"
    return (
        f"{IMPORT_MARKER}\n"
        "Manifest changes imported from the lot grids under `exports/`. The plan "
        "comment shows what they would change on MyNotary.\n\n"
        f"{fence}text\n{summary.rstrip()}\n{fence}\n"
    )


def open_import_pull_request(
    client: GitHubClient, proposal: ImportProposal
) -> PullRequestResult:
    """Commit the proposal's files on top of the base branch, point the import
    branch at that commit, and open or update its pull request."""
    if not proposal.files:
        raise ValueError("an import proposal needs at least one changed file")
    base_sha = _branch_head(client, proposal.base)
    if base_sha is None:
        raise GitHubError(f"the base branch {proposal.base} does not exist")
    commit_sha = _commit_files(client, base_sha, proposal)
    _move_branch(client, proposal.branch, commit_sha)
    return _upsert_pull_request(client, proposal, commit_sha)


def _git_path(client: GitHubClient, tail: str) -> str:
    return f"{client.repo_path}/git/{tail}"


def _branch_head(client: GitHubClient, branch: str) -> str | None:
    path = _git_path(client, f"ref/heads/{quote(branch)}")
    response = client.request("GET", path, allow=(404,))
    if response.status_code == 404:
        return None
    return str(response.json()["object"]["sha"])


def _commit_files(client: GitHubClient, base_sha: str, proposal: ImportProposal) -> str:
    base = client.request("GET", _git_path(client, f"commits/{base_sha}")).json()
    entries = [
        _tree_entry(path, content) for path, content in sorted(proposal.files.items())
    ]
    tree = client.request(
        "POST",
        _git_path(client, "trees"),
        json={"base_tree": base["tree"]["sha"], "tree": entries},
    ).json()
    commit = client.request(
        "POST",
        _git_path(client, "commits"),
        json={"message": proposal.title, "tree": tree["sha"], "parents": [base_sha]},
    ).json()
    logger.info("committed %d file(s) as %s", len(entries), commit["sha"])
    return str(commit["sha"])


def _tree_entry(path: Path, content: bytes) -> dict[str, Any]:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        raise GitHubError(
            f"{path.as_posix()} is not UTF-8 text; manifests are"
        ) from None
    return {"path": path.as_posix(), "mode": FILE_MODE, "type": "blob", "content": text}


def _move_branch(client: GitHubClient, branch: str, sha: str) -> None:
    if _branch_head(client, branch) is None:
        payload = {"ref": f"refs/heads/{branch}", "sha": sha}
        client.request("POST", _git_path(client, "refs"), json=payload)
        return
    path = _git_path(client, f"refs/heads/{quote(branch)}")
    client.request("PATCH", path, json={"sha": sha, "force": True})


def _upsert_pull_request(
    client: GitHubClient, proposal: ImportProposal, head_sha: str
) -> PullRequestResult:
    body = import_pull_request_body(proposal.summary)
    owner = client.settings.repository.split("/")[0]
    query = {
        "head": f"{owner}:{proposal.branch}",
        "base": proposal.base,
        "state": "open",
    }
    found = next(iter(client.paginate(f"{client.repo_path}/pulls", query)), None)
    if found is None:
        payload = {
            "title": proposal.title,
            "head": proposal.branch,
            "base": proposal.base,
            "body": body,
        }
        created = client.request("POST", f"{client.repo_path}/pulls", json=payload)
        return _result(created.json(), head_sha, PullRequestAction.OPENED)
    path = f"{client.repo_path}/pulls/{int(found['number'])}"
    updated = client.request(
        "PATCH", path, json={"title": proposal.title, "body": body}
    )
    return _result(updated.json(), head_sha, PullRequestAction.UPDATED)


def _result(
    pull: dict[str, Any], head_sha: str, action: PullRequestAction
) -> PullRequestResult:
    return PullRequestResult(
        int(pull["number"]), str(pull.get("html_url", "")), head_sha, action
    )
