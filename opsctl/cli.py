"""The `opsctl` command line: parse options, build objects, call the core, return an exit code."""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from click.shell_completion import CompletionItem

from opsctl import __version__
from opsctl.errors import report
from opsctl.exitcodes import EXIT_MEANING, ExitCode

if TYPE_CHECKING:
    from opsctl.job import VerifyRequest

# Heavy libraries (httpx, rich, jsonschema, the checks) are imported inside the commands,
# so `opsctl --version` and `opsctl --help` start about as fast as click itself.


class Invocation:
    """What --debug and --config said, before or after the subcommand. One per run, shared by
    every context as ctx.obj; filled while click parses (so mutable), and read by main() after
    an error, so the traceback follows the parsed flag, never a scan of argv.

    A plain class, not a dataclass: `dataclasses` imports `inspect` and `ast`, ~20 ms that
    `opsctl --help` and `--version` would pay for nothing (issue 17)."""

    __slots__ = ("config", "debug")

    def __init__(self) -> None:
        self.debug = False
        self.config: Path | None = None


def _invocation(ctx: click.Context) -> Invocation:
    return ctx.ensure_object(Invocation)


def _remember_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    """--debug before or after the subcommand: either turns it on."""
    invocation = _invocation(ctx)
    invocation.debug = invocation.debug or value
    return invocation.debug


def _remember_config(ctx: click.Context, param: click.Parameter, value: Path | None) -> Path | None:
    """The nearest --config wins: click parses a group before its subcommand, so a value given
    after the subcommand replaces one given before it. None: discovery decides (_config_file)."""
    invocation = _invocation(ctx)
    if value is not None:
        invocation.config = value
    return invocation.config


debug_option = click.option(
    "--debug",
    is_flag=True,
    expose_value=False,
    callback=_remember_debug,
    help="Show tracebacks (before or after the subcommand).",
)
CONFIG_HELP = (
    "The configuration file (default: $OPSCTL_CONFIG, else the nearest opsctl.toml from here "
    "upward). Before or after the subcommand; given in both places, the one after wins."
)


def _config_option(expose: bool) -> Any:
    return click.option(
        "--config",
        "config_path",
        # Not click's checks (three lines of usage error): read_toml names what is wrong with
        # the file in one line, wherever its path came from (--config, OPSCTL_CONFIG, found).
        type=click.Path(path_type=Path, readable=False),
        callback=_remember_config,
        expose_value=expose,
        help=CONFIG_HELP,
    )


config_option = _config_option(expose=True)
group_config_option = _config_option(expose=False)  # a group keeps it for its subcommands


def _config_file(given: Path | None) -> Path:
    from opsctl.config_file import locate_config

    return locate_config(given, os.environ, Path.cwd())


def _names_in_config(ctx: click.Context, table: str, incomplete: str) -> list[CompletionItem]:
    """Completion: the names of [table.NAME] in the configuration this command line would use;
    nothing when that fails (a TAB must never print a traceback into the shell)."""
    from opsctl.config_file import read_toml

    try:
        names = read_toml(_config_file(_invocation(ctx).config)).get(table, {})
    except Exception:  # any failure completes nothing
        return []
    return [CompletionItem(str(n)) for n in names if str(n).startswith(incomplete)]


