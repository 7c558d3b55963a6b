"""Command line: parses options and calls one function of ``reconciler.commands``.

Exit codes, for every command: 0 success, 1 error (invalid manifests, a blocked
plan, a failed apply, bad configuration), 2 changes pending (``plan
--detailed-exitcode``) or drift found (``drift``), 130 interrupted.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from reconciler import __version__
from reconciler import commands
from reconciler.config import TargetOptions
from reconciler.config import resolve_settings
from reconciler.errors import EXIT_ERROR
from reconciler.errors import EXIT_INTERRUPTED
from reconciler.errors import ReconcilerError
from reconciler.importer import ImportRequest
from reconciler.mynotary.client import DEFAULT_MAX_IN_FLIGHT
from reconciler.plan import PlanOptions
from reconciler.progress import progress_for

DEFAULT_PATHS = (Path("manifests"),)

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 error (invalid manifests, blocked plan, failed apply, "
    "bad configuration); 2 changes pending (plan --detailed-exitcode) or drift "
    "found (drift); 130 interrupted."
)

RENDERINGS = click.Choice(["text", "markdown", "json"])

# Allocations between collections of the youngest generation, and collections of
# each generation between those of the next (see gc.set_threshold). A plan of
# 50,000 lots keeps millions of objects until it ends, and with the defaults (700,
# 10, 10) the cyclic collector goes over them again and again: about 2 s of a 9 s
# plan, measured with benchmarks/run.py. Cycles are still collected, less often.
GC_THRESHOLDS = (100_000, 50, 100)

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))

parallelism_option = click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=DEFAULT_MAX_IN_FLIGHT,
    show_default=True,
    help="Requests open at once to MyNotary.",
)


def target_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options that choose the MyNotary target and the link table."""
    options = [
        click.option("--url", help="MyNotary API base URL [env: MYNOTARY_URL]."),
        click.option(
            "--organization",
            type=int,
            help="MyNotary organization id [env: MYNOTARY_ORGANIZATION_ID].",
        ),
        click.option(
            "--user", type=int, help="MyNotary user id [env: MYNOTARY_USER_ID]."
        ),
        click.option(
            "--api-key-file",
            type=click.Path(path_type=Path, dir_okay=False),
            help="File holding the API key [env: MYNOTARY_API_KEY_FILE]; "
            "or set MYNOTARY_API_KEY. The key is never accepted as a flag.",
        ),
        click.option(
            "--target",
            type=click.Choice(["sandbox", "mynotary"]),
            help="Force the embedded sandbox, or require a real MyNotary.",
        ),
        click.option(
            "--links",
            "links_path",
            type=click.Path(path_type=Path, dir_okay=False),
            help="Link table file [default: state/links.yaml; "
            ".reconciler/links.yaml for the sandbox].",
        ),
        click.option(
            "--timeout",
            type=float,
            help="Timeout of each request, in seconds [env: MYNOTARY_TIMEOUT; 30].",
        ),
        *network_options,
    ]
    for option in reversed(options):
        function = option(function)
    return function


network_options = [
    click.option(
        "--connect-timeout",
        type=float,
        help="Timeout of each connection to MyNotary, in seconds "
        "[env: MYNOTARY_CONNECT_TIMEOUT; 10].",
    ),
    click.option(
        "--max-retries",
        type=int,
        help="Retries of a failed request that is safe to repeat "
        "[env: MYNOTARY_MAX_RETRIES; 5].",
    ),
    click.option(
        "--max-retry-wait",
        type=float,
        help="Seconds after a request's first attempt past which it is not retried "
        "[env: MYNOTARY_MAX_RETRY_WAIT; 60].",
    ),
    click.option(
        "--rate-limit",
        type=float,
        help="Requests per second sent to MyNotary at most; 0 for no limit "
        "[env: MYNOTARY_RATE_LIMIT; 50].",
    ),
    click.option(
        "--write-rate-limit",
        type=float,
        help="Creates and updates per second at most, on top of --rate-limit; 0 "
        "for no limit [env: MYNOTARY_WRITE_RATE_LIMIT; 0].",
    ),
]


