"""Fixtures for check tests: the fake target and a config pointing at it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.bot_target import TargetSettings, environment_toml, serve_target

PUBLIC = "https://bot.example.org"

CONFIG = """
[defaults]
timeout_s = {timeout_s}

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["https", "health", "warmup", "audio", "metrics"]

[gates."P2.6"]
title = "Security"
checks = []
needs = ["P2.1", "P2.2"]
# Advisory: a blocking gate that checks nothing can never be done (exit 3).
blocking = false
skip_reason = "no checks yet"
"""


@pytest.fixture(autouse=True)
def fake_account_sid(monkeypatch: pytest.MonkeyPatch) -> None:
    """The account the fake answers for, exported as an operator exports TWILIO_ACCOUNT_SID (no
    secret: each test's .env holds only the token)."""
    monkeypatch.setenv("FAKE_TWILIO_ACCOUNT_SID", TargetSettings().account_sid)


@pytest.fixture
def fault_config(tmp_path: Path) -> Callable[..., Path]:
    """Write an opsctl.toml whose `fault` environment points at base_url."""

    def write(base_url: str, timeout_s: float = 2.0) -> Path:
        path = tmp_path / "opsctl.toml"
        environment = environment_toml(
            "fault",
            base_url,
            PUBLIC,
            # Well above a loaded machine's scheduling noise: no flaky WARN.
            latency_warn_ms=500,
            latency_fail_ms=1000,
            wake_timeout_s=timeout_s,
            warm_samples=3,
        )
        path.write_text(CONFIG.format(timeout_s=timeout_s) + environment)
        return path

    return write


@pytest.fixture
def target() -> Iterator[Callable[..., str]]:
    """Start a fake target with the given fault; returns its base URL."""
    stack: list[Iterator[str]] = []

    def start(fault: str = "", **options: object) -> str:
        settings = TargetSettings(public_url=PUBLIC, fault=fault, **options)  # type: ignore[arg-type]
        context = serve_target(settings)
        stack.append(context)
        return context.__enter__()

    yield start
    for context in stack:
        context.__exit__(None, None, None)
