"""The `opsctl` command line: parse options, build objects, call the core, return an exit code."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import click

from opsctl import __version__
from opsctl.errors import report
from opsctl.exitcodes import ExitCode

# Heavy libraries (httpx, rich, jsonschema, the checks) are imported inside the commands,
# so `opsctl --version` and `opsctl --help` start about as fast as click itself.

config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(path_type=Path),
    default=Path("opsctl.toml"),
    show_default=True,
    help="The configuration file.",
)
advisories_option = click.option(
    "--advisories",
    type=click.Path(path_type=Path),
    help="Audit dependencies against this offline OSV folder (else OPSCTL_ADVISORIES, config, "
    "or pip-audit online).",
)
fresh_option = click.option(
    "--fresh",
    is_flag=True,
    help="Run the test suite even if its last pass had exactly the same inputs.",
)
progress_option = click.option(
    "--progress",
    type=click.Choice(["auto", "live", "plain", "none"]),
    default="auto",
    show_default=True,
    help="live: a table redrawn in place; plain: one line per finished check (pipes, CI); "
    "none: only the verdict. auto: live on a terminal, else plain.",
)
color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="auto: colour on a terminal, unless NO_COLOR is set (FORCE_COLOR forces it).",
)
env_file_option = click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Secrets and settings (exported variables win).",
)


def _environment(env_file: Path) -> dict[str, str]:
    from opsctl.job import load_environ

    return load_environ(env_file)


def _load(config_path: Path) -> Any:
    from opsctl.job import load

    return load(config_path)


@click.group()
@click.version_option(__version__, prog_name="opsctl")
@click.option("--debug", is_flag=True, help="Show tracebacks.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Ops toolkit for the Clara WhatsApp bot."""
    ctx.obj = {"debug": debug}


@cli.command()
@click.option("--env", "env_name", required=True, help="Environment from opsctl.toml.")
@config_option
@env_file_option
@click.option(
    "--url", help="Verify this deployment (canary, blue-green) with --env's expectations."
)
@click.option("--only", multiple=True, metavar="GATE", help="Run this gate (and what it needs).")
@click.option("--skip", multiple=True, metavar="GATE", help="Do not run this gate.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (opsctl.verify/v1).")
@click.option("--junit", type=click.Path(path_type=Path), help="Also write JUnit XML here.")
@click.option(
    "--evidence-dir",
    type=click.Path(path_type=Path),
    help="Where bundles go (default: [evidence] dir in opsctl.toml).",
)
@click.option("--no-evidence", is_flag=True, help="Write no bundle; leave PHASE-STATUS.md alone.")
@click.option(
    "--notion",
    "to_notion",
    is_flag=True,
    help="After the verdict, sync the gates and the run to Notion (never changes the exit code).",
)
@advisories_option
@fresh_option
@progress_option
@color_option
@click.pass_context
def verify(ctx: click.Context, **options: Any) -> int:
    """Run the phase gates against an environment and give an honest verdict."""
    from opsctl.job import VerifyRequest, execute

    return execute(VerifyRequest(debug=_debug(ctx), **options))


def _debug(ctx: click.Context) -> bool:
    return bool(ctx.obj and ctx.obj.get("debug"))


@cli.command()
@click.argument("check_id")
@click.option(
    "--env",
    "env_name",
    default="local",
    show_default=True,
    help="Environment from opsctl.toml (repository checks ignore it).",
)
@config_option
@env_file_option
@click.option("--url", help="Check this deployment instead of the environment's.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (opsctl.verify/v1).")
@advisories_option
@fresh_option
@progress_option
@color_option
@click.pass_context
def check(ctx: click.Context, **options: Any) -> int:
    """Run one check against an environment, or against the repository."""
    from opsctl.job import VerifyRequest, execute

    return execute(VerifyRequest(debug=_debug(ctx), **options))


@cli.command()
@config_option
def gates(config_path: Path) -> int:
    """List the gates, their checks and what they need."""
    config = _load(config_path)
    for gate in config.gates.values():
        kind = "blocking" if gate.blocking else "advisory"
        needs = f", needs {', '.join(gate.needs)}" if gate.needs else ""
        click.echo(f"{gate.id}  {gate.title}  ({kind}{needs})")
        checks = ", ".join(gate.checks) or f"none: {gate.skip_reason or 'no checks configured'}"
        click.echo(f"    checks: {checks}")
    return ExitCode.OK


