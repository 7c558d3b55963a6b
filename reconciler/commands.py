"""One function per command: validate, plan, apply, status.

Each returns the exit code and writes to the ``Console`` it is given; the command
line in ``reconciler.cli`` only parses options and calls these.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import TextIO
from typing import TypeVar

import httpx

from reconciler.apply import ApplyResult
from reconciler.apply import apply_plan
from reconciler.config import Settings
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import EXIT_CHANGES
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_OK
from reconciler.errors import ManifestError
from reconciler.links import LinkTable
from reconciler.manifest import LoadedManifests
from reconciler.manifest import load_manifests
from reconciler.mynotary.client import MyNotaryClient
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import Plan
from reconciler.plan import PlanOptions
from reconciler.plan import compute_plan
from reconciler.remote import read_remote_state
from reconciler.render.text import SYMBOLS
from reconciler.render.text import render_plan
from reconciler.sandbox.app import create_app
from reconciler.sandbox.demo import DemoError
from reconciler.sandbox.demo import load_demo
from reconciler.sandbox.store import RecordStore
from reconciler.status import compute_status
from reconciler.status import render_status

SANDBOX_NOTICE = (
    "notice: no MyNotary URL is set, so the embedded sandbox in .reconciler/ is the "
    "target (set MYNOTARY_URL to use MyNotary)"
)


@dataclass
class Console:
    """Where a command writes: results to ``out``, notices and progress to ``err``."""

    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    styler: Callable[[str, str], str] = lambda text, colour: text

    def print(self, text: str = "") -> None:
        self.out.write(text if text.endswith("\n") else text + "\n")
        self.out.flush()

    def notice(self, text: str) -> None:
        self.err.write(text + "\n")
        self.err.flush()


def run_validate(paths: list[Path], *, strict: bool, console: Console) -> int:
    """Validate the manifests; exit 0 valid, 1 invalid (or warnings with strict)."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        print_manifest_error(error, console)
        return EXIT_ERROR
    for warning in loaded.warnings:
        console.print(str(warning))
    lots = sum(len(programme.lots) for programme in loaded.programmes)
    console.print(
        f"{len(loaded.files)} manifest(s) valid: {len(loaded.programmes)} "
        f"programme(s), {lots} lot(s), {len(loaded.warnings)} warning(s)."
    )
    if strict and loaded.warnings:
        console.print("Failing because of warnings (--strict).")
        return EXIT_ERROR
    return EXIT_OK


def print_manifest_error(error: ManifestError, console: Console) -> None:
    """Print every issue of ``error`` on its own line, then the counts."""
    for issue in error.issues:
        console.print(str(issue))
    errors = sum(1 for issue in error.issues if not issue.is_warning)
    warnings = len(error.issues) - errors
    console.print(
        f"{errors} error(s), {warnings} warning(s); nothing was sent to MyNotary."
    )


@asynccontextmanager
async def open_client(
    settings: Settings, console: Console
) -> AsyncIterator[MyNotaryClient]:
    """Yield a client for the target; the embedded sandbox runs in this process."""
    transport: httpx.AsyncBaseTransport | None = None
    store: RecordStore | None = None
    base_url = settings.url
    if settings.is_sandbox:
        console.notice(SANDBOX_NOTICE)
        settings.sandbox_database.parent.mkdir(parents=True, exist_ok=True)
        store = RecordStore(settings.sandbox_database)
        transport = httpx.ASGITransport(app=create_app(store))
        base_url = "http://sandbox.invalid"
    client = MyNotaryClient(
        base_url,
        organization_id=settings.organization_id,
        creator_id=settings.user_id,
        api_key=settings.api_key,
        transport=transport,
        timeout=settings.timeout,
    )
    try:
        yield client
    finally:
        await client.aclose()
        if store is not None:
            store.close()


@dataclass(frozen=True)
class PlanRequest:
    paths: list[Path]
    settings: Settings
    options: PlanOptions


async def build_plan(
    request: PlanRequest, loaded: LoadedManifests, client: MyNotaryClient
) -> tuple[LinkTable, Plan]:
    """Read the link table and MyNotary, and compute the plan of valid manifests."""
    links = LinkTable.load(request.settings.links_path, request.settings.target)
    remote = await read_remote_state(client, loaded.programmes, links)
    plan = compute_plan(loaded.programmes, links, remote, request.options)
    return links, plan


