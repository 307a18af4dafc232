"""`opsctl verify` and `opsctl check`, from the options they were given to the verdict: one path."""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from opsctl.exitcodes import ExitCode
from opsctl.results import RunResult, Scope


@dataclass(frozen=True, kw_only=True)
class VerifyRequest:
    """Every option of `verify` (and `check`), as the command line gave it: built once by the
    click layer, read only here, so no option can be dropped on the way (a test checks that
    every option of the commands is a field, and reaches `execute`)."""

    env_name: str
    config_path: Path
    env_file: Path
    url: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    check_id: str | None = None
    """`opsctl check ID`: that one check, as a gate of its own."""
    as_json: bool = False
    junit: Path | None = None
    evidence_dir: Path | None = None
    no_evidence: bool = False
    to_notion: bool = False
    advisories: Path | None = None
    fresh: bool = False
    progress: str = "auto"
    """auto, live, plain or none: how checks are shown while they run."""
    color: str = "auto"
    """auto, always or never (auto follows NO_COLOR, FORCE_COLOR and the terminal)."""
    debug: bool = False


def load_environ(env_file: Path) -> dict[str, str]:
    """os.environ over the .env file: what is exported wins, as with docker and Render."""
    from dotenv import dotenv_values

    from_file = {k: v for k, v in dotenv_values(env_file).items() if v is not None}
    return {**from_file, **os.environ}


def execute(request: VerifyRequest) -> ExitCode:
    """Run what was asked, show the verdict first, leave the evidence; the exit code."""
    from checks.children import watch_descendants
    from evidence.signoffs import Ledger
    from opsctl.config import load
    from opsctl.verify import Capture

    watch_descendants()  # what it starts dies with it, at any depth, SIGKILL included
    config = load(request.config_path)
    env = config.environment(request.env_name)
    gates, skipped, scope = _selection(config, request)
    capture = Capture(signoffs=Ledger(config.evidence.signoffs).entries())
    environ = load_environ(request.env_file)
    evidence_root = None
    if request.check_id is None and not request.no_evidence:
        evidence_root = request.evidence_dir or config.evidence.dir
    # The live table lists what will run: a gate left out by --skip never leaves 'waiting'.
    output, console, progress = _display(request, env, [g for g in gates if g.id not in skipped])
    run, bundle = _run(
        request, config, env, gates, skipped, scope, environ, capture, evidence_root, progress
    )
    if request.junit is not None:
        from evidence.formats.junit import render_junit
        from opsctl.files import write_atomically

        write_atomically(request.junit, render_junit(run))
    show(run, output, console, progress)
    if bundle is not None and not request.as_json:
        click.echo(f"evidence: {bundle}")
    if request.to_notion:
        try:
            _sync_run_to_notion(config, run, bundle, environ)
        except Exception as exc:  # whatever went wrong, the verdict above stands
            from opsctl.errors import OpsctlError

            why = exc if isinstance(exc, OpsctlError) else f"{type(exc).__name__}: {exc}"
            click.echo(f"Notion sync pending: {why}", err=True)
    return run.exit_code


def _selection(config: Any, request: VerifyRequest) -> tuple[list[Any], dict[str, str], Scope]:
    """The gates to run, those skipped with their reason, and the run's scope."""
    from checks.registry import CHECKS
    from opsctl.config import ConfigError, Gate
    from opsctl.verify import select_gates

    if request.check_id is not None:
        if request.check_id not in CHECKS:
            known = ", ".join(sorted(CHECKS))
            raise ConfigError(f"no check {request.check_id!r}; fix: use one of: {known}")
        check = CHECKS[request.check_id]
        gate = Gate(id=request.check_id, title=check.title, checks=(request.check_id,))
        return [gate], {}, Scope()
    gates, skipped = select_gates(config, request.only, request.skip)
    ran = {g.id for g in gates} - set(skipped)
    not_run = tuple(g for g in config.gates if g not in ran)
    return gates, skipped, Scope(only=request.only, skip=request.skip, not_run=not_run)