def _complete_environments(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _names_in_config(ctx, "environments", incomplete)


def _complete_gates(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    return _names_in_config(ctx, "gates", incomplete)


def _complete_checks(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    try:
        from checks.registry import CHECKS
    except Exception:  # any failure completes nothing
        return []
    return [CompletionItem(c) for c in sorted(CHECKS) if c.startswith(incomplete)]


def _examples(*lines: str) -> str:
    r"""An epilog paragraph of command lines (`\b`: click prints it as it is, unwrapped)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _exit_codes() -> str:
    """The exit-code table for --help, generated from EXIT_MEANING as the README's is."""
    rows = [
        textwrap.fill(
            EXIT_MEANING[code],
            width=74,
            initial_indent=f"  {int(code)}  ",
            subsequent_indent="     ",
        )
        for code in ExitCode
    ]
    return "\b\nExit codes:\n" + "\n".join(rows)


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
    "none: only the verdict. auto: live on a terminal, else plain. With --json, progress "
    "goes to stderr (auto: live if stderr is a terminal, else none).",
)
color_option = click.option(
    "--color",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="auto: colour on a terminal, unless NO_COLOR is set; FORCE_COLOR forces it "
    "(NO_COLOR wins over FORCE_COLOR).",
)
env_file_option = click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    help="Secrets and settings (default: the .env beside opsctl.toml; exported variables win).",
)


def _one_environment(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...]:
    """`check`'s one --env, as the request holds verify's several."""
    return (value,)


def _environment(env_file: Path) -> dict[str, str]:
    from opsctl.job import load_environ

    return load_environ(env_file)


def _env_file(given: Path | None, config_file: Path) -> Path:
    """--env-file, else the .env beside the configuration (so a subfolder finds it too)."""
    return given if given is not None else config_file.parent / ".env"


def _load(config_path: Path | None) -> Any:
    from opsctl.config import load

    return load(_config_file(config_path))


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},  # the subcommands inherit it
    epilog="\n\n".join(
        [
            _examples(
                "opsctl verify --env render          # the deployed bot, through every gate",
                "opsctl check webhook --env local    # one check",
                "opsctl gates --json                 # the gates, for scripts",
                "opsctl verify -h                    # a command's options and examples",
            ),
            "\b\nConfiguration: --config PATH, else $OPSCTL_CONFIG, else the nearest\n"
            "opsctl.toml from the current folder upward (paths in it are relative to it).\n"
            "--config and --debug go before or after the subcommand (two --config: the\n"
            "one after the subcommand wins).",
            "\b\nShell completion of environments, gates and checks: add the line\n"
            '  bash, ~/.bashrc:  eval "$(_OPSCTL_COMPLETE=bash_source opsctl)"\n'
            '  zsh, ~/.zshrc:    eval "$(_OPSCTL_COMPLETE=zsh_source opsctl)"\n'
            "  fish, ~/.config/fish/completions/opsctl.fish:\n"
            "                    _OPSCTL_COMPLETE=fish_source opsctl | source",
            _exit_codes(),
        ]
    ),
)
@click.version_option(__version__, prog_name="opsctl")
@debug_option
@group_config_option
def cli() -> None:
    """Ops toolkit for the Clara WhatsApp bot."""


@cli.command(
    epilog="\n\n".join(
        [
            _examples(
                "opsctl verify --env local",
                "opsctl verify --env render --only P2.1 --json > run.json",
                "opsctl verify --env render --url https://clara-canary.onrender.com",
                "opsctl verify --env render --junit out/verify.xml --progress plain",
                "opsctl verify --env staging --env render --progress plain   # both at once",
            ),
            _exit_codes(),
        ]
    )
)
@click.option(
    "--env",
    "env_names",
    multiple=True,
    metavar="NAME",
    shell_complete=_complete_environments,
    help="Environment from opsctl.toml; repeat it to verify several at once (one verdict, "
    "one bundle each, then one overall verdict: the worst exit code).",
)
@click.option(
    "--all", "all_envs", is_flag=True, help="Verify every environment in opsctl.toml at once."
)
@config_option
@env_file_option
@click.option(
    "--url",
    help="Verify this deployment (canary, blue-green) with --env's expectations (one --env).",
)
@click.option(
    "--only",
    multiple=True,
    metavar="GATE",
    shell_complete=_complete_gates,
    help="Run this gate (and what it needs).",
)
@click.option(
    "--skip",
    multiple=True,
    metavar="GATE",
    shell_complete=_complete_gates,
    help="Do not run this gate.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run as JSON (opsctl.verify/v1; several environments: one "
    "opsctl.verify-envs/v1 document holding each run).",
)
@click.option(
    "--junit",
    type=click.Path(path_type=Path),
    help="Also write JUnit XML here (several environments: one file, suites named ENV/GATE).",
)
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
@debug_option
@click.pass_context
def verify(ctx: click.Context, **options: Any) -> int:
    """Run the phase gates against one or more environments and give an honest verdict."""
    from opsctl.job import execute

    return execute(_request(ctx, options))