def run_plan(request: PlanRequest, *, detailed_exitcode: bool, console: Console) -> int:
    """Print the plan; exit 1 on problems, else 0 (or 2 for changes with the flag)."""

    async def main() -> Plan:
        loaded = load_manifests(request.paths)
        async with open_client(request.settings, console) as client:
            _, plan = await build_plan(request, loaded, client)
            return plan

    plan = _run_guarded(main, console)
    if plan is None:
        return EXIT_ERROR
    console.print(render_plan(plan, console.styler))
    if plan.problems:
        return EXIT_ERROR
    if detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def run_status(request: PlanRequest, *, as_json: bool, console: Console) -> int:
    """Print the links screen for the manifests."""

    async def main() -> tuple[LoadedManifests, LinkTable, Plan]:
        loaded = load_manifests(request.paths)
        async with open_client(request.settings, console) as client:
            links, plan = await build_plan(request, loaded, client)
            return loaded, links, plan

    result = _run_guarded(main, console)
    if result is None:
        return EXIT_ERROR
    loaded, links, plan = result
    rows = compute_status(loaded.programmes, links, plan)
    if as_json:
        document = {
            "target": str(plan.target),
            "records": [row.to_json() for row in rows],
        }
        console.print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        console.print(render_status(rows))
    return EXIT_OK


@dataclass(frozen=True)
class ApplyRequest:
    plan: PlanRequest
    auto_approve: bool
    parallelism: int
    confirm: Callable[[], bool]


def run_apply(request: ApplyRequest, console: Console) -> int:
    """Plan, ask for approval, apply; exit 0 when every change was applied."""

    async def main() -> ApplyResult | None:
        loaded = load_manifests(request.plan.paths)
        async with open_client(request.plan.settings, console) as client:
            links, plan = await build_plan(request.plan, loaded, client)
            console.print(render_plan(plan, console.styler))
            if plan.problems:
                return None
            if not plan.has_changes:
                return ApplyResult()
            if not request.auto_approve and not request.confirm():
                console.print("Apply cancelled; nothing was changed.")
                return ApplyResult()
            return await apply_plan(
                plan,
                client,
                links,
                parallelism=request.parallelism,
                on_progress=lambda change, _: console.print(_progress_line(change)),
            )

    result = _run_guarded(main, console)
    if result is None:
        return EXIT_ERROR
    if not result.applied and result.is_success:
        return EXIT_OK
    console.print(f"Apply finished: {result.summary()}.")
    for failed in result.failed:
        console.print(
            f"  failed: {failed.change.label} [{failed.change.up_id}]: {failed.error}"
        )
    for change in result.not_attempted:
        console.print(f"  not attempted: {change.label} [{change.up_id}]")
    return EXIT_OK if result.is_success else EXIT_ERROR


def _progress_line(change: Change) -> str:
    symbol = SYMBOLS[change.action]
    verbs = {
        Action.CREATE: "created",
        Action.UPDATE: "updated",
        Action.LINK: "linked",
        Action.UNLINK: "unlinked",
    }
    return f"{symbol} {verbs[change.action]} {change.label} [{change.up_id}]"


_T = TypeVar("_T")


def _run_guarded(
    main: Callable[[], Coroutine[Any, Any, _T]], console: Console
) -> _T | None:
    """Run the coroutine function ``main``; print a manifest error and return None."""
    try:
        return asyncio.run(main())
    except ManifestError as error:
        print_manifest_error(error, console)
        return None


def run_demo(paths: list[Path], console: Console) -> int:
    """Reset the embedded sandbox and its link table, then load the demo scenario."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        print_manifest_error(error, console)
        return EXIT_ERROR
    settings = resolve_settings(TargetOptions(target="sandbox"), {})
    for path in (
        settings.sandbox_database,
        settings.links_path,
        settings.links_path.with_name(settings.links_path.name + ".journal"),
    ):
        path.unlink(missing_ok=True)
    settings.sandbox_database.parent.mkdir(parents=True, exist_ok=True)
    links = LinkTable(settings.links_path, settings.target)
    with RecordStore(settings.sandbox_database) as store:
        try:
            notes = load_demo(loaded.programmes, store, links)
        except DemoError as error:
            console.notice(f"error: {error}")
            return EXIT_ERROR
    console.print(f"Sandbox reset in {settings.sandbox_database.parent}/ with:")
    for note in notes:
        console.print(f"  {note}")
    console.print("Next: reconciler plan")
    return EXIT_OK
