"""The GitHub REST calls of the workflows: plan comment, drift issue, link table.

The workflows in ``.github/workflows/`` call ``reconciler github ...`` for all
they do beyond ``reconciler`` itself, so that this code is tested here, against
a fake GitHub API served on 127.0.0.1. It reads the variables that GitHub Actions
sets: ``GITHUB_API_URL``, ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL`` and
``GITHUB_RUN_ID``, and the token from ``GITHUB_TOKEN`` (or ``GH_TOKEN``), which a
step must pass in its ``env``.

Comments and issues are found by a hidden HTML marker in their body and by their
author, so a comment that anyone else writes with the same marker is ignored.

The link table is committed through the contents API rather than by ``git
push``: the update names the blob it replaces, so GitHub refuses it if the file
changed on the branch meanwhile, and no git credentials stay in the checkout.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from urllib.parse import urlsplit

import httpx

from reconciler.config import is_loopback_host
from reconciler.errors import ReconcilerError

logger = logging.getLogger(__name__)

API_VERSION = "2022-11-28"
DEFAULT_API_URL = "https://api.github.com"
DEFAULT_AUTHOR = "github-actions[bot]"
PLAN_MARKER = "<!-- reconciler:plan -->"
DRIFT_MARKER = "<!-- reconciler:drift -->"
DRIFT_LABEL = "reconciler-drift"
DRIFT_TITLE = "Drift: MyNotary differs from the manifests"
PAGE_SIZE = 100

_PLAN_META = re.compile(
    r"<!-- reconciler:plan-digest (?P<digest>[0-9a-f]+) head (?P<head>[0-9a-f]*) -->"
)
_DRIFT_META = re.compile(r"<!-- reconciler:drift-digest (?P<digest>[0-9a-f]+) -->")


class GitHubError(ReconcilerError):
    """A GitHub request failed, or GitHub does not hold what a step needs."""


@dataclass(frozen=True)
class GitHubSettings:
    """The GitHub API's URL, the repository, and the token to act with."""

    api_url: str
    repository: str
    token: str = field(repr=False)
    author: str = DEFAULT_AUTHOR
    server_url: str | None = None
    run_id: str | None = None

    @classmethod
    def from_environment(
        cls, environ: Mapping[str, str], author: str = DEFAULT_AUTHOR
    ) -> GitHubSettings:
        """Return the settings of a GitHub Actions step, from its environment."""
        api_url = environ.get("GITHUB_API_URL") or DEFAULT_API_URL
        _check_api_url(api_url)
        repository = environ.get("GITHUB_REPOSITORY") or ""
        if not re.fullmatch(r"[\w.-]+/[\w.-]+", repository):
            raise GitHubError(
                f"GITHUB_REPOSITORY is {repository!r}; set it to OWNER/NAME"
            )
        token = environ.get("GITHUB_TOKEN") or environ.get("GH_TOKEN")
        if not token:
            raise GitHubError(
                "GITHUB_TOKEN is not set; pass it in the step's env: "
                "`GITHUB_TOKEN: ${{ github.token }}`"
            )
        return cls(
            api_url.rstrip("/"),
            repository,
            token,
            author,
            environ.get("GITHUB_SERVER_URL"),
            environ.get("GITHUB_RUN_ID"),
        )

    @property
    def run_url(self) -> str | None:
        """The web page of the current workflow run, if the variables name one."""
        if not self.server_url or not self.run_id:
            return None
        server = self.server_url.rstrip("/")
        return f"{server}/{self.repository}/actions/runs/{self.run_id}"


def _check_api_url(url: str) -> None:
    parts = urlsplit(url)
    is_loopback = parts.hostname is not None and is_loopback_host(parts.hostname)
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback):
        return
    raise GitHubError(
        f"GITHUB_API_URL '{url}' is not an https URL; the token is sent only over "
        "https (or plain http to this machine)"
    )