@cli.group(invoke_without_command=True)
@click.option(
    "--env",
    "env_names",
    multiple=True,
    help="Environment to keep awake (repeatable; default: those with keepalive = true).",
)
@click.option("--url", "urls", multiple=True, help="A health URL outside the config (repeatable).")
@click.option("--interval", help="Between pings: 14m, 90s... (default: [keepalive] interval).")
@click.option("--once", is_flag=True, help="Ping once and exit 0 (all 2xx) or 1 (for cron).")
@click.option(
    "--retries",
    type=click.IntRange(0, 10),
    default=0,
    show_default=True,
    help="With --once: ping a failed target again, 10 s apart, up to this many times.",
)
@click.option("--log-dir", type=click.Path(path_type=Path), help="Where the ping logs go.")
@click.option("--heartbeat-url", help="GET here after each ping, /fail appended on failure.")
@config_option
@click.pass_context
def warmup(
    ctx: click.Context,
    env_names: tuple[str, ...],
    urls: tuple[str, ...],
    interval: str | None,
    once: bool,
    retries: int,
    log_dir: Path | None,
    heartbeat_url: str | None,
    config_path: Path,
) -> int:
    """Keep the free tier awake: ping /health at once, then every 14 minutes, and log it."""
    if ctx.invoked_subcommand is not None:
        return ExitCode.OK
    import threading

    import httpx

    from opsctl.keepalive import KeepAlive, PingLog, targets_for, validate_interval

    if retries and not once:
        raise click.UsageError("--retries goes with --once (the daemon retries on its own)")
    config = _load(config_path)
    targets = targets_for(config, env_names, urls)
    seconds = validate_interval(interval, config.keepalive.interval_s, targets)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # stop at once, between or during waits
        signal.signal(signum, lambda *_: stop.set())
    log = PingLog(log_dir or config.keepalive.log_dir)
    log.check_writable()  # before the first ping, not at it
    with httpx.Client(follow_redirects=True) as client:
        keepalive = KeepAlive(
            targets=targets,
            client=client,
            interval=seconds,
            log=log,
            stop=stop,
            echo=lambda line: click.echo(line),
            cold_start_ms=config.keepalive.cold_start_ms,
            timeout_s=config.keepalive.timeout_s,
            heartbeat_url=heartbeat_url or config.keepalive.heartbeat_url,
            status_file=(log_dir / "status.json") if log_dir else config.keepalive.status_file,
        )
        if once:
            return ExitCode.OK if keepalive.once(retries) else ExitCode.GATE_FAILED
        names = ", ".join(t.env for t in targets)
        click.echo(f"keeping {names} awake every {seconds:g}s; SIGTERM or Ctrl-C stops", err=True)
        keepalive.run()
    click.echo("stopped", err=True)
    return ExitCode.OK


