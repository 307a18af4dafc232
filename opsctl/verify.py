"""The verify job: pick the target (starting the bot for `local`), build the context, run gates."""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from checks.interface import (
    CheckContext,
    CheckResult,
    KeepAliveSettings,
    NotionSettings,
    ResultCache,
    Status,
)
from checks.registry import CHECKS
from evidence.signoffs import Ledger, Signoff
from evidence.transcripts import Recorder
from opsctl.config import Config, Environment, Gate, gates_to_run
from opsctl.results import SKIPPED_BY_REQUEST, GateResult, RunResult, Verdict
from opsctl.runner import EventHandler, Runner, SharedChecks

if TYPE_CHECKING:
    import httpx

# Variables the local bot must not inherit from the caller's shell: it gets its own.
_BOT_OWN = (
    "TWILIO_",
    "GEMINI_",
    "RENDER_",
    "PUBLIC_BASE_URL",
    "AUDIO_BASE_URL",
    "LLM_LIVE",
    "DEMO_MODE",
    "DEV_ALLOW_UNSIGNED_WEBHOOK",
    "FLASK_ENV",
    "PORT",
)


# Checks that read the repository only: the same result whatever the environment, so a run
# over several environments runs each once and gives every environment its result. Not every
# check without a target: https reads the environment's URLs, keepalive its ping log, notion
# its newest run.
REPOSITORY_CHECKS = frozenset({"secrets", "hygiene", "deps", "lint", "tests", "deploy-files"})


@dataclass(frozen=True)
class Target:
    """Where the checks send requests, the URL Twilio would sign, and the secrets they may use."""

    base_url: str
    public_url: str
    secrets: Mapping[str, str]
    account_sid: str = ""
    """The AccountSid the bot answers for (the webhook check's messages carry it; not a secret)."""


def talks_http(gates: Sequence[Gate]) -> bool:
    """Does any of these gates' checks make HTTP requests? (Repository checks do not.)"""
    return any(c not in REPOSITORY_CHECKS for gate in gates for c in gate.checks)


class _NoClient:
    """The HTTP client of a run of repository checks only: none is built (httpx and the TLS
    context cost a quarter of a second), and a check that reaches for one is told why."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError(
            f"no HTTP client in a run of repository checks only (asked for client.{name}); "
            "a check that makes requests must not be in REPOSITORY_CHECKS (opsctl/verify.py)"
        )


@asynccontextmanager
async def _http_client(
    gates: Sequence[Gate], config: Config, env: Environment, capture: Capture
) -> AsyncIterator[httpx.AsyncClient]:
    """The run's one pooled HTTP client, when one of its checks makes requests."""
    if not talks_http(gates):
        yield cast("httpx.AsyncClient", _NoClient())
        return
    from opsctl.transport import run_client

    async with run_client(config.concurrency, env.timeout_s, capture.recorder.hooks()) as client:
        yield client


def needs_target(gates: Sequence[Gate]) -> bool:
    """Does any of these gates' checks talk to the bot? (Repository checks do not.)"""
    return any(CHECKS[c].needs_target for gate in gates for c in gate.checks)


def resolve_advisories(flag: Path | None, environ: Mapping[str, str]) -> Path | None:
    """--advisories, else OPSCTL_ADVISORIES, else None (the config's value then applies)."""
    if flag is not None:
        return flag
    from_env = environ.get("OPSCTL_ADVISORIES", "")
    return Path(from_env) if from_env else None


