"""One function per command: validate, plan, apply, status.

Each returns the exit code and writes to the ``Console`` it is given; the command
line in ``reconciler.cli`` only parses options and calls these.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from collections.abc import Callable
from collections.abc import Coroutine
from collections.abc import Iterable
from collections.abc import Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import TextIO
from typing import TypeVar

import httpx

from reconciler.apply import ApplyResult
from reconciler.apply import apply_plan
from reconciler.approval import ApplyLog
from reconciler.approval import check_fresh_plan
from reconciler.approval import check_saved_plan
from reconciler.approval import check_versions
from reconciler.approval import decide_expected_digest
from reconciler.audit import describe_target
from reconciler.config import SANDBOX_DIR
from reconciler.config import Settings
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.drift import DriftReport
from reconciler.drift import DriftReportError
from reconciler.drift import compute_drift
from reconciler.drift import from_json as drift_from_json
from reconciler.drift import to_json as drift_to_json
from reconciler.errors import EXIT_CHANGES
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_INTERRUPTED
from reconciler.errors import EXIT_OK
from reconciler.errors import ManifestError
from reconciler.errors import ReconcilerError
from reconciler.github import GitHubClient
from reconciler.github import GitHubSettings
from reconciler.github import commit_files
from reconciler.github import drift_issue_body
from reconciler.github import find_approved_digest
from reconciler.github import plan_comment_body
from reconciler.github import pull_files
from reconciler.github import sync_drift_issue
from reconciler.github import upsert_plan_comment
from reconciler.importer import ImportRequest
from reconciler.importer import LotGridError
from reconciler.importer import import_csv
from reconciler.importer import render_report
from reconciler.importer.pull_request import ImportProposal
from reconciler.importer.pull_request import open_import_pull_request
from reconciler.links import LinkTable
from reconciler.lock import LockInfo
from reconciler.lock import TargetLock
from reconciler.lock import force_unlock
from reconciler.lock import hold_lock
from reconciler.manifest import LoadedManifests
from reconciler.manifest import find_manifest_files
from reconciler.manifest import load_manifests
from reconciler.mynotary.client import DEFAULT_MAX_IN_FLIGHT
from reconciler.mynotary.client import MyNotaryClient
from reconciler.plan import Action
from reconciler.plan import Change
from reconciler.plan import Plan
from reconciler.plan import PlanOptions
from reconciler.plan import compute_plan
from reconciler.planfile import SavedPlan
from reconciler.planfile import read_plan_file
from reconciler.planfile import render_json
from reconciler.planfile import sources_of
from reconciler.planfile import write_plan_file
from reconciler.progress import Progress
from reconciler.remote import Record
from reconciler.remote import read_remote_state
from reconciler.render.drift import drift_exit_status
from reconciler.render.drift import render_drift_markdown
from reconciler.render.drift import render_drift_text
from reconciler.render.drift import summary_line as drift_summary_line
from reconciler.render.markdown import DEFAULT_FULL_PLAN
from reconciler.render.markdown import render_plan_markdown
from reconciler.render.text import SYMBOLS
from reconciler.render.text import render_plan
from reconciler.sandbox.app import create_app
from reconciler.sandbox.demo import DemoError
from reconciler.sandbox.demo import load_demo
from reconciler.sandbox.store import RecordStore
from reconciler.status import compute_status
from reconciler.status import render_status

# The artifacts that the plan and drift workflows upload.
PLAN_ARTIFACT = "reconciler-plan"
DRIFT_ARTIFACT = "reconciler-drift"
# Characters of a failed plan's output kept in the pull request comment: the end,
# where the error is.
FAILED_LOG_CHARACTERS = 20_000
# Terminal colour and cursor sequences, which a comment would show as garbage.
ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")

SANDBOX_NOTICE = (
    "notice: no MyNotary URL is set, so the embedded sandbox in .reconciler/ is the "
    "target (set MYNOTARY_URL to use MyNotary)"
)


@dataclass
class Console:
    """The outputs of a command: results go to ``out``, notices to ``err``, and
    progress to ``progress``, which shows nothing unless the command line sets it."""

    out: TextIO = sys.stdout
    err: TextIO = sys.stderr
    styler: Callable[[str, str], str] = lambda text, colour: text
    progress: Progress = field(default_factory=Progress)

    def print(self, text: str = "") -> None:
        if self.progress.print_line(text.removesuffix("\n"), self.out):
            return
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
    settings: Settings,
    console: Console,
    *,
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
) -> AsyncIterator[MyNotaryClient]:
    """Yield a client for the target; the embedded sandbox runs in this process.

    ``max_in_flight`` is the number of requests open at once.
    """
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
        connect_timeout=settings.network.connect_timeout,
        retry=settings.network.retry,
        rate_limit=settings.network.rate_limit,
        write_rate_limit=settings.network.write_rate_limit,
        max_in_flight=max_in_flight,
    )
    try:
        yield client
    finally:
        await client.aclose()
        if store is not None:
            store.close()


@dataclass(frozen=True)
class PlanRequest:
    """The manifests, the target, the plan options, and the requests open at once."""

    paths: list[Path]
    settings: Settings
    options: PlanOptions
    parallelism: int = DEFAULT_MAX_IN_FLIGHT


async def build_plan(
    request: PlanRequest,
    loaded: LoadedManifests,
    client: MyNotaryClient,
    progress: Progress | None = None,
) -> tuple[LinkTable, Plan]:
    """Read the link table and MyNotary, and compute the plan of valid manifests."""
    links = LinkTable.load(request.settings.links_path, request.settings.target)
    reader = _ProgressReader(client, progress or Progress())
    remote = await read_remote_state(reader, loaded.programmes, links)
    options = request.options
    if any(path.is_file() for path in request.paths):
        # Files named one by one are part of the estate: records of the other
        # programmes are not gone, only not read.
        scope = frozenset(programme.up_id for programme in loaded.programmes)
        options = dataclasses.replace(options, scope=scope)
    plan = compute_plan(loaded.programmes, links, remote, options)
    return links, plan


class _ProgressReader:
    """The reads of a plan, with the lot lists shown as a progress task."""

    def __init__(self, client: MyNotaryClient, progress: Progress) -> None:
        self._client = client
        self._progress = progress

    async def list_programmes(self) -> list[Record]:
        return await self._client.list_programmes()

    async def list_lots_of(
        self, programme_ids: Iterable[int]
    ) -> dict[int, list[Record]]:
        ids = list(programme_ids)
        with self._progress.task("Reading lots", len(ids)) as advance:
            return await self._client.list_lots_of(
                ids, on_listed=lambda programme_id: advance(1)
            )

    async def get_record(self, record_id: int) -> Record | None:
        return await self._client.get_record(record_id)


@dataclass(frozen=True)
class PlanOutput:
    """The rendering a plan is printed in, and the plan file it is also written to."""

    out: Path | None = None
    output_format: str = "text"


def run_plan(
    request: PlanRequest,
    *,
    detailed_exitcode: bool,
    console: Console,
    output: PlanOutput = PlanOutput(),
) -> int:
    """Print the plan; exit 1 on problems, else 0 (or 2 for changes with the flag)."""

    async def main() -> SavedPlan:
        loaded = load_manifests(request.paths)
        async with open_client(
            request.settings, console, max_in_flight=request.parallelism
        ) as client:
            links, plan = await build_plan(request, loaded, client, console.progress)
            sources = sources_of(
                request.paths,
                loaded.files,
                links,
                recreate_missing=request.options.recreate_missing,
            )
            return SavedPlan(plan, sources)

    saved = _run_guarded(main, console)
    if saved is None:
        return EXIT_ERROR
    plan = saved.plan
    if output.out is not None:
        write_plan_file(saved, output.out)
        hint = f"apply exactly this plan with `reconciler apply --plan {output.out}`"
        if plan.problems:
            hint = "fix its problems and plan again: a blocked plan can't be applied"
        console.notice(f"Plan written to {output.out}; {hint}")
    console.print(render_saved_plan(saved, output.output_format, console.styler))
    if plan.problems:
        return EXIT_ERROR
    if detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def run_status(request: PlanRequest, *, as_json: bool, console: Console) -> int:
    """Print the links screen for the manifests."""

    async def main() -> tuple[LoadedManifests, LinkTable, Plan]:
        loaded = load_manifests(request.paths)
        async with open_client(
            request.settings, console, max_in_flight=request.parallelism
        ) as client:
            links, plan = await build_plan(request, loaded, client, console.progress)
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
    """An apply: of a fresh plan, of a saved plan file, or of an approved digest."""

    plan: PlanRequest
    auto_approve: bool
    parallelism: int
    confirm: Callable[[], bool]
    plan_file: Path | None = None
    expected_digest: str | None = None
    lock_timeout: float = 0.0


# The lock of the target: one run at a time writes a link table.


def _holding_target_lock(
    run: Callable[[ApplyRequest, Console], int],
) -> Callable[[ApplyRequest, Console], int]:
    """Run an apply command while it holds the lock of its link table."""

    @functools.wraps(run)
    def locked(request: ApplyRequest, console: Console) -> int:
        settings = request.plan.settings
        with _target_lock(settings, request.lock_timeout, console):
            return run(request, console)

    return locked


def _target_lock(
    settings: Settings, timeout: float, console: Console
) -> contextlib.AbstractContextManager[TargetLock]:
    def notice_wait(holder: LockInfo) -> None:
        console.notice(
            f"notice: waiting up to {timeout:g} s for the lock of"
            f" {settings.links_path}, held by {holder.describe()}"
        )

    return hold_lock(
        settings.links_path,
        describe_target(settings.target),
        timeout=timeout,
        on_wait=notice_wait,
    )


def run_force_unlock(settings: Settings, lock_id: str, console: Console) -> int:
    """Remove the lock of the target's link table if its id is ``lock_id``."""
    holder = force_unlock(settings.links_path, lock_id)
    console.print(
        f"Lock {lock_id} of {settings.links_path} removed; it was held by"
        f" {holder.describe()}."
    )
    return EXIT_OK