def _request(ctx: click.Context, options: dict[str, Any]) -> VerifyRequest:
    """The command line as one VerifyRequest: the configuration found, --debug from anywhere."""
    from opsctl.job import VerifyRequest

    config_file = _config_file(options.pop("config_path"))
    return VerifyRequest(
        config_path=config_file,
        env_file=_env_file(options.pop("env_file"), config_file),
        debug=_invocation(ctx).debug,
        **options,
    )


@cli.command(
    epilog="\n\n".join(
        [
            _examples(
                "opsctl check webhook --env render",
                "opsctl check secrets                # a repository check: no bot needed",
                "opsctl check deps --advisories ../shared/advisories",
                "opsctl check tests --fresh --json",
                "opsctl check tests --fresh --show-output   # what `make test` runs",
            ),
            _exit_codes(),
        ]
    )
)
@click.argument("check_id", shell_complete=_complete_checks)
@click.option(
    "--env",
    "env_names",
    default="local",
    show_default=True,
    callback=_one_environment,
    shell_complete=_complete_environments,
    help="Environment from opsctl.toml (repository checks ignore it).",
)
@config_option
@env_file_option
@click.option("--url", help="Check this deployment instead of the environment's.")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON (opsctl.verify/v1).")
@advisories_option
@fresh_option
@click.option(
    "--show-output",
    is_flag=True,
    help="tests: show pytest's own output on stderr as it comes (the other checks ignore it).",
)
@progress_option
@color_option
@debug_option
@click.pass_context
def check(ctx: click.Context, **options: Any) -> int:
    """Run one check against an environment, or against the repository."""
    from opsctl.job import execute

    return execute(_request(ctx, options))


@cli.command(epilog=_examples("opsctl gates", "opsctl gates --json | jq -r '.[].id'"))
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of text.")
@config_option
@debug_option
def gates(as_json: bool, config_path: Path | None) -> int:
    """List the gates, their checks and what they need."""
    config = _load(config_path)
    if as_json:
        fields = ("id", "title", "blocking", "needs", "checks", "skip_reason")
        rows = [{f: getattr(gate, f) for f in fields} for gate in config.gates.values()]
        click.echo(_json(rows))
        return ExitCode.OK
    for gate in config.gates.values():
        kind = "blocking" if gate.blocking else "advisory"
        needs = f", needs {', '.join(gate.needs)}" if gate.needs else ""
        click.echo(f"{gate.id}  {gate.title}  ({kind}{needs})")
        checks = ", ".join(gate.checks) or f"none: {gate.skip_reason or 'no checks configured'}"
        click.echo(f"    checks: {checks}")
    return ExitCode.OK


def _json(data: Any) -> str:
    """One JSON document as `warmup status --json` prints it: indented, keys sorted."""
    import json

    return json.dumps(data, indent=2, sort_keys=True)