@contextmanager
def open_target(
    env: Environment, url: str | None, environ: Mapping[str, str], needed: bool = True
) -> Iterator[Target]:
    """The target to verify; for a `start_bot` environment, a bot started now and stopped after."""
    if not needed:  # only repository checks: start nothing, contact nothing
        base, public = url or env.base_url, url or env.public_url
        yield Target(base, public, _token_of(env, environ), environ.get(env.account_sid_env, ""))
        return
    if url:
        yield Target(
            url.rstrip("/"),
            url.rstrip("/"),
            _token_of(env, environ),
            environ.get(env.account_sid_env, ""),
        )
        return
    if not env.start_bot:
        yield Target(
            env.base_url,
            env.public_url,
            _token_of(env, environ),
            environ.get(env.account_sid_env, ""),
        )
        return
    from opsctl.devserver import REPO_ROOT, DevServer

    token = secrets.token_hex(16)  # made for this run: the bot and the checks share it
    account_sid = "AC" + secrets.token_hex(16)  # likewise (the shape Twilio's SIDs have)
    bot_env = {k: v for k, v in os.environ.items() if not k.startswith(_BOT_OWN)}
    bot_env.update(
        TWILIO_ACCOUNT_SID=account_sid,
        TWILIO_AUTH_TOKEN=token,
        PUBLIC_BASE_URL=env.public_url,
        RENDER_GIT_COMMIT=_git_commit(REPO_ROOT),  # the local bot runs from this checkout
        LOG_LEVEL="WARNING",
    )
    server = DevServer(bot_env, port=0)
    try:
        base_url = server.start()
        server.wait_ready()  # judge the bot, not its first tenth of a second
        yield Target(base_url, env.public_url or base_url, {env.token_env: token}, account_sid)
    finally:
        server.stop()


def _token_of(env: Environment, environ: Mapping[str, str]) -> dict[str, str]:
    """The one secret the checks use (to sign webhooks): the environment's token, if set. Not
    the whole environment: every value in it would be redacted as if it were a secret."""
    token = environ.get(env.token_env, "")
    return {env.token_env: token} if token else {}