def _settings(kwargs: dict[str, Any]) -> Any:
    options = TargetOptions(
        url=kwargs.pop("url"),
        organization_id=kwargs.pop("organization"),
        user_id=kwargs.pop("user"),
        api_key_file=kwargs.pop("api_key_file"),
        target=kwargs.pop("target"),
        links_path=kwargs.pop("links_path"),
        timeout=kwargs.pop("timeout"),
        connect_timeout=kwargs.pop("connect_timeout"),
        max_retries=kwargs.pop("max_retries"),
        max_retry_wait=kwargs.pop("max_retry_wait"),
        rate_limit=kwargs.pop("rate_limit"),
        write_rate_limit=kwargs.pop("write_rate_limit"),
    )
    return resolve_settings(options, os.environ)


def _console() -> commands.Console:
    use_colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def styler(text: str, colour: str) -> str:
        return click.style(text, fg=colour) if use_colour else text

    return commands.Console(
        styler=styler, progress=progress_for(sys.stderr, os.environ)
    )


class _Group(click.Group):
    """Maps user-fixable errors to exit 1 with one line, and Ctrl-C to 130.

    Usage errors (an unknown option or command, a bad option value) exit 1 too,
    instead of click's 2, which ``plan --detailed-exitcode`` and ``drift`` use
    for "changes found".
    """

    def main(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["standalone_mode"] = False
        try:
            return super().main(*args, **kwargs)
        except click.exceptions.Abort:
            # Ctrl-C at a prompt, where click catches the KeyboardInterrupt.
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as error:
            error.show()
            sys.exit(EXIT_ERROR)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ReconcilerError as error:
            if ctx.obj and ctx.obj.get("debug"):
                raise
            click.echo(f"error: {error}", err=True)
            ctx.exit(error.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)


@click.group(cls=_Group, epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="reconciler")
@click.option("--debug", is_flag=True, help="Show tracebacks and request logs.")
@click.option("-v", "--verbose", is_flag=True, help="Log one line per request.")
@click.pass_context
def main(ctx: click.Context, debug: bool, verbose: bool) -> None:
    """Reconcile programmes and lots from Up manifests to MyNotary."""
    gc.set_threshold(*GC_THRESHOLDS)
    ctx.obj = {"debug": debug}
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@click.option("--strict", is_flag=True, help="Fail on warnings too.")
def validate(paths: tuple[Path, ...], strict: bool) -> None:
    """Check manifests: schema, then rules across fields, lots and files.

    PATHS are manifest files or folders (default: manifests/).
    """
    code = commands.run_validate(
        list(paths or DEFAULT_PATHS), strict=strict, console=_console()
    )
    sys.exit(code)


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@target_options
@click.option(
    "--detailed-exitcode",
    is_flag=True,
    help="Exit 0 when there are no changes, 2 when there are, 1 on error.",
)
@click.option(
    "--recreate-missing",
    is_flag=True,
    help="Plan a create for linked records that are missing on MyNotary.",
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write the plan to this JSON file, for `apply --plan` and `show`.",
)
@click.option(
    "--format",
    "output_format",
    type=RENDERINGS,
    default="text",
    show_default=True,
    help="Rendering printed: text, markdown (for a pull request) or json.",
)
@parallelism_option
def plan(
    paths: tuple[Path, ...],
    detailed_exitcode: bool,
    recreate_missing: bool,
    out: Path | None,
    output_format: str,
    parallelism: int,
    **kwargs: Any,
) -> None:
    """Show the changes that would make MyNotary match the manifests."""
    request = commands.PlanRequest(
        list(paths or DEFAULT_PATHS),
        _settings(kwargs),
        PlanOptions(recreate_missing),
        parallelism,
    )
    sys.exit(
        commands.run_plan(
            request,
            detailed_exitcode=detailed_exitcode,
            console=_console(),
            output=commands.PlanOutput(out, output_format),
        )
    )


@main.command(epilog=EXIT_CODES_HELP)
@click.argument("plan_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--format", "output_format", type=RENDERINGS, default="text", show_default=True
)
def show(plan_file: Path, output_format: str) -> None:
    """Print the plan saved in PLAN_FILE by `plan --out`."""
    sys.exit(commands.run_show(plan_file, output_format, _console()))


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@target_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=DEFAULT_MAX_IN_FLIGHT,
    show_default=True,
    help="Requests open at once to MyNotary, and changes applied at once.",
)
@click.option(
    "--recreate-missing",
    is_flag=True,
    help="Create again linked records that are missing on MyNotary.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Apply exactly this saved plan, without asking; rejected if it is stale.",
)
@click.option(
    "--expect-digest",
    metavar="DIGEST",
    help="Apply only if the fresh plan's digest is DIGEST (the approved plan), "
    "without asking.",
)
@click.option(
    "--lock-timeout",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds to wait for another run holding the link table's lock.",
)
def apply(
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    recreate_missing: bool,
    plan_file: Path | None,
    expect_digest: str | None,
    lock_timeout: float,
    **kwargs: Any,
) -> None:
    """Compute the plan, ask for approval, and carry it out.

    With --plan, apply a saved plan instead; it records its PATHS, so none are
    given. With --expect-digest, apply the fresh plan only if it is the approved
    one.
    """
    if plan_file is not None and (paths or expect_digest or recreate_missing):
        raise click.UsageError(
            "--plan applies the saved plan as it is: drop PATHS, --expect-digest "
            "and --recreate-missing"
        )
    request = commands.ApplyRequest(
        plan=commands.PlanRequest(
            list(paths or DEFAULT_PATHS),
            _settings(kwargs),
            PlanOptions(recreate_missing),
            parallelism,
        ),
        auto_approve=auto_approve,
        parallelism=parallelism,
        confirm=_confirm,
        plan_file=plan_file,
        expected_digest=expect_digest,
        lock_timeout=lock_timeout,
    )
    sys.exit(commands.run_apply(request, _console()))


