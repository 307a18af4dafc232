"""The verify job: pick the target (starting the bot for `local`), build the context, run gates."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from checks.interface import CheckContext
from checks.registry import CHECKS
from opsctl.config import Config, Environment, Gate
from opsctl.results import RunResult
from opsctl.runner import EventHandler, Runner

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


@dataclass(frozen=True)
class Target:
    """Where the checks send requests, the URL Twilio would sign, and the secrets they may use."""

    base_url: str
    public_url: str
    secrets: Mapping[str, str]


@contextmanager
def open_target(env: Environment, url: str | None, environ: Mapping[str, str]) -> Iterator[Target]:
    """The target to verify; for a `start_bot` environment, a bot started now and stopped after."""
    if url:
        yield Target(url.rstrip("/"), url.rstrip("/"), environ)
        return
    if not env.start_bot:
        yield Target(env.base_url, env.public_url, environ)
        return
    from opsctl.devserver import DevServer

    token = secrets.token_hex(16)  # made for this run: the bot and the checks share it
    bot_env = {k: v for k, v in os.environ.items() if not k.startswith(_BOT_OWN)}
    bot_env.update(
        TWILIO_ACCOUNT_SID="AC" + secrets.token_hex(16),
        TWILIO_AUTH_TOKEN=token,
        PUBLIC_BASE_URL=env.public_url,
        RENDER_GIT_COMMIT=_git_commit(),  # the local bot is this checkout
        LOG_LEVEL="WARNING",
    )
    server = DevServer(bot_env, port=0)
    try:
        base_url = server.start()
        server.wait_ready()  # judge the bot, not its first tenth of a second
        yield Target(base_url, env.public_url or base_url, {env.token_env: token})
    finally:
        server.stop()


def _git_commit() -> str:
    import subprocess

    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, fixed args
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
    return gates, {gate_id: "skipped with --skip" for gate_id in skip}


async def run_gates(
    config: Config,
    env: Environment,
    target: Target,
    gates: Sequence[Gate],
    skipped: Mapping[str, str],
    on_event: EventHandler,
    debug: bool = False,
) -> RunResult:
    """Run the gates against the target with one pooled HTTP client."""
    limits = httpx.Limits(max_connections=config.concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=env.timeout_s) as client:
        ctx = CheckContext(
            env_name=env.name,
            base_url=target.base_url,
            public_url=target.public_url,
            expect=env.expect,
            client=client,
            secrets=target.secrets,
            token_env=env.token_env,
            timeout_s=env.timeout_s,
        )
        return await Runner(CHECKS, on_event=on_event, debug=debug).run(gates, ctx, skipped)
