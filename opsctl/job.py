"""`opsctl verify` and `opsctl check`, from the options they were given to the verdict: one path."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from collections.abc import Coroutine, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import click

from opsctl.exitcodes import ExitCode
from opsctl.results import RunResult, Scope

T = TypeVar("T")


@dataclass(frozen=True, kw_only=True)
class VerifyRequest:
    """Every option of `verify` (and `check`), as the command line gave it: built once by the
    click layer, read only here, so no option can be dropped on the way (a test checks that
    every option of the commands is a field, and reaches `execute`)."""

    env_names: tuple[str, ...]
    """--env, once or more (`check`: one); empty with --all."""
    config_path: Path
    env_file: Path
    all_envs: bool = False
    """--all: every environment in opsctl.toml."""
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
    show_output: bool = False
    """`check --show-output`: pytest's output (the tests check), on stderr as it comes."""
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
    """Run what was asked, show the verdict first, leave the evidence; the exit code. Several
    environments run at once, each with its own target, bundle and verdict, then one overall
    verdict whose exit code is the worst run's."""
    from checks.children import watch_descendants
    from opsctl.config import load

    watch_descendants()  # what it starts dies with it, at any depth, SIGKILL included
    _one_way_to_name_environments(request)
    config = load(request.config_path)
    envs = _environments(config, request)
    several = request.all_envs or len(envs) > 1  # --all: one shape, however many are configured
    gates, skipped, scope = _selection(config, request)
    _start_secret_workers_early(request, gates, skipped)
    try:
        return _execute(request, config, envs, several, gates, skipped, scope)
    finally:
        from checks.secrets import stop_prestarted_workers

        stop_prestarted_workers()  # those no scan took (it was cut short, or not reached)


def _start_secret_workers_early(
    request: VerifyRequest, gates: list[Any], skipped: Mapping[str, str]
) -> None:
    """With --fresh the secret scan reads every file: its workers start now, and import
    detect-secrets while opsctl loads the rest of itself (~0.2 s, issue 17). Without it, the
    cache usually spares the scan any worker, and the scan starts them if it needs them."""
    from opsctl.config import gates_to_run

    if request.fresh and any("secrets" in gate.checks for gate in gates_to_run(gates, skipped)):
        from checks.secrets import prestart_workers

        prestart_workers()


def _execute(
    request: VerifyRequest,
    config: Any,
    envs: list[Any],
    several: bool,
    gates: list[Any],
    skipped: Mapping[str, str],
    scope: Scope,
) -> ExitCode:
    """execute's run, once the environments and the gates are known."""
    from evidence.signoffs import Ledger
    from opsctl.config import gates_to_run
    from opsctl.verify import Capture, judge_environments

    signoffs = Ledger(config.evidence.signoffs).entries()
    captures = [Capture(signoffs=signoffs) for _ in envs]
    environ = load_environ(request.env_file)
    evidence_root = None
    if request.check_id is None and not request.no_evidence:
        evidence_root = request.evidence_dir or config.evidence.dir
    # The live table lists what will run: a gate left out by --skip never leaves 'waiting'.
    shown = gates_to_run(gates, skipped)
    output, console, progresses, live = _display(request, envs, shown, several)
    done = _run(
        request,
        config,
        envs,
        gates,
        skipped,
        scope,
        environ,
        captures,
        evidence_root,
        progresses,
        live,
    )
    runs = [run for run, _ in done]
    verdict = judge_environments(runs) if several else runs[0].judgement
    if request.junit is not None:
        from evidence.formats.junit import render_junit, render_junit_runs
        from opsctl.files import write_atomically

        write_atomically(
            request.junit, render_junit_runs(runs) if several else render_junit(runs[0])
        )
    if several:
        show_several(runs, verdict, output, console, progresses)
    else:
        show(runs[0], output, console, progresses[0])
    for run, bundle in done:
        if bundle is not None and not request.as_json:
            click.echo(f"{_label(run.env, envs) if several else ''}evidence: {bundle}")
    if request.to_notion:
        for run, bundle in done:
            _notion_after_verdict(config, run, bundle, environ)
    return verdict.exit_code


def _one_way_to_name_environments(request: VerifyRequest) -> None:
    """--env (once or more) or --all: one of them, before any configuration is read."""
    from opsctl.errors import OpsctlError

    if request.all_envs and request.env_names:
        raise OpsctlError("--all and --env together: give --env NAME (once or more), or --all")
    if not request.all_envs and not request.env_names:
        raise OpsctlError("Missing option '--env': give --env NAME (once or more), or --all")