@main.command("force-unlock", epilog=EXIT_CODES_HELP)
@click.argument("lock_id")
@target_options
def force_unlock(lock_id: str, **kwargs: Any) -> None:
    """Remove the link table's lock LOCK_ID, left by a run that was killed.

    The id is in the error of the run that found the lock. A lock whose process
    still runs on this host is not removed.
    """
    sys.exit(commands.run_force_unlock(_settings(kwargs), lock_id, _console()))


def _confirm() -> bool:
    if not sys.stdin.isatty():
        click.echo(
            "error: apply needs approval: type 'yes' on a terminal, or pass "
            "--auto-approve",
            err=True,
        )
        return False
    answer = click.prompt("Apply these changes? Only 'yes' is accepted", default="")
    return bool(answer == "yes")


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@target_options
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["text", "json"]),
    default="text",
    show_default=True,
)
@parallelism_option
def status(
    paths: tuple[Path, ...], output_format: str, parallelism: int, **kwargs: Any
) -> None:
    """Show each programme and lot with its link state and sync state."""
    request = commands.PlanRequest(
        list(paths or DEFAULT_PATHS), _settings(kwargs), PlanOptions(), parallelism
    )
    sys.exit(
        commands.run_status(
            request, as_json=output_format == "json", console=_console()
        )
    )


@main.group()
def sandbox() -> None:
    """Run the MyNotary sandbox that ships with the reconciler."""


