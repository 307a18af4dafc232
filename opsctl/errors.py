"""The one place that turns errors into a single line on stderr and an exit code."""

from __future__ import annotations

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


def report(exc: BaseException, debug: bool, stream: TextIO | None = None) -> ExitCode:
    """Print one line for `exc` (the traceback too with --debug) and return its exit code."""
    stream = stream or sys.stderr  # looked up now: tests and callers may have replaced it
    if debug:
        traceback.print_exception(exc, file=stream)
    if isinstance(exc, OpsctlError):
        click.echo(f"opsctl: {exc}", file=stream)
        return exc.exit_code
    if isinstance(exc, click.ClickException):
        exc.show(file=stream)
        return ExitCode.USAGE
    click.echo(
        f"opsctl: internal error: {type(exc).__name__}: {exc} (run with --debug for details)",
        file=stream,
    )
    return ExitCode.UNREACHABLE