def _environments(config: Any, request: VerifyRequest) -> list[Any]:
    """The environments to verify, each named once, in the order given (--all: the config's)."""
    from opsctl.errors import OpsctlError

    names = list(config.environments) if request.all_envs else dict.fromkeys(request.env_names)
    envs = [config.environment(name) for name in names]  # an unknown name: the known ones
    if request.url and (request.all_envs or len(envs) > 1):
        raise OpsctlError(
            f"--url is one deployment, and {len(envs)} environments were asked for; "
            "fix: give --url with a single --env"
        )
    return envs


def _label(env_name: str, envs: list[Any]) -> str:
    """An environment's name padded to the longest one's: what its lines start with."""
    width = max(len(env.name) for env in envs)
    return f"{env_name:<{width}}  "


def _notion_after_verdict(
    config: Any, run: RunResult, bundle: Path | None, environ: Mapping[str, str]
) -> None:
    """Sync one run to Notion; whatever goes wrong is one line, the verdict above stands."""
    try:
        _sync_run_to_notion(config, run, bundle, environ)
    except Exception as exc:  # whatever went wrong, the verdict above stands
        from opsctl.errors import OpsctlError

        why = exc if isinstance(exc, OpsctlError) else f"{type(exc).__name__}: {exc}"
        click.echo(f"Notion sync pending: {why}", err=True)


def _selection(config: Any, request: VerifyRequest) -> tuple[list[Any], dict[str, str], Scope]:
    """The gates to run, those skipped with their reason, and the run's scope."""
    from checks.registry import CHECKS
    from opsctl.config import ConfigError, Gate

    if request.check_id is not None:
        if request.check_id not in CHECKS:
            known = ", ".join(sorted(CHECKS))
            raise ConfigError(f"no check {request.check_id!r}; fix: use one of: {known}")
        check = CHECKS[request.check_id]
        gate = Gate(id=request.check_id, title=check.title, checks=(request.check_id,))
        return [gate], {}, Scope()
    from opsctl.verify import select_gates

    gates, skipped = select_gates(config, request.only, request.skip)
    ran = {g.id for g in gates} - set(skipped)
    not_run = tuple(g for g in config.gates if g not in ran)
    return gates, skipped, Scope(only=request.only, skip=request.skip, not_run=not_run)