async def _plan_to_apply(
    request: ApplyRequest,
    loaded: LoadedManifests,
    client: MyNotaryClient,
    console: Console,
) -> tuple[LinkTable, Plan] | None:
    """Compute and print the plan an apply starts from; None if it is blocked.

    With no change to make, links that an interrupted apply left in the journal
    go into the table now, because the table is the file reviewed and committed.
    """
    links, plan = await build_plan(request.plan, loaded, client, console.progress)
    console.print(render_plan(plan, console.styler))
    if plan.problems:
        return None
    if not plan.has_changes and links.has_journal():
        links.save()
    return links, plan


@_holding_target_lock
def run_apply(request: ApplyRequest, console: Console) -> int:
    """Plan, ask for approval, apply; exit 0 when every change was applied."""
    if request.plan_file is not None:
        return run_apply_saved(request, request.plan_file, console)
    if request.expected_digest is not None:
        return run_apply_expected(request, request.expected_digest, console)

    async def main() -> ApplyResult | None:
        loaded = load_manifests(request.plan.paths)
        async with open_client(
            request.plan.settings, console, max_in_flight=request.plan.parallelism
        ) as client:
            planned = await _plan_to_apply(request, loaded, client, console)
            if planned is None:
                return None
            links, plan = planned
            if not plan.has_changes:
                return ApplyResult()
            if not request.auto_approve and not request.confirm():
                # Exit 1 like any refusal, so a script without approval fails.
                console.print("Apply cancelled; nothing was changed.")
                return None
            return await _apply_with_progress(plan, client, links, request, console)

    result = _run_guarded(main, console)
    return report_apply_result(result, console)


