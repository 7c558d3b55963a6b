"""Errors a user can fix, and the exit codes the command line maps them to."""

from __future__ import annotations

from dataclasses import dataclass

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_INTERRUPTED = 130


class ReconcilerError(Exception):
    """An error the user can fix: bad input, configuration or remote state.

    The command line prints its message on one line and exits with ``exit_code``,
    with no traceback unless ``--debug`` is given.
    """

    exit_code = EXIT_ERROR


class ConfigurationError(ReconcilerError):
    """Missing or contradictory settings for the MyNotary target."""


class RemoteError(ReconcilerError):
    """MyNotary answered with an error, or could not be reached."""


@dataclass(frozen=True, order=True)
class SourceLocation:
    """Position of a value in a manifest file; line and column start at 1."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


@dataclass(frozen=True, order=True)
class ManifestIssue:
    """One error or warning found in a manifest, at its position and field path."""

    location: SourceLocation
    field_path: str
    message: str
    is_warning: bool = False

    def __str__(self) -> str:
        prefix = f"{self.location}"
        if self.field_path:
            prefix += f" {self.field_path}"
        kind = "warning: " if self.is_warning else ""
        return f"{prefix}: {kind}{self.message}"


class ManifestError(ReconcilerError):
    """One or more manifests are invalid; nothing may be sent to MyNotary."""

    def __init__(self, issues: list[ManifestIssue]) -> None:
        self.issues = sorted(issues)
        errors = [issue for issue in self.issues if not issue.is_warning]
        super().__init__(f"{len(errors)} error(s) in manifests")