@cli.group(
    invoke_without_command=True,
    epilog=_examples(
        "opsctl warmup --env render                     # a daemon (systemd, tmux)",
        "opsctl warmup --env render --once --retries 2  # from cron",
        "opsctl warmup --url https://clara.onrender.com/health --interval 10m",
        "opsctl warmup status --env render",
    ),
)
@click.option(
    "--env",
    "env_names",
    multiple=True,
    shell_complete=_complete_environments,
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
@debug_option
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
    config_path: Path | None,
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


@warmup.command(
    "status",
    epilog=_examples(
        "opsctl warmup status --env render",
        "opsctl warmup status --env render --window 2h --json",
        "opsctl warmup status --env render || echo 'the free tier slept'",
    ),
)
@click.option(
    "--env",
    "env_name",
    required=True,
    shell_complete=_complete_environments,
    help="Environment (or url-... log name).",
)
@click.option("--window", default="24h", show_default=True, help="How far back to look.")
@click.option("--log-dir", type=click.Path(path_type=Path), help="Where the ping logs are.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
@config_option
@debug_option
def warmup_status(
    env_name: str, window: str, log_dir: Path | None, as_json: bool, config_path: Path | None
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
@group_config_option
@debug_option
def secrets() -> None:
    """The secret scan's baseline."""


@secrets.command("baseline")
@config_option
@debug_option
def secrets_baseline(config_path: Path | None) -> int:
    """Refresh .secrets.baseline: the findings accepted as they are now (hashes, never values)."""
    from checks.secrets import write_baseline

    root = _load(config_path).repository().root
    path, count = write_baseline(root)
    click.echo(f"wrote {path}: {count} accepted finding(s); review it before committing")
    return ExitCode.OK


@cli.group(
    epilog=_examples(
        "opsctl evidence list",
        "opsctl evidence list --json | jq -r '.[0].path'",
        "opsctl evidence show latest",
        "opsctl evidence verify 20261128T105156Z_local",
        "opsctl evidence prune --keep 10",
    )
)
@group_config_option
@debug_option
def evidence() -> None:
    """Read, verify and prune evidence bundles."""


evidence_dir_option = click.option(
    "--evidence-dir",
    type=click.Path(path_type=Path),
    help="The evidence root (default: [evidence] dir in opsctl.toml).",
)


def _evidence_root(config_path: Path | None, evidence_dir: Path | None) -> Path:
    return evidence_dir or _load(config_path).evidence.dir


@evidence.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON array instead of text.")
@config_option
@evidence_dir_option
@debug_option
def evidence_list(as_json: bool, config_path: Path | None, evidence_dir: Path | None) -> int:
    """Bundles, newest first: time, environment, verdict, counts."""
    from evidence.store import list_bundles

    root = _evidence_root(config_path, evidence_dir)
    bundles = list_bundles(root)
    if as_json:
        click.echo(_json([_bundle_row(bundle) for bundle in bundles]))
        return ExitCode.OK
    if not bundles:
        click.echo(f"no evidence bundles under {root} yet: run opsctl verify")
    for bundle in bundles:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(bundle.counts.items()))
        outcome = "" if bundle.outcome == "completed" else f" [{bundle.outcome}]"
        click.echo(
            f"{bundle.name}  {bundle.env:<8} {bundle.verdict.split(':')[0]:<18} {counts}{outcome}"
        )
    return ExitCode.OK


def _bundle_row(bundle: Any) -> dict[str, Any]:
    """A bundle as `evidence list --json` shows it."""
    return {
        "name": bundle.name,
        "path": str(bundle.path),
        "env": bundle.env,
        "started_at": bundle.started_at,
        "verdict": bundle.verdict.split(":")[0],
        "verdict_line": bundle.verdict,
        "exit_code": bundle.data.get("verdict", {}).get("exit_code"),
        "outcome": bundle.outcome,
        "counts": bundle.counts,
    }


@evidence.command("show")
@click.argument("ref", default="latest")
@config_option
@evidence_dir_option
@debug_option
def evidence_show(ref: str, config_path: Path | None, evidence_dir: Path | None) -> int:
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
@debug_option
def evidence_verify(ref: str, config_path: Path | None, evidence_dir: Path | None) -> int:
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
@debug_option
def evidence_prune(keep: int, config_path: Path | None, evidence_dir: Path | None) -> int:
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
@group_config_option
@debug_option
def notion() -> None:
    """Keep the gate status and the verification runs in two Notion databases."""


@notion.command("init")
@click.option("--parent", help="The Notion page (id) the databases go under (default: config).")
@config_option
@env_file_option
@debug_option
def notion_init(parent: str | None, config_path: Path | None, env_file: Path | None) -> int:
    """Create the Gates and Runs databases (or find and repair them) and store their ids."""
    from opsctl.config import ConfigError
    from opsctl.notion.service import connect, init

    config = _load(config_path)
    environ = _environment(_env_file(env_file, config.path))
    parent = parent or config.notion.parent
    if not parent:
        raise ConfigError(
            "no parent page; fix: opsctl notion init --parent PAGE_ID (a page shared with the "
            "integration: ... > Connections)"
        )
    for line in init(connect(config, environ), config, parent, _say_on_stderr):
        click.echo(line)
    return ExitCode.OK


def _say_on_stderr(line: str) -> None:
    click.echo(f"notion: {line}", err=True)


@notion.command("status")
@config_option
@debug_option
def notion_status(config_path: Path | None) -> int:
    """What waits in the outbox, and what Notion refused for good (with why); offline."""
    from opsctl.notion.outbox import Outbox
    from opsctl.notion.service import status_lines

    for line in status_lines(Outbox(_load(config_path).notion.outbox)):
        click.echo(line)
    return ExitCode.OK


@notion.command(
    "sync",
    epilog=_examples(
        "opsctl notion sync                       # every environment's newest bundle",
        "opsctl notion sync --env render",
        "opsctl notion sync --run latest --retry-refused",
    ),
)
@click.option(
    "--env",
    "env_names",
    multiple=True,
    shell_complete=_complete_environments,
    help="Only this environment (repeatable).",
)
@click.option("--run", "run_ref", help="This bundle (folder name, path or latest) only.")
@click.option(
    "--retry-refused",
    is_flag=True,
    help="Queue again the changes Notion refused (opsctl notion status lists them).",
)
@config_option
@env_file_option
@evidence_dir_option
@debug_option
def notion_sync(
    env_names: tuple[str, ...],
    run_ref: str | None,
    retry_refused: bool,
    config_path: Path | None,
    env_file: Path | None,
    evidence_dir: Path | None,
) -> int:
    """Push the newest bundle's gate statuses and run summary (per environment) to Notion."""
    from opsctl.errors import OpsctlError
    from opsctl.notion.rows import changes_to_send, completed_runs, record_sent
    from opsctl.notion.service import connect, newest_bundles, push
    from opsctl.verify import configured_secrets

    config = _load(config_path)
    environ = _environment(_env_file(env_file, config.path))
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
@group_config_option
@debug_option
def gate() -> None:
    """Sign off manual criteria, or waive a gate on the record."""


@gate.command(
    "sign",
    epilog=_examples(
        "opsctl gate sign P2.5 --item 'UAT checklist completed' --by ana --note docs/uat.md",
        "opsctl gate sign P2.4 --item 'Notion pages reviewed' --by luis",
        "opsctl gate waive P2.3 --reason 'no paid plan until March' --by ana",
    ),
)
@click.argument("gate_id", shell_complete=_complete_gates)
@click.option("--item", required=True, help="The manual criterion, as listed in opsctl.toml.")
@click.option("--by", "by", required=True, help="Who signs.")
@click.option("--note", default="", help="Why, or where the proof is.")
@config_option
@debug_option
def gate_sign(gate_id: str, item: str, by: str, note: str, config_path: Path | None) -> int:
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
@click.argument("gate_id", shell_complete=_complete_gates)
@click.option("--reason", required=True, help="Why the gate cannot be met now.")
@click.option("--by", "by", required=True, help="Who decides.")
@config_option
@debug_option
def gate_waive(gate_id: str, reason: str, by: str, config_path: Path | None) -> int:
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
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=Path(".env"),
    show_default=True,
    help="Secrets and settings (exported variables win).",
)
@debug_option
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
    invocation = Invocation()  # --debug lands here as click parses it, wherever it was given
    try:
        code = cli.main(args=args, prog_name="opsctl", standalone_mode=False, obj=invocation)
    except click.exceptions.Abort:
        click.echo("opsctl: interrupted", err=True)
        return 130  # the shell's convention for SIGINT
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except Exception as exc:  # the one place errors become a line and an exit code
        return report(exc, debug=invocation.debug)
    return int(code) if isinstance(code, int) else ExitCode.OK


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