@warmup.command("status")
@click.option("--env", "env_name", required=True, help="Environment (or url-... log name).")
@click.option("--window", default="24h", show_default=True, help="How far back to look.")
@click.option("--log-dir", type=click.Path(path_type=Path), help="Where the ping logs are.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@config_option
def warmup_status(
    env_name: str, window: str, log_dir: Path | None, as_json: bool, config_path: Path
) -> int:
    """Last pings, gaps over 15 minutes, cold starts, uptime and a latency sparkline (✗: a
    failed ping). Exit 1, saying why, when the window has a gap or a failed or slow ping."""
    import json
    from dataclasses import asdict
    from datetime import UTC, datetime, timedelta

    from opsctl.config import ConfigError
    from opsctl.keepalive import (
        IntervalError,
        PingLog,
        judge,
        parse_duration,
        sparkline,
        why_failing,
    )

    config = _load(config_path)
    try:
        span = parse_duration(window)
    except IntervalError as exc:
        raise ConfigError(f"--window: {exc}") from None
    until = datetime.now(UTC)
    pings = PingLog(log_dir or config.keepalive.log_dir).read(
        env_name, until - timedelta(seconds=span), until
    )
    verdict = judge(pings, until, config.keepalive.slow_ms)
    why = why_failing(verdict, config.keepalive.slow_ms) if pings else f"no pings in {window}"
    if as_json:
        data = {
            "env": env_name,
            "window": window,
            "ok": not why,
            "why": why,
            "pings": verdict.pings,
            "uptime_percent": verdict.uptime_percent,
            "cold_starts": len(verdict.cold_starts),
            "gaps": [{"from": a, "to": b, "minutes": m} for a, b, m in verdict.gaps],
            "bad": [asdict(p) for p in verdict.bad],
            "last": [asdict(p) for p in pings[-5:]],
        }
        click.echo(json.dumps(data, indent=2, sort_keys=True))
        return ExitCode.GATE_FAILED if why else ExitCode.OK
    if not pings:
        click.echo(f"no pings for {env_name} in the last {window}")
        return ExitCode.GATE_FAILED
    click.echo(
        f"{env_name}: {verdict.pings} pings in the last {window}, "
        f"uptime {verdict.uptime_percent:g} %, {len(verdict.cold_starts)} cold start(s)"
    )
    recent = pings[-60:]
    click.echo("latency " + sparkline([p.latency_ms for p in recent], [not p.ok for p in recent]))
    for start, end, minutes in verdict.gaps:
        click.echo(f"GAP {minutes} min: {start} -> {end}")
    for ping in pings[-5:]:
        click.echo(ping.line())
    if why:
        click.echo(f"FAIL: {why}")
        return ExitCode.GATE_FAILED
    return ExitCode.OK


@cli.group()
def secrets() -> None:
    """The secret scan's baseline."""


@secrets.command("baseline")
@config_option
def secrets_baseline(config_path: Path) -> int:
    """Refresh .secrets.baseline: the findings accepted as they are now (hashes, never values)."""
    from checks.secrets import write_baseline

    root = _load(config_path).repository().root
    path, count = write_baseline(root)
    click.echo(f"wrote {path}: {count} accepted finding(s); review it before committing")
    return ExitCode.OK


@cli.group()
def evidence() -> None:
    """Read, verify and prune evidence bundles."""


evidence_dir_option = click.option(
    "--evidence-dir",
    type=click.Path(path_type=Path),
    help="The evidence root (default: [evidence] dir in opsctl.toml).",
)


def _evidence_root(config_path: Path, evidence_dir: Path | None) -> Path:
    return evidence_dir or _load(config_path).evidence.dir


@evidence.command("list")
@config_option
@evidence_dir_option
def evidence_list(config_path: Path, evidence_dir: Path | None) -> int:
    """Bundles, newest first: time, environment, verdict, counts."""
    from evidence.store import list_bundles

    root = _evidence_root(config_path, evidence_dir)
    bundles = list_bundles(root)
    if not bundles:
        click.echo(f"no evidence bundles under {root} yet: run opsctl verify")
    for bundle in bundles:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(bundle.counts.items()))
        outcome = "" if bundle.outcome == "completed" else f" [{bundle.outcome}]"
        click.echo(
            f"{bundle.name}  {bundle.env:<8} {bundle.verdict.split(':')[0]:<18} {counts}{outcome}"
        )
    return ExitCode.OK


@evidence.command("show")
@click.argument("ref", default="latest")
@config_option
@evidence_dir_option
def evidence_show(ref: str, config_path: Path, evidence_dir: Path | None) -> int:
    """Print a bundle's summary.md (RUN is a folder name, a path, or latest)."""
    from evidence.store import resolve

    bundle = resolve(_evidence_root(config_path, evidence_dir), ref)
    click.echo(f"{bundle.path}\n")
    click.echo((bundle.path / "summary.md").read_text(encoding="utf-8"), nl=False)
    return ExitCode.OK