def fault_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """Add the options of the faults that the sandbox injects."""
    rate = click.FloatRange(0, 1)
    seconds = click.FloatRange(min=0)
    options = [
        click.option(
            "--faults",
            "faults_file",
            type=click.Path(path_type=Path, dir_okay=False, exists=True),
            help="YAML file of fault options (keys as the options below, without "
            "--); the options override it.",
        ),
        click.option("--seed", type=int, help="Seed of the fault draws [0]."),
        click.option("--latency", type=seconds, help="Delay of every response, s."),
        click.option("--error-rate", type=rate, help="Share of 500/502/503."),
        click.option("--throttle-rate", type=rate, help="Share of 429."),
        click.option(
            "--retry-after", type=click.IntRange(min=0), help="Retry-After of a 429, s."
        ),
        click.option(
            "--retry-after-format",
            type=click.Choice(["seconds", "date"]),
            help="Retry-After as seconds or as an HTTP date [seconds].",
        ),
        click.option("--hang-rate", type=rate, help="Share of responses that hang."),
        click.option("--hang-seconds", type=seconds, help="Length of a hang, s."),
        click.option("--drop-rate", type=rate, help="Share of dropped connections."),
        click.option(
            "--ambiguous-rate",
            type=rate,
            help="Share of creates and updates committed, then responded to with 504.",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@sandbox.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; keep 127.0.0.1 unless others must reach it.",
)
@click.option(
    "--write-quota",
    type=click.FloatRange(min=0, min_open=True),
    help="Creates and updates accepted per second; more get 429 [no quota].",
)
@fault_options
def serve(
    port: int,
    host: str,
    write_quota: float | None,
    faults_file: Path | None,
    **faults: Any,
) -> None:
    """Serve the sandbox's data (.reconciler/sandbox.db) over HTTP.

    If MYNOTARY_SANDBOX_API_KEY is set, requests must carry it in x-api-key. The
    fault options make it time out, fail, throttle and drop connections, drawn
    from the seed, to test clients. GET /_sandbox/stats returns the requests
    counted by method and status (DELETE resets them).
    """
    request = commands.SandboxServeRequest(host, port, faults_file, faults, write_quota)
    code = commands.run_sandbox_serve(request, _console())
    sys.exit(code)


@sandbox.command()
@paths_argument
def demo(paths: tuple[Path, ...]) -> None:
    """Reset the sandbox and load a scenario for the example manifests.

    Afterwards, `reconciler plan` shows a create, an update, a link and an unlink.
    """
    code = commands.run_demo(list(paths or DEFAULT_PATHS), _console())
    sys.exit(code)


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@target_options
@click.option(
    "--format", "output_format", type=RENDERINGS, default="text", show_default=True
)
@parallelism_option
def drift(
    paths: tuple[Path, ...], output_format: str, parallelism: int, **kwargs: Any
) -> None:
    """Report where MyNotary no longer matches the manifests; only reads.

    Lists linked records changed or missing on MyNotary, and orphans: lots on
    MyNotary in a linked programme that the link table does not hold. Exit 0 no
    drift, 2 drift, 1 error.
    """
    request = commands.PlanRequest(
        list(paths or DEFAULT_PATHS), _settings(kwargs), PlanOptions(), parallelism
    )
    sys.exit(commands.run_drift(request, output_format, _console()))


@main.group()
def github() -> None:
    """Steps of the GitHub workflows: plan comment, drift issue, link table.

    They read GITHUB_API_URL, GITHUB_REPOSITORY and GITHUB_TOKEN (or GH_TOKEN), as
    set in a GitHub Actions step; see the README, section "Review in pull requests".
    """


def _github() -> commands.GitHubRequest:
    return commands.GitHubRequest(os.environ)


@github.command("comment-plan")
@click.option("--pr", "pull_request", type=int, required=True, help="Pull request.")
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Plan file written by `plan --out`; if missing, the plan failed.",
)
@click.option(
    "--log",
    "log_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Output of the plan step, shown in the comment when the plan failed.",
)
@click.option(
    "--head-sha", required=True, help="The pull request's head commit planned."
)
def comment_plan(
    pull_request: int, plan_file: Path, log_file: Path | None, head_sha: str
) -> None:
    """Post the plan as the pull request's one plan comment, or edit it."""
    code = commands.run_github_comment_plan(
        _github(),
        pull_request=pull_request,
        plan_path=plan_file,
        log_path=log_file,
        head_sha=head_sha,
        console=_console(),
    )
    sys.exit(code)


@github.command("approved-digest")
@click.option("--commit", "commit_sha", required=True, help="The merge commit.")
def approved_digest(commit_sha: str) -> None:
    """Print the plan digest approved on the pull request merged as --commit."""
    code = commands.run_github_approved_digest(
        _github(), commit_sha=commit_sha, console=_console()
    )
    sys.exit(code)


@github.command("drift-issue")
@click.option(
    "--report",
    "report_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="JSON report written by `reconciler drift --format json`.",
)
def drift_issue(report_file: Path) -> None:
    """Open the drift issue, update it while drift lasts, close it when gone."""
    code = commands.run_github_drift_issue(
        _github(), report_path=report_file, console=_console()
    )
    sys.exit(code)