def _run(
    request: VerifyRequest,
    config: Any,
    env: Any,
    gates: list[Any],
    skipped: Mapping[str, str],
    scope: Scope,
    environ: Mapping[str, str],
    capture: Any,
    evidence_root: Path | None,
    progress: Any,
) -> tuple[RunResult, Path | None]:
    """Open the target, run the gates (`progress` hears of each check), write the evidence, close.

    Interrupted (Ctrl-C, SIGTERM), the finished checks still go into a bundle marked so.
    """
    import asyncio

    from opsctl.result_cache import cache_for
    from opsctl.verify import (
        interrupted_run,
        needs_target,
        notion_settings,
        open_target,
        record_evidence,
        resolve_advisories,
        run_gates,
        secret_values,
    )

    started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    started = time.monotonic()
    offline = resolve_advisories(request.advisories, environ)
    cache = cache_for(config.path, request.fresh, environ)
    with open_target(env, request.url, environ, needs_target(gates)) as target:

        def evidence(run: RunResult, outcome: str) -> Path | None:
            if evidence_root is None:
                return None
            secrets = secret_values(config, target, environ, capture)
            return record_evidence(config, run, capture, secrets, evidence_root, outcome)

        try:
            from opsctl.console import LiveTable

            with progress if isinstance(progress, LiveTable) else nullcontext():
                on_event = progress.on_event if progress is not None else None
                notion = notion_settings(config, environ)
                run = asyncio.run(
                    run_gates(
                        config,
                        env,
                        target,
                        gates,
                        skipped,
                        on_event,
                        request.debug,
                        capture,
                        offline,
                        notion,
                        cache,
                        environ,
                    )
                )
        except KeyboardInterrupt:
            cut = interrupted_run(
                env, target, gates, capture, started_at, time.monotonic() - started
            )
            evidence(dataclasses.replace(cut, scope=scope), "interrupted")
            raise
        run = dataclasses.replace(run, scope=scope)
        return run, evidence(run, "completed")


def _display(request: VerifyRequest, env: Any, gates: list[Any]) -> tuple[Any, Any, Any]:
    """What to show (opsctl/output.py decides), the console it goes to, and what hears of each
    check as it runs: the live table, the plain lines, or nothing."""
    from checks.registry import CHECKS
    from opsctl.console import LiveTable, PlainProgress, make_console
    from opsctl.output import decide

    output = decide(
        request.progress,
        request.color,
        request.as_json,
        os.environ,
        sys.stdout.isatty(),
        sys.stderr.isatty(),
    )
    console = make_console(output, sys.stderr if output.to_stderr else sys.stdout)
    progress: LiveTable | PlainProgress | None = None
    if output.progress == "live":
        progress = LiveTable(gates, console)
    elif output.progress == "plain":

        def talks_to_bot(check_id: str) -> bool:
            return check_id in CHECKS and CHECKS[check_id].needs_target

        progress = PlainProgress(console, talks_to_bot, env.expect.wake_timeout_s)
    return output, console, progress


def show(run: RunResult, output: Any, console: Any, progress: Any) -> None:
    """The run on stdout, verdict first: JSON, rich's table, the summary after the plain lines,
    or every line of it."""
    from evidence.formats.text import text_lines
    from opsctl.console import PlainProgress, print_lines, print_run, print_summary

    if output.final == "json":
        from evidence.formats.json_format import render_json

        click.echo(render_json(run), nl=False)
        if isinstance(progress, PlainProgress):  # the lines on stderr end with the verdict
            print_lines(text_lines(run)[:1], console)
    elif output.final == "table":
        print_run(run, console)
    elif output.final == "summary" and isinstance(progress, PlainProgress):
        print_summary(run, console, progress)
    else:
        print_lines(text_lines(run), console)


def _sync_run_to_notion(
    config: Any, run: RunResult, bundle: Path | None, environ: Mapping[str, str]
) -> None:
    """The verdict is already out: a Notion problem is reported, never turned into an exit code."""
    import json

    from evidence.formats.json_format import as_data
    from opsctl.notion.outbox import Outbox
    from opsctl.notion.rows import Run, record_sent, verify_changes
    from opsctl.notion.service import evidence_link, push
    from opsctl.verify import configured_secrets

    if bundle is not None:
        data = json.loads((bundle / "run.json").read_text(encoding="utf-8"))
        run_id, link = bundle.name, evidence_link(config, bundle)
    else:
        data, link = as_data(run), ""
        run_id = f"{run.started_at.replace('-', '').replace(':', '')}_{run.env}"
    root = bundle.parent if bundle is not None else config.evidence.dir
    secrets = configured_secrets(config, environ)
    changes = verify_changes(config, Run(run_id, data, link), root, secrets)

    def waiting(line: str) -> None:
        click.echo(f"notion: {line}", err=True)

    # Bounded: the verdict is out, and a sync elsewhere may take minutes; ours stays queued.
    wait_s = config.notion.verify_wait_s
    report = push(config, changes, environ=dict(environ), wait_s=wait_s, on_wait=waiting)
    record_sent(config, changes, Outbox(config.notion.outbox))
    echo_notion(report, config.notion.outbox, to_stderr=True)


def echo_notion(report: Any, outbox: Path, to_stderr: bool) -> None:
    """What the sync did; on stderr after `verify` (whose stdout may be JSON)."""
    for note in report.notes:
        click.echo(f"notion: {note}", err=to_stderr)
    if report.error:
        click.echo(
            f"Notion sync pending: {report.pending} change(s) kept in {outbox}: {report.error}",
            err=True,
        )
    else:
        click.echo(f"notion: synced: {report.line()}", err=to_stderr)
