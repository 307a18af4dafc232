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


def load(config_path: Path) -> Any:
    """opsctl.toml, checked against the registered checks."""
    from checks.registry import CHECKS
    from opsctl.config import load_config

    return load_config(config_path, CHECKS)


def execute(request: VerifyRequest) -> ExitCode:
    """Run what was asked, show the verdict first, leave the evidence; the exit code."""
    from checks.children import watch_descendants
    from evidence.signoffs import Ledger
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
    run, bundle = _run(request, config, env, gates, skipped, scope, environ, capture, evidence_root)
    if request.junit is not None:
        from evidence.formats.junit import render_junit
        from opsctl.files import write_atomically

        write_atomically(request.junit, render_junit(run))
    show(run, request.as_json)
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
) -> tuple[RunResult, Path | None]:
    """Open the target, run the gates (a live table on a terminal), write the evidence, close.

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

    console = rich_console() if not request.as_json else None
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
            table = None
            if console is not None:  # rich only for a terminal
                from opsctl.console import LiveTable

                table = LiveTable(gates, console)
            with table or nullcontext():
                on_event = table.on_event if table is not None else None
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


def rich_console() -> Any:
    """A rich console when stdout is a colour terminal; None for plain lines."""
    if os.environ.get("NO_COLOR") or not sys.stdout.isatty():
        return None
    from rich.console import Console

    return Console()


def show(run: RunResult, as_json: bool) -> None:
    """The run on stdout: JSON, a rich table on a terminal, plain lines otherwise."""
    if as_json:
        from evidence.formats.json_format import render_json

        click.echo(render_json(run), nl=False)
        return
    console = rich_console()
    if console is None:
        from evidence.formats.text import render_text

        click.echo(render_text(run), nl=False)
    else:
        from opsctl.console import print_run

        print_run(run, console)


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
