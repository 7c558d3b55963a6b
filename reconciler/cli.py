"""Command line: parses options and calls one function of ``reconciler.commands``.

Exit codes, for every command: 0 success, 1 error (invalid manifests, a blocked
plan, a failed apply, bad configuration), 2 changes pending (``plan
--detailed-exitcode``), 130 interrupted.
"""

from __future__ import annotations

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
from reconciler.plan import PlanOptions

DEFAULT_PATHS = (Path("manifests"),)

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 1 error (invalid manifests, blocked plan, failed apply, "
    "bad configuration); 2 changes pending (plan --detailed-exitcode); "
    "130 interrupted."
)

paths_argument = click.argument("paths", nargs=-1, type=click.Path(path_type=Path))


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
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _settings(kwargs: dict[str, Any]) -> Any:
    options = TargetOptions(
        url=kwargs.pop("url"),
        organization_id=kwargs.pop("organization"),
        user_id=kwargs.pop("user"),
        api_key_file=kwargs.pop("api_key_file"),
        target=kwargs.pop("target"),
        links_path=kwargs.pop("links_path"),
        timeout=kwargs.pop("timeout"),
    )
    return resolve_settings(options, os.environ)


def _console() -> commands.Console:
    use_colour = sys.stdout.isatty() and "NO_COLOR" not in os.environ

    def styler(text: str, colour: str) -> str:
        return click.style(text, fg=colour) if use_colour else text

    return commands.Console(styler=styler)


class _Group(click.Group):
    """Maps user-fixable errors to exit 1 with one line, and Ctrl-C to 130."""

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
def plan(
    paths: tuple[Path, ...],
    detailed_exitcode: bool,
    recreate_missing: bool,
    **kwargs: Any,
) -> None:
    """Show the changes that would make MyNotary match the manifests."""
    request = commands.PlanRequest(
        list(paths or DEFAULT_PATHS), _settings(kwargs), PlanOptions(recreate_missing)
    )
    sys.exit(
        commands.run_plan(
            request, detailed_exitcode=detailed_exitcode, console=_console()
        )
    )


@main.command(epilog=EXIT_CODES_HELP)
@paths_argument
@target_options
@click.option("--auto-approve", is_flag=True, help="Apply without asking for 'yes'.")
@click.option(
    "--parallelism",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Changes sent to MyNotary at the same time.",
)
@click.option(
    "--recreate-missing",
    is_flag=True,
    help="Create again linked records that are missing on MyNotary.",
)
def apply(
    paths: tuple[Path, ...],
    auto_approve: bool,
    parallelism: int,
    recreate_missing: bool,
    **kwargs: Any,
) -> None:
    """Compute the plan, ask for approval, and carry it out."""
    request = commands.ApplyRequest(
        plan=commands.PlanRequest(
            list(paths or DEFAULT_PATHS),
            _settings(kwargs),
            PlanOptions(recreate_missing),
        ),
        auto_approve=auto_approve,
        parallelism=parallelism,
        confirm=_confirm,
    )
    sys.exit(commands.run_apply(request, _console()))


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
def status(paths: tuple[Path, ...], output_format: str, **kwargs: Any) -> None:
    """Show each programme and lot with its link state and sync state."""
    request = commands.PlanRequest(
        list(paths or DEFAULT_PATHS), _settings(kwargs), PlanOptions()
    )
    sys.exit(
        commands.run_status(
            request, as_json=output_format == "json", console=_console()
        )
    )


@main.group()
def sandbox() -> None:
    """Run the MyNotary sandbox that ships with the reconciler."""


@sandbox.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; keep 127.0.0.1 unless others must reach it.",
)
def serve(port: int, host: str) -> None:
    """Serve the sandbox's data (.reconciler/sandbox.db) over HTTP.

    If MYNOTARY_SANDBOX_API_KEY is set, requests must carry it in x-api-key.
    """
    from reconciler.sandbox.server import serve as serve_sandbox

    database = Path(".reconciler") / "sandbox.db"
    database.parent.mkdir(parents=True, exist_ok=True)
    click.echo(f"Sandbox serving {database} on http://{host}:{port}", err=True)
    serve_sandbox(
        database,
        host=host,
        port=port,
        api_key=os.environ.get("MYNOTARY_SANDBOX_API_KEY"),
    )


@sandbox.command()
@paths_argument
def demo(paths: tuple[Path, ...]) -> None:
    """Reset the sandbox and load a scenario for the example manifests.

    Afterwards, `reconciler plan` shows a create, an update, a link and an unlink.
    """
    code = commands.run_demo(list(paths or DEFAULT_PATHS), _console())
    sys.exit(code)


if __name__ == "__main__":
    main()