class GitHubClient:
    """A small synchronous client of one repository's REST API."""

    def __init__(
        self,
        settings: GitHubSettings,
        *,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.settings = settings
        self._http = httpx.Client(
            base_url=settings.api_url,
            headers={
                "accept": "application/vnd.github+json",
                "authorization": f"Bearer {settings.token}",
                "x-github-api-version": API_VERSION,
                "user-agent": "up-mynotary-reconciler",
            },
            transport=transport,
            timeout=timeout,
        )

    def __enter__(self) -> GitHubClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    @property
    def repo_path(self) -> str:
        return f"/repos/{self.settings.repository}"

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        allow: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one request; raise ``GitHubError`` unless it succeeded or its status
        is in ``allow``."""
        try:
            response = self._http.request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.HTTPError as error:
            raise GitHubError(
                f"GitHub request {method} {path} failed: {self._redact(str(error))}"
            ) from None
        logger.info("%s %s %s", method, path, response.status_code)
        if response.is_success or response.status_code in allow:
            return response
        raise GitHubError(
            f"GitHub request {method} {path} failed with status "
            f"{response.status_code}: {self._redact(_message_of(response))}"
            f"{_permission_hint(response.status_code)}"
        )

    def paginate(
        self, path: str, params: Mapping[str, Any] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Yield every item of a list, following the ``next`` links of each page."""
        url: str | None = path
        query: Mapping[str, Any] | None = {**(params or {}), "per_page": PAGE_SIZE}
        while url is not None:
            response = self.request("GET", url, params=query)
            items = response.json()
            if not isinstance(items, list):
                raise GitHubError(f"GitHub request GET {path} returned no list")
            yield from items
            url = self._next_page(response)
            query = None

    def _next_page(self, response: httpx.Response) -> str | None:
        next_url = response.links.get("next", {}).get("url")
        if next_url is None:
            return None
        # The token goes only to the API it was given for.
        if not next_url.startswith(self.settings.api_url + "/"):
            raise GitHubError(
                f"GitHub sent a next page outside {self.settings.api_url}; "
                "not following it"
            )
        return str(next_url)

    def _redact(self, text: str) -> str:
        return text.replace(self.settings.token, "***")


def _message_of(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.reason_phrase
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"])
    return response.reason_phrase


def _permission_hint(status: int) -> str:
    if status in (401, 403):
        return (
            "; check the token and the job's `permissions:` (see the README, "
            "section 'Review in pull requests')"
        )
    return ""


# The plan comment


def plan_comment_body(markdown: str, digest: str | None, head_sha: str) -> str:
    """Return the comment body: markers for this code, then the rendering."""
    lines = [PLAN_MARKER]
    if digest is not None:
        lines.append(f"<!-- reconciler:plan-digest {digest} head {head_sha} -->")
    return "\n".join(lines) + "\n" + markdown


def upsert_plan_comment(client: GitHubClient, pull_request: int, body: str) -> str:
    """Create the pull request's plan comment, or edit the one there in place.

    Returns "created", "updated" or "unchanged". Only a comment by the
    configured author (the workflow's token) with the plan marker is edited.
    """
    existing = _find_comment(client, pull_request, PLAN_MARKER)
    if existing is None:
        client.request(
            "POST",
            f"{client.repo_path}/issues/{pull_request}/comments",
            json={"body": body},
        )
        return "created"
    if existing.get("body") == body:
        return "unchanged"
    client.request(
        "PATCH",
        f"{client.repo_path}/issues/comments/{existing['id']}",
        json={"body": body},
    )
    return "updated"


def _find_comment(
    client: GitHubClient, number: int, marker: str
) -> dict[str, Any] | None:
    path = f"{client.repo_path}/issues/{number}/comments"
    for comment in client.paginate(path):
        if _is_ours(client, comment) and marker in str(comment.get("body") or ""):
            return comment
    return None


def _is_ours(client: GitHubClient, item: Mapping[str, Any]) -> bool:
    user = item.get("user") or {}
    return bool(user.get("login") == client.settings.author)


@dataclass(frozen=True)
class ApprovedPlan:
    """The plan digest shown on the pull request merged as a commit."""

    pull_request: int
    digest: str


def find_approved_digest(client: GitHubClient, commit_sha: str) -> ApprovedPlan:
    """Return the digest of the plan comment on the pull request merged as
    ``commit_sha``.

    Raises ``GitHubError`` when the commit is no merge of a pull request, when
    the pull request has no plan comment, or when its comment shows the plan of
    an earlier push than the one merged.
    """
    pull = _merged_pull_request(client, commit_sha)
    number = int(pull["number"])
    comment = _find_comment(client, number, PLAN_MARKER)
    match = _PLAN_META.search(str(comment.get("body") or "")) if comment else None
    if match is None:
        raise GitHubError(
            f"pull request #{number} has no plan comment with a digest, so nothing "
            "was approved; push to it again or run `reconciler apply` by hand"
        )
    head = str(pull.get("head", {}).get("sha") or "")
    if match["head"] != head:
        raise GitHubError(
            f"the plan comment on pull request #{number} shows the plan of commit "
            f"{match['head'][:12] or '(unknown)'}, but the pull request was merged at "
            f"{head[:12]}; the plan of the last push did not finish, so nothing was "
            "approved"
        )
    return ApprovedPlan(number, match["digest"])


def _merged_pull_request(client: GitHubClient, commit_sha: str) -> dict[str, Any]:
    path = f"{client.repo_path}/commits/{commit_sha}/pulls"
    for pull in client.paginate(path):
        if pull.get("merged_at") and pull.get("merge_commit_sha") == commit_sha:
            return pull
    raise GitHubError(
        f"commit {commit_sha[:12]} is not the merge of a pull request, so no plan "
        "was approved for it; change manifests through pull requests, or run "
        "`reconciler apply` by hand"
    )


# The drift issue


def drift_issue_body(markdown: str, digest: str) -> str:
    """Return the drift issue's body: markers for this code, then the report."""
    return f"{DRIFT_MARKER}\n<!-- reconciler:drift-digest {digest} -->\n{markdown}"


def sync_drift_issue(
    client: GitHubClient,
    *,
    has_drift: bool,
    digest: str,
    body: str,
    closing_comment: str,
) -> str:
    """Open, update or close the one drift issue; return what was done.

    Returns "opened", "updated", "unchanged", "closed" or "none". While drift
    lasts with the same findings (same digest), nothing is written.
    """
    issue = _find_drift_issue(client)
    if has_drift and issue is None:
        payload = {"title": DRIFT_TITLE, "body": body, "labels": [DRIFT_LABEL]}
        client.request("POST", f"{client.repo_path}/issues", json=payload)
        return "opened"
    if has_drift and issue is not None:
        found = _DRIFT_META.search(str(issue.get("body") or ""))
        if found is not None and found["digest"] == digest:
            return "unchanged"
        path = f"{client.repo_path}/issues/{issue['number']}"
        client.request("PATCH", path, json={"body": body})
        return "updated"
    if issue is not None:
        number = issue["number"]
        client.request(
            "POST",
            f"{client.repo_path}/issues/{number}/comments",
            json={"body": closing_comment},
        )
        client.request(
            "PATCH",
            f"{client.repo_path}/issues/{number}",
            json={"state": "closed", "state_reason": "completed"},
        )
        return "closed"
    return "none"


def _find_drift_issue(client: GitHubClient) -> dict[str, Any] | None:
    params = {"state": "open", "creator": client.settings.author}
    for issue in client.paginate(f"{client.repo_path}/issues", params):
        # The issues list contains pull requests too.
        if "pull_request" in issue:
            continue
        if DRIFT_MARKER in str(issue.get("body") or ""):
            return issue
    return None


# Files on a branch


def git_blob_sha(content: bytes) -> str:
    """Return the SHA-1 that git gives a blob of ``content``, as GitHub reports."""
    header = f"blob {len(content)}\0".encode()
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


def pull_files(client: GitHubClient, branch: str, paths: list[Path]) -> list[str]:
    """Write each file as it is on ``branch``; return one line per file.

    A file that the branch does not have is left as it is here.
    """
    lines = []
    for path in paths:
        response = client.request(
            "GET",
            _contents_path(client, path),
            params={"ref": branch},
            headers={"accept": "application/vnd.github.raw+json"},
            allow=(404,),
        )
        if response.status_code == 404:
            lines.append(f"{path.as_posix()}: not on {branch}, kept as it is")
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(response.content)
        lines.append(f"{path.as_posix()}: taken from {branch}")
    return lines


def commit_files(
    client: GitHubClient, branch: str, paths: list[Path], message: str
) -> list[str]:
    """Commit each local file that differs from ``branch``; return one line each.

    Each file is one commit through the contents API, conditional on the blob
    read just before, so a concurrent change of the file fails the commit
    instead of being overwritten. Files missing here are skipped.
    """
    lines = []
    for path in paths:
        if not path.exists():
            lines.append(f"{path.as_posix()}: absent here, not committed")
            continue
        lines.append(_commit_file(client, branch, path, message))
    return lines


def _commit_file(client: GitHubClient, branch: str, path: Path, message: str) -> str:
    content = path.read_bytes()
    contents_path = _contents_path(client, path)
    current = client.request("GET", contents_path, params={"ref": branch}, allow=(404,))
    payload: dict[str, Any] = {
        "message": message,
        "content": base64.b64encode(content).decode("ascii"),
        "branch": branch,
    }
    if current.status_code != 404:
        sha = str(current.json().get("sha"))
        if sha == git_blob_sha(content):
            return f"{path.as_posix()}: unchanged on {branch}"
        payload["sha"] = sha
    response = client.request("PUT", contents_path, json=payload, allow=(409, 422))
    if response.status_code in (409, 422):
        raise GitHubError(
            f"GitHub rejected the commit of {path.as_posix()} to {branch}: "
            f"{_message_of(response)}; the file changed on {branch} meanwhile. "
            f"Merge {branch}'s version with this run's by hand"
        )
    commit = response.json().get("commit") or {}
    return f"{path.as_posix()}: committed to {branch} as {str(commit.get('sha'))[:12]}"


def _contents_path(client: GitHubClient, path: Path) -> str:
    return f"{client.repo_path}/contents/{quote(path.as_posix())}"
