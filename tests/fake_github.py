"""A small fake of the GitHub REST API, served on 127.0.0.1 for the workflow steps.

It keeps issues, pull requests, comments and file contents in memory, and
implements only the requests ``reconciler.github`` sends, with GitHub's shapes:
pages with a ``Link`` header, ``pull_request`` members on pull requests in the
issue list, blob SHAs and 409 on a stale contents update. Every request is
recorded, so tests can check what was sent, and the token is checked on each.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.responses import Response
from starlette.routing import Route

TOKEN = "ghs_fake-token-for-tests-0123456789"
BOT = "github-actions[bot]"
REPOSITORY = "acme/programmes"


def blob_sha(content: bytes) -> str:
    """Return git's blob SHA-1 of ``content``."""
    header = f"blob {len(content)}\0".encode()
    return hashlib.sha1(header + content, usedforsecurity=False).hexdigest()


@dataclass
class RecordedRequest:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeGitHub:
    """The state of the fake: what GitHub holds, and the requests it received."""

    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, dict[str, Any]] = field(default_factory=dict)
    pulls_of_commit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)
    page_size: int = 100
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1000))

    def add_issue(
        self, body: str, *, user: str = BOT, is_pull: bool = False, state: str = "open"
    ) -> dict[str, Any]:
        number = len(self.issues) + 1
        issue: dict[str, Any] = {
            "number": number,
            "title": f"issue {number}",
            "body": body,
            "state": state,
            "user": {"login": user},
            "labels": [],
        }
        if is_pull:
            issue["pull_request"] = {"url": f"/pulls/{number}"}
        self.issues[number] = issue
        return issue

    def add_comment(self, issue: int, body: str, user: str = BOT) -> dict[str, Any]:
        comment = {
            "id": next(self._ids),
            "issue": issue,
            "body": body,
            "user": {"login": user},
        }
        self.comments[comment["id"]] = comment
        return comment

    def comments_of(self, issue: int) -> list[dict[str, Any]]:
        return [item for item in self.comments.values() if item["issue"] == issue]

    def merged_pull(self, merge_sha: str, head_sha: str) -> dict[str, Any]:
        """Add a pull request merged as ``merge_sha`` from head ``head_sha``."""
        pull = self.add_issue("", is_pull=True)
        record = {
            "number": pull["number"],
            "merged_at": "2026-01-05T10:00:00Z",
            "merge_commit_sha": merge_sha,
            "head": {"sha": head_sha},
        }
        self.pulls_of_commit.setdefault(merge_sha, []).append(record)
        return record

    def writes(self) -> list[RecordedRequest]:
        return [item for item in self.requests if item.method != "GET"]


