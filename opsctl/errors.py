"""The one place that turns errors into a single line on stderr and an exit code."""

from __future__ import annotations

import io
import os
import sys
import traceback
from typing import TextIO

import click

from opsctl.exitcodes import ExitCode


class OpsctlError(Exception):
    """An error we expected: its message names what is wrong and how to fix it."""

    exit_code: ExitCode = ExitCode.USAGE

    def __init__(self, message: str, exit_code: ExitCode | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


# Variables whose values are secrets even when no configuration could be read: the bot's own
# secret settings and anything named like a credential.
SECRET_NAME_ENDINGS = ("_TOKEN", "_SECRET", "_KEY", "_PASSWORD", "_SID")


def _environment_secrets() -> list[str]:
    """The values of the secret-looking variables of this process (an error may quote one)."""
    return [v for k, v in os.environ.items() if k.upper().endswith(SECRET_NAME_ENDINGS) and v]


def report(exc: BaseException, debug: bool, stream: TextIO | None = None) -> ExitCode:
    """Print one line for `exc` (the traceback too with --debug) and return its exit code;
    whatever is printed is redacted first (an exception may quote a URL or a header)."""
    from evidence.redact import Redactor

    stream = stream or sys.stderr  # looked up now: tests and callers may have replaced it
    redact = Redactor(_environment_secrets()).redact
    # A usage error's traceback shows only click's parser; its one line says what to change.
    if debug and not isinstance(exc, click.UsageError):
        stream.write(redact("".join(traceback.format_exception(exc))))
    if isinstance(exc, OpsctlError):
        click.echo(redact(f"opsctl: {exc}"), file=stream)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        shown = io.StringIO()
        exc.show(file=shown)
        stream.write(redact(shown.getvalue()))
        return ExitCode.USAGE
    click.echo(
        redact(f"opsctl: internal error: {type(exc).__name__}: {exc}")
        + " (run with --debug for details)",
        file=stream,
    )
    return ExitCode.UNREACHABLE