@evidence.command("verify")
@click.argument("ref", default="latest")
@config_option
@evidence_dir_option
def evidence_verify(ref: str, config_path: Path, evidence_dir: Path | None) -> int:
    """Recompute the manifest: name every changed, missing or added file (exit 1 if any)."""
    from evidence.store import resolve, verify_bundle

    bundle = resolve(_evidence_root(config_path, evidence_dir), ref)
    problems = verify_bundle(bundle.path)
    if problems:
        click.echo(f"TAMPERED: {bundle.name}: {len(problems)} file(s) differ from the manifest")
        for problem in problems:
            click.echo(f"  {problem}")
        return ExitCode.GATE_FAILED
    files = len((bundle.path / "MANIFEST.sha256").read_text().splitlines())
    click.echo(f"OK: {bundle.name}: {files} files match MANIFEST.sha256")
    return ExitCode.OK


@evidence.command("prune")
@click.option("--keep", type=click.IntRange(1), required=True, help="Bundles to keep per env.")
@config_option
@evidence_dir_option
def evidence_prune(keep: int, config_path: Path, evidence_dir: Path | None) -> int:
    """Delete all but the newest KEEP bundles of each environment."""
    from evidence.store import prune
    from opsctl.verify import write_phase_status

    config = _load(config_path)
    root = evidence_dir or config.evidence.dir
    removed = prune(root, keep)
    click.echo(f"removed {len(removed)} bundle(s)")
    for path in removed:
        click.echo(f"  {path}")
    write_phase_status(config, root)  # its links must not point at removed bundles
    return ExitCode.OK


@cli.group()
def notion() -> None:
    """Keep the gate status and the verification runs in two Notion databases."""


@notion.command("init")
@click.option("--parent", help="The Notion page (id) the databases go under (default: config).")
@config_option
@env_file_option
def notion_init(parent: str | None, config_path: Path, env_file: Path) -> int:
    """Create the Gates and Runs databases (or find and repair them) and store their ids."""
    from opsctl.config import ConfigError
    from opsctl.notion.service import connect, init

    config = _load(config_path)
    parent = parent or config.notion.parent
    if not parent:
        raise ConfigError(
            "no parent page; fix: opsctl notion init --parent PAGE_ID (a page shared with the "
            "integration: ... > Connections)"
        )
    for line in init(connect(config, _environment(env_file)), config, parent, _say_on_stderr):
        click.echo(line)
    return ExitCode.OK


def _say_on_stderr(line: str) -> None:
    click.echo(f"notion: {line}", err=True)


@notion.command("status")
@config_option
def notion_status(config_path: Path) -> int:
    """What waits in the outbox, and what Notion refused for good (with why); offline."""
    from opsctl.notion.outbox import Outbox
    from opsctl.notion.service import status_lines

    for line in status_lines(Outbox(_load(config_path).notion.outbox)):
        click.echo(line)
    return ExitCode.OK


@notion.command("sync")
@click.option("--env", "env_names", multiple=True, help="Only this environment (repeatable).")
@click.option("--run", "run_ref", help="This bundle (folder name, path or latest) only.")
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Queue again the changes Notion refused (opsctl notion status lists them).",
)
@config_option
@env_file_option
@evidence_dir_option
def notion_sync(
    env_names: tuple[str, ...],
    run_ref: str | None,
    retry_refused: bool,
    config_path: Path,
    env_file: Path,
    evidence_dir: Path | None,
) -> int:
    """Push the newest bundle's gate statuses and run summary (per environment) to Notion."""
    from opsctl.errors import OpsctlError
    from opsctl.notion.rows import changes_to_send, completed_runs, record_sent
    from opsctl.notion.service import connect, newest_bundles, push
    from opsctl.verify import configured_secrets

    config = _load(config_path)
    environ = _environment(env_file)
    for name in env_names:
        config.environment(name)
    root = evidence_dir or config.evidence.dir
    secrets = configured_secrets(config, environ)
    chosen = newest_bundles(root, env_names, run_ref)  # names a missing env or bundle
    envs = {bundle.env for bundle in chosen}
    runs = [run for run in completed_runs(config, root) if run.env in envs]
    only = chosen[0].name if run_ref else ""
    changes = changes_to_send(config, runs, secrets, only)  # every run not sent yet, in order
    sync = connect(config, environ)
    if retry_refused:
        click.echo(f"notion: queued again {sync.outbox.retry_refused()} refused change(s)")
    if not changes and not sync.outbox.pending():
        raise OpsctlError(
            f"nothing to sync: no evidence bundles under {root}; fix: run opsctl verify"
        )
    report = push(config, changes, sync, on_wait=_say_on_stderr)
    from opsctl.job import echo_notion

    record_sent(config, changes, sync.outbox)
    echo_notion(report, config.notion.outbox, to_stderr=False)
    return int(report.exit_code)