def create_app(state: FakeGitHub) -> Starlette:
    """Return the ASGI app that serves ``state``."""
    prefix = "/repos/{owner}/{name}"

    async def check(request: Request) -> Response | None:
        body = None
        if request.method in ("POST", "PATCH", "PUT"):
            body = await request.json()
        state.requests.append(
            RecordedRequest(
                request.method, request.url.path, dict(request.query_params), body
            )
        )
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"message": "Bad credentials"}, status_code=401)
        if f"{request.path_params['owner']}/{request.path_params['name']}" != (
            REPOSITORY
        ):
            return JSONResponse({"message": "Not Found"}, status_code=404)
        return None

    def page(request: Request, items: list[dict[str, Any]]) -> Response:
        size = min(int(request.query_params.get("per_page", 30)), state.page_size)
        number = int(request.query_params.get("page", 1))
        chunk = items[(number - 1) * size : number * size]
        headers = {}
        if number * size < len(items):
            query = dict(request.query_params)
            query.update(page=str(number + 1), per_page=str(size))
            next_url = request.url.replace_query_params(**query)
            headers["link"] = f'<{next_url}>; rel="next"'
        return JSONResponse(chunk, headers=headers)

    async def issue_comments(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        number = int(request.path_params["number"])
        if request.method == "POST":
            body = state.requests[-1].body
            comment = state.add_comment(number, body["body"])
            return JSONResponse(comment, status_code=201)
        return page(request, state.comments_of(number))

    async def comment(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        item = state.comments[int(request.path_params["comment_id"])]
        item["body"] = state.requests[-1].body["body"]
        return JSONResponse(item)

    async def issues(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        if request.method == "POST":
            body = state.requests[-1].body
            issue = state.add_issue(body["body"])
            issue["title"] = body["title"]
            issue["labels"] = [{"name": name} for name in body.get("labels", [])]
            return JSONResponse(issue, status_code=201)
        wanted_state = request.query_params.get("state", "open")
        creator = request.query_params.get("creator")
        found = [
            issue
            for issue in state.issues.values()
            if issue["state"] == wanted_state
            and (creator is None or issue["user"]["login"] == creator)
        ]
        return page(request, found)

    async def issue(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        item = state.issues[int(request.path_params["number"])]
        item.update(state.requests[-1].body)
        return JSONResponse(item)

    async def commit_pulls(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        return page(request, state.pulls_of_commit.get(request.path_params["sha"], []))

    async def contents(request: Request) -> Response:
        if (refused := await check(request)) is not None:
            return refused
        path = request.path_params["path"]
        if request.method == "PUT":
            return put_contents(path, state.requests[-1].body)
        branch = request.query_params.get("ref", "main")
        content = state.files.get((branch, path))
        if content is None:
            return JSONResponse({"message": "Not Found"}, status_code=404)
        if request.headers.get("accept") == "application/vnd.github.raw+json":
            return Response(content, media_type="application/vnd.github.raw")
        return JSONResponse(
            {
                "path": path,
                "sha": blob_sha(content),
                "encoding": "base64",
                "content": base64.b64encode(content).decode("ascii"),
            }
        )

    def put_contents(path: str, body: dict[str, Any]) -> Response:
        branch = body.get("branch", "main")
        current = state.files.get((branch, path))
        current_sha = None if current is None else blob_sha(current)
        if body.get("sha") != current_sha:
            message = f"{path} does not match {body.get('sha')}"
            return JSONResponse({"message": message}, status_code=409)
        state.files[(branch, path)] = base64.b64decode(body["content"])
        commit = {"sha": hashlib.sha1(body["content"].encode()).hexdigest()}
        return JSONResponse({"commit": commit}, status_code=200 if current else 201)

    routes = [
        Route(
            f"{prefix}/issues/{{number:int}}/comments",
            issue_comments,
            methods=["GET", "POST"],
        ),
        Route(
            f"{prefix}/issues/comments/{{comment_id:int}}", comment, methods=["PATCH"]
        ),
        Route(f"{prefix}/issues", issues, methods=["GET", "POST"]),
        Route(f"{prefix}/issues/{{number:int}}", issue, methods=["PATCH"]),
        Route(f"{prefix}/commits/{{sha}}/pulls", commit_pulls, methods=["GET"]),
        Route(f"{prefix}/contents/{{path:path}}", contents, methods=["GET", "PUT"]),
    ]
    return Starlette(routes=routes)


@contextmanager
def serve_fake_github(state: FakeGitHub) -> Iterator[str]:
    """Serve ``state`` on 127.0.0.1 in a thread; yield the API's base URL."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = uvicorn.Config(
            create_app(state), lifespan="off", ws="none", log_level="warning"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run, kwargs={"sockets": [listener]}, daemon=True
        )
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("the fake GitHub API did not start")
            time.sleep(0.01)
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}"
        finally:
            server.should_exit = True
            thread.join()


def github_environment(api_url: str, **extra: str) -> dict[str, str]:
    """Return the variables GitHub Actions sets in a step, for the fake."""
    return {
        "GITHUB_API_URL": api_url,
        "GITHUB_REPOSITORY": REPOSITORY,
        "GITHUB_TOKEN": TOKEN,
        "GITHUB_SERVER_URL": "https://github.example",
        "GITHUB_RUN_ID": "4242",
        **extra,
    }