def _run(
    request: VerifyRequest,
    config: Any,
    envs: list[Any],
    gates: list[Any],
    skipped: Mapping[str, str],
    scope: Scope,
    environ: Mapping[str, str],
    captures: list[Any],
    evidence_root: Path | None,
    progresses: list[Any],
    live: Any,
) -> list[tuple[RunResult, Path | None]]:
    """Open each environment's target, run the gates against all of them at once in one event
    loop (`progresses[i]` hears of environment i's checks), write each one's evidence, close.

    Each environment's run is bounded by its Runner.deadline_s; run side by side, the whole
    run is bounded by the longest of them, not their sum. The repository's checks run once
    and every environment gets their result (opsctl/runner.py SharedChecks). Interrupted
    (Ctrl-C, SIGTERM), each environment's finished checks still go into a bundle marked so.
    """
    import asyncio
    from contextlib import ExitStack

    from opsctl.config import gates_to_run
    from opsctl.result_cache import cache_for
    from opsctl.runner import SharedChecks
    from opsctl.verify import (
        REPOSITORY_CHECKS,
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
    shared = SharedChecks(REPOSITORY_CHECKS) if len(envs) > 1 else None
    running = gates_to_run(gates, skipped)
    with ExitStack() as stack:
        needed = needs_target(running)
        targets = [
            stack.enter_context(open_target(env, request.url, environ, needed)) for env in envs
        ]

        def evidence(run: RunResult, capture: Any, target: Any, outcome: str) -> Path | None:
            if evidence_root is None:
                return None
            secrets = secret_values(config, target, environ, capture)
            return record_evidence(config, run, capture, secrets, evidence_root, outcome)

        async def every_run() -> list[RunResult]:
            # The evidence folder's newest runs matter to the notion check only.
            with_runs = any("notion" in gate.checks for gate in running)
            notion = notion_settings(config, environ, newest_runs=with_runs)
            return await asyncio.gather(
                *(
                    run_gates(
                        config,
                        env,
                        target,
                        gates,
                        skipped,
                        progress.on_event if progress is not None else None,
                        request.debug,
                        capture,
                        offline,
                        notion,
                        cache,
                        environ,
                        shared,
                        _show_on_stderr if request.show_output else None,
                    )
                    for env, target, capture, progress in zip(
                        envs, targets, captures, progresses, strict=True
                    )
                )
            )

        try:
            with live if live is not None else nullcontext():
                runs = asyncio.run(_interruptible(every_run()))
        except KeyboardInterrupt:
            for env, target, capture in zip(envs, targets, captures, strict=True):
                cut = interrupted_run(
                    env, target, gates, capture, started_at, time.monotonic() - started
                )
                evidence(dataclasses.replace(cut, scope=scope), capture, target, "interrupted")
            raise
        done = []
        for run, capture, target in zip(runs, captures, targets, strict=True):
            run = dataclasses.replace(run, scope=scope)
            done.append((run, evidence(run, capture, target, "completed")))
        return done


def _show_on_stderr(text: str) -> None:
    """A tool's output as it comes, on stderr (stdout stays the verdict's, `--json` pure). Looked
    up at each write: a live progress display swaps sys.stderr for its own, and prints the
    text above itself."""
    sys.stderr.write(text)
    sys.stderr.flush()


async def _interruptible(run: Coroutine[Any, Any, T]) -> T:
    """`run`, with SIGTERM handled as asyncio handles Ctrl-C: the run is cancelled, every check
    unwinds in its own task (its own context), and then KeyboardInterrupt. A KeyboardInterrupt
    raised by a signal handler at any point instead could land inside one task's step and leave
    the others for the garbage collector to close ("Task was destroyed but it is pending!")."""
    import asyncio
    import threading

    if threading.current_thread() is not threading.main_thread():
        return await run  # signals reach the main thread only; its handler stays in charge
    loop = asyncio.get_running_loop()
    this = asyncio.current_task()
    assert this is not None
    stopped = False

    def stop() -> None:
        nonlocal stopped
        stopped = True
        this.cancel()

    previous = signal.getsignal(signal.SIGTERM)
    loop.add_signal_handler(signal.SIGTERM, stop)
    try:
        return await run
    except asyncio.CancelledError:
        if stopped:
            raise KeyboardInterrupt from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous)  # remove_signal_handler leaves SIG_DFL


def _display(
    request: VerifyRequest, envs: list[Any], gates: list[Any], several: bool
) -> tuple[Any, Any, list[Any], Any]:
    """What to show (opsctl/output.py decides), the console it goes to, what hears of each
    environment's checks as they run (the live table, the plain lines, or nothing), and the
    live table to draw while the run goes (None when there is none)."""
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
    if output.progress == "live":
        names = [env.name for env in envs] if several else []
        table = LiveTable(gates, console, names)
        if not several:
            return output, console, [table], table
        return output, console, [table.listener(name) for name in names], table
    if output.progress == "plain":

        def talks_to_bot(check_id: str) -> bool:
            return check_id in CHECKS and CHECKS[check_id].needs_target

        progresses = [
            PlainProgress(
                console,
                talks_to_bot,
                env.expect.wake_timeout_s,
                _label(env.name, envs) if several else "",
            )
            for env in envs
        ]
        return output, console, progresses, None
    return output, console, [None for _ in envs], None


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


def show_several(
    runs: list[RunResult], verdict: Any, output: Any, console: Any, progresses: list[Any]
) -> None:
    """Several environments' runs on stdout: each one's lines led by its name (its verdict
    first), then the overall verdict; --json: one document holding every run."""
    from evidence.formats.text import Line, text_lines
    from opsctl.console import PlainProgress, print_lines, print_run, print_summary

    width = max(len(run.env) for run in runs)
    labels = [f"{run.env:<{width}}  " for run in runs]
    overall = Line("", verdict.line, verdict.status, "")
    if output.final == "json":
        from evidence.formats.json_format import render_environments

        click.echo(render_environments(runs, verdict), nl=False)
        if any(isinstance(p, PlainProgress) for p in progresses):  # stderr ends with verdicts
            for run, label in zip(runs, labels, strict=True):
                print_lines(text_lines(run)[:1], console, label)
            print_lines([overall], console)
        return
    for run, label, progress in zip(runs, labels, progresses, strict=True):
        if output.final == "table":
            print_run(run, console, label)
            console.print()
        elif output.final == "summary" and isinstance(progress, PlainProgress):
            print_summary(run, console, progress)
        else:
            print_lines(text_lines(run), console, label)
    if output.final != "table":
        console.print()
    print_lines([overall], console)


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