@cli.group()
def gate() -> None:
    """Sign off manual criteria, or waive a gate on the record."""


@gate.command("sign")
@click.argument("gate_id")
@click.option("--item", required=True, help="The manual criterion, as listed in opsctl.toml.")
@click.option("--by", "by", required=True, help="Who signs.")
@click.option("--note", default="", help="Why, or where the proof is.")
@config_option
def gate_sign(gate_id: str, item: str, by: str, note: str, config_path: Path) -> int:
    """Record that a person checked ITEM of GATE (append-only)."""
    from evidence.signoffs import Ledger
    from opsctl.config import ConfigError

    config = _load(config_path)
    manual = config.gate(gate_id).manual
    if item not in manual:
        listed = ", ".join(repr(m) for m in manual) or "none (add `manual = [...]` to the gate)"
        raise ConfigError(f"gate {gate_id} has no manual item {item!r}; fix: use one of: {listed}")
    entry = Ledger(config.evidence.signoffs).append("sign", gate_id, by.strip(), item, note)
    click.echo(f"signed: {gate_id} {item!r} by {entry.by} at {entry.at}")
    _refresh_phase_status(config)
    return ExitCode.OK


@gate.command("waive")
@click.argument("gate_id")
@click.option("--reason", required=True, help="Why the gate cannot be met now.")
@click.option("--by", "by", required=True, help="Who decides.")
@config_option
def gate_waive(gate_id: str, reason: str, by: str, config_path: Path) -> int:
    """Mark GATE DOCUMENTED-BLOCKED: known not done, shown everywhere, never a PASS."""
    from evidence.signoffs import Ledger
    from opsctl.config import ConfigError

    if not reason.strip():
        raise ConfigError("a waiver needs a reason; fix: --reason 'what blocks it and until when'")
    config = _load(config_path)
    config.gate(gate_id)
    entry = Ledger(config.evidence.signoffs).append("waive", gate_id, by.strip(), note=reason)
    click.echo(f"waived: {gate_id} by {entry.by} at {entry.at}: DOCUMENTED-BLOCKED")
    _refresh_phase_status(config)
    return ExitCode.OK


def _refresh_phase_status(config: Any) -> None:
    from opsctl.verify import write_phase_status

    write_phase_status(config, config.evidence.dir)


@cli.command()
@click.option("--port", type=click.IntRange(0, 65535), default=10000, show_default=True)
@env_file_option
def serve(port: int, env_file: Path) -> int:
    """Serve the bot on 127.0.0.1 with the Dockerfile's gunicorn command; Ctrl-C stops it."""
    from checks.children import watch_descendants
    from opsctl.devserver import DevServer

    watch_descendants()
    server = DevServer(_environment(env_file), port=port, on_line=click.echo)
    try:
        url = server.start()
        health = server.wait_ready()
        click.secho(
            f"Clara is serving at {url}  (health: {health}; webhook: {url}/webhook)", bold=True
        )
        click.echo("Press Ctrl-C to stop.")
        server.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return ExitCode.OK


_MAIN_PID = os.getpid()


def _interrupt(signum: int, frame: object) -> None:
    if os.getpid() != _MAIN_PID:  # a forked worker (detect-secrets' pool): just end
        os._exit(128 + signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Run the command; map any error to one line on stderr and an exit code."""
    args = sys.argv[1:] if argv is None else argv
    # SIGTERM (a supervisor, `timeout`, CI cancelling) unwinds like Ctrl-C, so the bot that
    # `verify --env local` or `serve` started is stopped in their `finally`.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        code = cli.main(args=args, prog_name="opsctl", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("opsctl: interrupted", err=True)
        return 130  # the shell's convention for SIGINT
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except Exception as exc:  # the one place errors become a line and an exit code
        return report(exc, debug="--debug" in args)
    return int(code) if isinstance(code, int) else ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