@github.command("pull-state")
@click.option("--branch", default="main", show_default=True)
@click.option(
    "--links",
    "links_path",
    type=click.Path(path_type=Path, dir_okay=False),
    default=Path("state/links.yaml"),
    show_default=True,
)
def pull_state(branch: str, links_path: Path) -> None:
    """Take the link table and its apply log as they are on the branch now."""
    code = commands.run_github_pull_state(
        _github(), branch=branch, links_path=links_path, console=_console()
    )
    sys.exit(code)


@github.command("commit-state")
@target_options
@click.option("--branch", default="main", show_default=True)
@click.option(
    "--message",
    default="Update the link table after apply",
    show_default=True,
    help="Commit message.",
)
def commit_state(branch: str, message: str, **kwargs: Any) -> None:
    """Commit the link table and its apply log to the branch if they changed."""
    code = commands.run_github_commit_state(
        _github(),
        branch=branch,
        settings=_settings(kwargs),
        message=message,
        console=_console(),
    )
    sys.exit(code)


@main.group("import")
def import_group() -> None:
    """Import programmes and lots from Up exports into manifests."""


@import_group.command("csv", epilog=EXIT_CODES_HELP)
@click.argument("export", type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--mapping",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="Mapping file (YAML) of the export's columns, such as mappings/dvf.yaml.",
)
@click.option(
    "--programme",
    "programmes",
    multiple=True,
    help="Import only this programme Up id (repeatable); names the programme of an "
    "export whose mapping reads no programme Up id.",
)
@click.option(
    "--into",
    type=click.Path(path_type=Path, file_okay=False),
    default=DEFAULT_PATHS[0],
    show_default=True,
    help="Folder of the manifests to update and create.",
)
@click.option(
    "--prune",
    is_flag=True,
    help="Remove lots that the manifests hold but the export lacks.",
)
@click.option(
    "--strict",
    is_flag=True,
    help="Write nothing if any row has an error (by default, such rows are skipped "
    "and reported).",
)
@click.option("--encoding", help="Force the export's encoding, such as windows-1252.")
@click.option(
    "--separator",
    type=click.Choice([";", ",", "tab"]),
    help="Force the export's field separator.",
)
def import_csv(
    export: Path,
    mapping: Path,
    programmes: tuple[str, ...],
    into: Path,
    prune: bool,
    strict: bool,
    encoding: str | None,
    separator: str | None,
) -> None:
    """Turn a lot grid exported as CSV into manifests, one file per programme.

    Existing manifests keep their comments, link intents and the fields the export
    lacks. The summary accounts for every row of EXPORT.
    """
    request = ImportRequest(
        export=export,
        mapping=mapping,
        into=into,
        programmes=programmes,
        prune=prune,
        strict=strict,
        encoding=encoding,
        separator="\t" if separator == "tab" else separator,
    )
    sys.exit(commands.run_import(request, _console()))


@import_group.command("pull-request", epilog=EXIT_CODES_HELP)
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, dir_okay=False))
@click.option(
    "--summary",
    "summary_file",
    type=click.Path(path_type=Path, dir_okay=False),
    required=True,
    help="File with the summaries printed by `import csv`, shown in the body.",
)
@click.option("--title", default="Import Up exports", show_default=True)
@click.option("--base", default="main", show_default=True, help="Branch to merge into.")
@click.option(
    "--branch",
    default="import/up-exports",
    show_default=True,
    help="Branch of the import pull request; moved to each new import.",
)
def import_pull_request(
    paths: tuple[Path, ...], summary_file: Path, title: str, base: str, branch: str
) -> None:
    """Open or update the pull request of the changed manifest files PATHS.

    Reads GITHUB_API_URL, GITHUB_REPOSITORY and GITHUB_TOKEN, as set in a GitHub
    Actions step. Prints pull-request=N and head-sha=SHA for $GITHUB_OUTPUT.
    """
    request = commands.ImportPullRequestRequest(
        list(paths), summary_file, title, base, branch
    )
    sys.exit(commands.run_import_pull_request(_github(), request, _console()))


if __name__ == "__main__":
    main()