def _git_commit(checkout: Path) -> str:
    """The short commit of `checkout` (whatever the current directory is), or ''."""
    import subprocess

    from checks import children

    try:
        done = children.run(
            ["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return ""  # not a git checkout: the bot reports 'unknown', and the check says so
    return done.stdout.strip()


def select_gates(
    config: Config, only: Sequence[str], skip: Sequence[str]
) -> tuple[list[Gate], dict[str, str]]:
    """The gates to run (with --only, those and what they need) and those skipped by --skip."""
    for name in (*only, *skip):
        config.gate(name)  # a ConfigError names the known gates
    wanted = set(config.gates) if not only else set()
    pending = list(only)
    while pending:
        gate_id = pending.pop()
        if gate_id not in wanted:
            wanted.add(gate_id)
            pending.extend(config.gates[gate_id].needs)
    gates = [g for g in config.gates.values() if g.id in wanted]
    return gates, dict.fromkeys(skip, SKIPPED_BY_REQUEST)


@dataclass
class Capture:
    """What a run leaves for its evidence: HTTP exchanges, values derived from secrets, results."""

    recorder: Recorder = field(default_factory=Recorder)
    derived_secrets: set[str] = field(default_factory=set)
    finished: dict[tuple[str, str], CheckResult] = field(default_factory=dict)
    signoffs: Sequence[Signoff] = ()
    reports: dict[str, str] = field(default_factory=dict)

    def on_event(self, gate_id: str, check_id: str, result: CheckResult | None) -> None:
        """Runner callback: keep finished results (an interrupted run still has them)."""
        if result is not None:
            self.finished[(gate_id, check_id)] = result


async def run_gates(
    config: Config,
    env: Environment,
    target: Target,
    gates: Sequence[Gate],
    skipped: Mapping[str, str],
    on_event: EventHandler | None = None,
    debug: bool = False,
    capture: Capture | None = None,
    advisories: Path | None = None,
    notion: NotionSettings | None = None,
    cache: ResultCache | None = None,
    environ: Mapping[str, str] | None = None,
    shared: SharedChecks | None = None,
    show_output: Callable[[str], object] | None = None,
) -> RunResult:
    """Run the gates against the target with one pooled HTTP client (none when only
    repository checks run); `environ` (os.environ over .env) names the secrets the runner
    redacts; `shared`: the checks this run shares with other environments' runs in the same
    event loop; `show_output`: where checks show their tools' output as it comes."""
    capture = capture or Capture()

    def both(gate_id: str, check_id: str, result: CheckResult | None) -> None:
        capture.on_event(gate_id, check_id, result)
        if on_event is not None:
            on_event(gate_id, check_id, result)

    async with _http_client(gates_to_run(gates, skipped), config, env, capture) as client:
        ctx = CheckContext(
            env_name=env.name,
            base_url=target.base_url,
            public_url=target.public_url,
            expect=env.expect,
            client=client,
            secrets=target.secrets,
            token_env=env.token_env,
            account_sid_env=env.account_sid_env,
            account_sid=target.account_sid,
            timeout_s=env.timeout_s,
            derived_secrets=capture.derived_secrets,
            known_secrets=known_secrets(config, env, target, notion, environ),
            repo=config.repository(advisories),
            reports=capture.reports,
            keepalive=KeepAliveSettings(
                config.keepalive.log_dir,
                config.keepalive.window_s,
                config.keepalive.slow_ms,
                interval_s=config.keepalive.interval_s,
            ),
            notion=notion,
            cache=cache,
            show_output=show_output,
        )
        runner = Runner(
            CHECKS, on_event=both, debug=debug, signoffs=capture.signoffs, shared=shared
        )
        return await runner.run(gates, ctx, skipped)


def interrupted_run(
    env: Environment,
    target: Target,
    gates: Sequence[Gate],
    capture: Capture,
    started_at: str,
    duration_s: float,
) -> RunResult:
    """What an interrupted run had finished, every gate marked as cut short."""
    results = []
    for gate in gates:
        done = tuple(r for (g, _), r in capture.finished.items() if g == gate.id)
        results.append(
            GateResult(
                gate.id,
                gate.title,
                gate.blocking,
                Status.ERROR,
                "interrupted before the run finished",
                done,
            )
        )
    return RunResult(env.name, target.base_url, started_at, round(duration_s, 3), tuple(results))


def configured_secrets(config: Config, environ: Mapping[str, str]) -> set[str]:
    """The values of every secret variable: the bot's, each environment's token, Notion's."""
    return set(named_secrets(config, environ).values())


def named_secrets(config: Config, environ: Mapping[str, str]) -> dict[str, str]:
    """Every secret variable that is set, by name: the bot's, each environment's token, Notion's."""
    from bot.settings import VARIABLES

    names = {n for n, v in VARIABLES.items() if v.secret} | {"NOTION_TOKEN"}
    names |= {env.token_env for env in config.environments.values()}
    return {n: environ[n] for n in sorted(names) if environ.get(n)}


def known_secrets(
    config: Config,
    env: Environment,
    target: Target,
    notion: NotionSettings | None,
    environ: Mapping[str, str] | None = None,
) -> frozenset[tuple[str, str]]:
    """(variable, value) of every secret a run knows, for the runner: the configured variables
    (exported, or in the target's environment), the target's own token (made up for a local
    bot), the Notion token. Pairs, not a dict: a name may have two values (the exported token
    and the local bot's)."""
    pairs = set(named_secrets(config, os.environ if environ is None else environ).items())
    pairs |= named_secrets(config, target.secrets).items()  # each environment's token among them
    if notion is not None and notion.token:
        pairs.add(("NOTION_TOKEN", notion.token))
    return frozenset(pairs)


def secret_values(
    config: Config, target: Target, environ: Mapping[str, str], capture: Capture
) -> set[str]:
    """Everything evidence must never hold: configured secrets and values derived from them."""
    values = configured_secrets(config, environ) | set(target.secrets.values())
    return {v for v in values | capture.derived_secrets if v}


def record_evidence(
    config: Config,
    run: RunResult,
    capture: Capture,
    secrets: set[str],
    root: Path,
    outcome: str = "completed",
) -> Path:
    """Write the run's bundle, then regenerate PHASE-STATUS.md from the newest bundles."""
    from evidence.bundle import BundleInputs, EvidenceWriter
    from opsctl import __version__

    inputs = BundleInputs(
        run=run,
        tool_version=__version__,
        git_commit=_git_commit(config.repository().root) or "unknown",
        ended_at=datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        outcome=outcome,
        exchanges=tuple(capture.recorder.exchanges),
        signoffs=tuple(capture.signoffs),
        definitions={check_id: check.done_when for check_id, check in CHECKS.items()},
        reports=dict(capture.reports),
    )
    bundle = EvidenceWriter(root).write(inputs, secrets)
    write_phase_status(config, root)
    return bundle


def write_phase_status(config: Config, root: Path) -> Path | None:
    """PHASE-STATUS.md from the configured evidence dir's bundles and the sign-off ledger; a run
    into another evidence dir (--evidence-dir) leaves the configured page alone (None)."""
    if root.resolve() != config.evidence.dir.resolve():
        return None
    from evidence.phase_status import render_phase_status
    from evidence.store import phase_rows
    from opsctl.files import write_atomically

    target = config.evidence.phase_status
    configured = [(gate.id, gate.title) for gate in config.gates.values()]
    rows = phase_rows(root, target.parent, configured)
    write_atomically(target, render_phase_status(rows, Ledger(config.evidence.signoffs).entries()))
    return target


def notion_settings(
    config: Config, environ: Mapping[str, str], newest_runs: bool = True
) -> NotionSettings:
    """What the `notion` check needs: the configured databases and the token from the env;
    `newest_runs=False` leaves out the evidence folder's newest runs (no notion check runs:
    no need to read every bundle's run.json)."""
    return NotionSettings(
        gates_database=config.notion.gates_database,
        runs_database=config.notion.runs_database,
        outbox=config.notion.outbox,
        token=environ.get("NOTION_TOKEN", ""),
        base_url=environ.get("NOTION_BASE_URL", ""),
        timeout_s=config.notion.timeout_s,
        requests_per_second=config.notion.requests_per_second,
        phase_database=config.notion.phase_database,
        phase=config.notion.phase,
        columns=config.notion.columns,
        property_ids=config.notion.property_ids,
        newest_runs=_newest_runs(config.evidence.dir) if newest_runs else {},
    )


def _newest_runs(root: Path) -> dict[str, str]:
    """Environment -> its newest completed bundle's name (what the notion check looks for)."""
    from evidence.store import list_bundles

    newest: dict[str, str] = {}
    for bundle in list_bundles(root):  # newest first
        if bundle.outcome == "completed":
            newest.setdefault(bundle.env, bundle.name)
    return newest


def judge_environments(runs: Sequence[RunResult]) -> Verdict:
    """One verdict over several environments' runs: the worst run decides (the first of the
    worst, by its verdict's status as checks/statuses.py orders them, as judge picks a gate),
    its exit code is the run's; the line names every environment that is not done."""
    verdicts = [(run.env, run.judgement) for run in runs]
    count = len(verdicts)
    _, worst = max(verdicts, key=lambda pair: pair[1].status.meaning.severity)
    failing = [f"{env} ({v.status.value})" for env, v in verdicts if v.exit_code != 0]
    if failing:
        line = f"{worst.status.value}: {len(failing)} of {count} environments not done: "
        return Verdict(worst.exit_code, line + ", ".join(failing), worst.status, worst.deciding)
    warned = [env for env, v in verdicts if v.status is not Status.PASS]
    word = f"PASS with warnings ({', '.join(warned)})" if warned else "PASS"
    names = ", ".join(env for env, _ in verdicts)
    return Verdict(
        worst.exit_code, f"{word}: all {count} environments passed ({names})", worst.status
    )