def report_apply_result(result: ApplyResult | None, console: Console) -> int:
    """Print what an apply did; return 0 when every change was applied, 130 when
    it was interrupted, else 1."""
    if result is None:
        return EXIT_ERROR
    if not result.applied and result.is_success and not result.interrupted:
        return EXIT_OK
    ending = "interrupted" if result.interrupted else "finished"
    console.print(f"Apply {ending}: {result.summary()}.")
    for failed in result.failed:
        console.print(
            f"  failed: {failed.change.label} [{failed.change.up_id}]: {failed.error}"
        )
    for change in result.not_attempted:
        console.print(f"  not attempted: {change.label} [{change.up_id}]")
    if result.interrupted:
        return EXIT_INTERRUPTED
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
        return _run(main)
    except ManifestError as error:
        print_manifest_error(error, console)
        return None


def _run(main: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run ``main`` with ``asyncio.run`` and return its result.

    The result leaves through a list, not as the main task's result, because
    ``asyncio.run`` of Python 3.11 formats the main task, result included, when it
    restores the SIGINT handler: for a plan of 50,000 lots that takes seconds.
    """
    results: list[_T] = []

    async def run() -> None:
        results.append(await main())

    asyncio.run(run())
    return results[0]


def run_demo(paths: list[Path], console: Console) -> int:
    """Reset the embedded sandbox and its link table, then load the demo scenario."""
    try:
        loaded = load_manifests(paths)
    except ManifestError as error:
        print_manifest_error(error, console)
        return EXIT_ERROR
    settings = resolve_settings(TargetOptions(target="sandbox"), {})
    with _target_lock(settings, 0.0, console):
        return _reset_demo(loaded, settings, console)


def _reset_demo(loaded: LoadedManifests, settings: Settings, console: Console) -> int:
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


@dataclass(frozen=True)
class SandboxServeRequest:
    """Where to serve the sandbox, and the faults to inject: a YAML file, and
    options keyed by ``FaultConfig`` field (None when not given)."""

    host: str
    port: int
    faults_file: Path | None
    fault_options: Mapping[str, Any]
    write_quota: float | None = None


def run_sandbox_serve(request: SandboxServeRequest, console: Console) -> int:
    """Serve the sandbox's data over HTTP until interrupted."""
    # Imported here: uvicorn is needed by this command only.
    from reconciler.sandbox.faults import FaultConfigError
    from reconciler.sandbox.faults import load_fault_config
    from reconciler.sandbox.server import serve

    try:
        faults = load_fault_config(request.faults_file, request.fault_options)
    except FaultConfigError as error:
        console.notice(f"error: {error}")
        return EXIT_ERROR

    database = SANDBOX_DIR / "sandbox.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    url = f"http://{request.host}:{request.port}"
    console.notice(f"Sandbox serving {database} on {url}")
    if faults.is_active:
        console.notice(f"Injecting faults: {faults}")
    if request.write_quota is not None:
        console.notice(f"Write quota: {request.write_quota:g} per second")
    api_key = os.environ.get("MYNOTARY_SANDBOX_API_KEY")
    serve(
        database,
        host=request.host,
        port=request.port,
        api_key=api_key,
        faults=faults,
        write_quota=request.write_quota,
    )
    return EXIT_OK


# Saved plans, approved digests, drift and the GitHub steps of the workflows


def render_saved_plan(
    saved: SavedPlan,
    output_format: str,
    styler: Callable[[str, str], str] | None = None,
    full_plan: str = DEFAULT_FULL_PLAN,
) -> str:
    """Return the plan in one of the renderings: text, markdown or json."""
    if output_format == "markdown":
        return render_plan_markdown(saved.plan, full_plan=full_plan)
    if output_format == "json":
        return render_json(saved)
    return render_plan(saved.plan, styler or (lambda text, colour: text))


def run_show(plan_path: Path, output_format: str, console: Console) -> int:
    """Print a saved plan in the rendering asked for."""
    saved = read_plan_file(plan_path)
    console.print(render_saved_plan(saved, output_format, console.styler))
    return EXIT_OK


def run_apply_saved(request: ApplyRequest, plan_path: Path, console: Console) -> int:
    """Apply exactly the saved plan, or refuse before any write if it is stale."""
    settings = request.plan.settings
    saved = read_plan_file(plan_path)
    paths = [Path(path) for path in saved.sources.manifest_paths]
    log = ApplyLog.beside(settings.links_path)
    check_saved_plan(
        saved,
        target=settings.target,
        manifest_files=find_manifest_files(paths),
        links_path=settings.links_path,
        log=log,
        plan_path=plan_path,
    )
    console.print(render_plan(saved.plan, console.styler))

    async def main() -> ApplyResult:
        async with open_client(
            settings, console, max_in_flight=request.plan.parallelism
        ) as client:
            await check_versions(saved.plan, client, plan_path)
            fresh_request = PlanRequest(
                paths,
                settings,
                PlanOptions(recreate_missing=saved.sources.recreate_missing),
            )
            _, fresh = await build_plan(fresh_request, load_manifests(paths), client)
            check_fresh_plan(saved.plan, fresh, plan_path)
            links = LinkTable.load(settings.links_path, settings.target)
            log.record_plan_file(saved)
            return await _apply_with_progress(
                saved.plan, client, links, request, console
            )

    return report_apply_result(_run_guarded(main, console), console)


def run_apply_expected(
    request: ApplyRequest, expected_digest: str, console: Console
) -> int:
    """Apply a fresh plan only if its digest is the approved one (or resumes it)."""

    async def main() -> ApplyResult | None:
        loaded = load_manifests(request.plan.paths)
        async with open_client(
            request.plan.settings, console, max_in_flight=request.plan.parallelism
        ) as client:
            planned = await _plan_to_apply(request, loaded, client, console)
            if planned is None:
                return None
            links, plan = planned
            log = ApplyLog.beside(links.path)
            decision = decide_expected_digest(plan, expected_digest, log)
            if not plan.has_changes:
                console.print("Nothing to apply: MyNotary matches the manifests.")
                return ApplyResult()
            if decision.is_exact:
                log.record_approved(expected_digest, plan.changes)
            else:
                console.notice(
                    f"notice: resuming the approved apply of plan {expected_digest}: "
                    f"{len(plan.changes)} of its change(s) are not done yet"
                )
            result = await _apply_with_progress(plan, client, links, request, console)
            log.record_finished(expected_digest, is_complete=result.is_success)
            return result

    return report_apply_result(_run_guarded(main, console), console)


async def _apply_with_progress(
    plan: Plan,
    client: MyNotaryClient,
    links: LinkTable,
    request: ApplyRequest,
    console: Console,
) -> ApplyResult:
    with console.progress.task("Applying changes", len(plan.changes)) as advance:

        def show(change: Change, record: Record | None) -> None:
            advance(1)
            console.print(_progress_line(change))

        return await apply_plan(
            plan, client, links, parallelism=request.parallelism, on_progress=show
        )


def run_drift(request: PlanRequest, output_format: str, console: Console) -> int:
    """Print the drift report; exit 0 no drift, 2 drift, 1 error. Writes nothing."""

    async def main() -> DriftReport:
        loaded = load_manifests(request.paths)
        async with open_client(
            request.settings, console, max_in_flight=request.parallelism
        ) as client:
            links = LinkTable.load(request.settings.links_path, request.settings.target)
            reader = _ProgressReader(client, console.progress)
            remote = await read_remote_state(reader, loaded.programmes, links)
            return compute_drift(loaded.programmes, links, remote)

    report = _run_guarded(main, console)
    if report is None:
        return EXIT_ERROR
    if output_format == "markdown":
        console.print(render_drift_markdown(report))
    elif output_format == "json":
        console.print(json.dumps(drift_to_json(report), indent=2, ensure_ascii=False))
    else:
        console.print(render_drift_text(report, console.styler))
    return drift_exit_status(report)


@dataclass(frozen=True)
class GitHubRequest:
    """The environment of a GitHub Actions step, and where its transport goes."""

    environ: Mapping[str, str]
    transport: httpx.BaseTransport | None = None

    def client(self) -> GitHubClient:
        settings = GitHubSettings.from_environment(self.environ)
        return GitHubClient(settings, transport=self.transport)


def run_github_comment_plan(
    github: GitHubRequest,
    *,
    pull_request: int,
    plan_path: Path,
    log_path: Path | None,
    head_sha: str,
    console: Console,
) -> int:
    """Post the plan as the pull request's one plan comment, or edit it in place."""
    with github.client() as client:
        if plan_path.exists():
            saved = read_plan_file(plan_path)
            note = _artifact_note(PLAN_ARTIFACT, client.settings.run_url)
            markdown = render_plan_markdown(saved.plan, full_plan=note)
            body = plan_comment_body(markdown, saved.digest, head_sha)
        else:
            body = plan_comment_body(_failed_plan_markdown(log_path), None, head_sha)
        outcome = upsert_plan_comment(client, pull_request, body)
    console.print(f"Plan comment on pull request #{pull_request}: {outcome}.")
    return EXIT_OK


def _artifact_note(artifact: str, run_url: str | None) -> str:
    where = f"[this workflow run]({run_url})" if run_url else "this workflow run"
    return f"the `{artifact}` artifact of {where}"


def _failed_plan_markdown(log_path: Path | None) -> str:
    lines = [
        "### Plan failed: no plan was made",
        "",
        "The manifests are invalid, or MyNotary could not be read. The output of "
        "the step follows; fix the cause and push again.",
        "",
    ]
    output = ""
    if log_path is not None and log_path.exists():
        output = log_path.read_text(encoding="utf-8", errors="replace")
    lines.extend(_code_block(output[-FAILED_LOG_CHARACTERS:]))
    return "\n".join(lines) + "\n"


def _code_block(text: str) -> list[str]:
    # A fence longer than any run of backticks in the text cannot be closed by it.
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    cleaned = ANSI_ESCAPE.sub("", text).strip("\n")
    return [fence + "text", cleaned, fence]


def run_github_approved_digest(
    github: GitHubRequest, *, commit_sha: str, console: Console
) -> int:
    """Print the plan digest approved on the pull request merged as ``commit_sha``."""
    with github.client() as client:
        approved = find_approved_digest(client, commit_sha)
    console.notice(
        f"Approved plan of pull request #{approved.pull_request}: {approved.digest}"
    )
    console.print(approved.digest)
    return EXIT_OK


def run_github_drift_issue(
    github: GitHubRequest, *, report_path: Path, console: Console
) -> int:
    """Open, update or close the drift issue from a ``drift --format json`` report."""
    try:
        document = json.loads(report_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DriftReportError(
            f"can't read the drift report {report_path}: {error}; write it with "
            "`reconciler drift --format json`"
        ) from None
    report = drift_from_json(document, str(report_path))
    with github.client() as client:
        note = _artifact_note(DRIFT_ARTIFACT, client.settings.run_url)
        markdown = render_drift_markdown(report, full_report=note)
        outcome = sync_drift_issue(
            client,
            has_drift=report.has_drift,
            digest=report.digest,
            body=drift_issue_body(markdown, report.digest),
            closing_comment=f"No drift any more. {drift_summary_line(report)}",
        )
    console.print(f"Drift issue: {outcome}.")
    return EXIT_OK


def run_github_pull_state(
    github: GitHubRequest, *, branch: str, links_path: Path, console: Console
) -> int:
    """Take the link table and the apply log as they are on ``branch`` now."""
    paths = [links_path, ApplyLog.beside(links_path).path]
    with github.client() as client:
        for line in pull_files(client, branch, paths):
            console.print(line)
    return EXIT_OK


def run_github_commit_state(
    github: GitHubRequest,
    *,
    branch: str,
    settings: Settings,
    message: str,
    console: Console,
) -> int:
    """Commit the link table and the apply log to ``branch`` if they changed.

    A journal left by an interrupted apply is replayed into the table first, so
    the committed table contains every link that was recorded.
    """
    with _target_lock(settings, 0.0, console):
        links = LinkTable.load(settings.links_path, settings.target)
        if links.has_journal():
            links.save()
    paths = [settings.links_path, ApplyLog.beside(settings.links_path).path]
    with github.client() as client:
        for line in commit_files(client, branch, paths, message):
            console.print(line)
    return EXIT_OK


def run_import(request: ImportRequest, console: Console) -> int:
    """Import a CSV export into manifests and print the summary; exit 1, with
    nothing written, when the export or the existing manifests can't be used."""
    try:
        report = import_csv(request)
    except LotGridError as error:
        for issue in error.issues:
            console.print(str(issue))
        console.print(f"{len(error.issues)} problem(s); nothing was written.")
        return EXIT_ERROR
    except ManifestError as error:
        for manifest_issue in error.issues:
            console.print(str(manifest_issue))
        console.print(
            f"The manifests in {request.into} are invalid, so nothing was imported; "
            f"fix them first (reconciler validate {request.into})."
        )
        return EXIT_ERROR
    console.print(render_report(report))
    return EXIT_OK


@dataclass(frozen=True)
class ImportPullRequestRequest:
    """The changed manifest files, the summaries file, and the branches to use."""

    paths: list[Path]
    summary_path: Path
    title: str
    base: str
    branch: str


def run_import_pull_request(
    github: GitHubRequest, request: ImportPullRequestRequest, console: Console
) -> int:
    """Open or update the import pull request with ``request.paths``.

    Prints ``pull-request=N`` and ``head-sha=SHA`` for ``$GITHUB_OUTPUT``, and
    nothing when no file changed.
    """
    if not request.paths:
        console.notice("No manifest changed; no pull request opened or updated.")
        return EXIT_OK
    proposal = ImportProposal(
        files=_changed_files(request.paths),
        title=request.title,
        summary=_read_summary(request.summary_path),
        base=request.base,
        branch=request.branch,
    )
    with github.client() as client:
        result = open_import_pull_request(client, proposal)
    console.notice(
        f"Pull request #{result.number} {result.action.value}: {result.url} "
        f"({len(proposal.files)} file(s))"
    )
    console.print(f"pull-request={result.number}")
    console.print(f"head-sha={result.head_sha}")
    return EXIT_OK


def _changed_files(paths: list[Path]) -> dict[Path, bytes]:
    files = {}
    for path in paths:
        if path.is_absolute() or ".." in path.parts:
            raise ReconcilerError(
                f"{path} is not a path inside the repository; pass paths relative "
                "to its root, as git status prints them"
            )
        try:
            files[path] = path.read_bytes()
        except OSError as error:
            raise ReconcilerError(f"can't read {path}: {error.strerror}") from None
    return files


def _read_summary(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as error:
        raise ReconcilerError(
            f"can't read the import summary {path}: {error.strerror}"
        ) from None
