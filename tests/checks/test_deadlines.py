"""Deadlines hold whatever the target does; a sleeping instance is slow, not red.

The configuration is the `render` environment's timing scaled by SCALE (10 s requests, a 120 s
wake, a 15 s cold-start budget, P2.2 retried within 150 s), so the suite stays quick;
`OPSCTL_DEADLINE_SCALE=1` runs the same tests at the real durations (about five minutes). Each
test prints the deadline `Runner.deadline_s` states for the run and the time the run took.
"""

from __future__ import annotations

import http.server
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from checks.interface import CheckContext
from checks.registry import CHECKS
from opsctl.cli import main
from opsctl.config import Gate, load_config
from opsctl.runner import Runner
from tests.checks.test_faults import check_of, gate_of
from tests.fakes.bot_target import TargetSettings

SCALE = float(os.environ.get("OPSCTL_DEADLINE_SCALE", "0.1"))
# At full scale a run may take its whole stated deadline (a 120 s wake, a 150 s gate).
pytestmark = pytest.mark.timeout(max(120, 400 * SCALE))
PUBLIC = "https://bot.example.org"

CONFIG = """
[defaults]
timeout_s = {timeout_s}

[environments.fault]
base_url = "{base_url}"
public_url = "{public}"
token_env = "FAKE_TWILIO_TOKEN"
account_sid_env = "FAKE_TWILIO_ACCOUNT_SID"
latency_warn_ms = 500
latency_fail_ms = 2000
cold_start_budget_s = {cold_start_budget_s}
wake_timeout_s = {wake_timeout_s}
warm_samples = 3
require_https = false

[environments.fault.components]
cache_entries = 8
twilio_configured = true

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["https", "health", "warmup", "metrics"]
retry = {{ attempts = 3, budget_s = {retry_budget_s}, delay_s = {delay_s} }}
"""


def write_config(tmp_path: Path, base_url: str, **override: float) -> Path:
    """The render environment's timing times SCALE, pointed at base_url."""
    timing = {
        "timeout_s": 10 * SCALE,
        "cold_start_budget_s": 15 * SCALE,
        "wake_timeout_s": 120 * SCALE,
        "retry_budget_s": 150 * SCALE,
        "delay_s": 10 * SCALE,
        **override,
    }
    path = tmp_path / "opsctl.toml"
    path.write_text(CONFIG.format(base_url=base_url, public=PUBLIC, **timing))
    return path


def context_of(config: Path) -> tuple[CheckContext, list[Gate]]:
    """The fault environment's context (no client: nothing is sent) and the config's gates."""
    loaded = load_config(config, set(CHECKS))
    env = loaded.environment("fault")
    client: Any = None
    ctx = CheckContext("fault", "", "", env.expect, client, {}, timeout_s=env.timeout_s)
    return ctx, list(loaded.gates.values())


def stated_deadline(config: Path) -> float:
    """What the runner promises for this configuration's gates."""
    ctx, gates = context_of(config)
    return Runner(CHECKS).deadline_s(gates, ctx)


def timed_verify(
    config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], float, float]:
    """(exit code, JSON, seconds taken, stated deadline), printing the last two."""
    env_file = tmp_path / "test.env"
    env_file.write_text(f"FAKE_TWILIO_TOKEN={TargetSettings().token}\n")
    deadline = stated_deadline(config)
    started = time.monotonic()
    code = main(
        ["verify", "--env", "fault", "--config", str(config), "--env-file", str(env_file), "--json"]
    )
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert err == ""
    with capsys.disabled():
        print(f"\n  stated deadline {deadline:.1f}s, took {took:.1f}s (scale {SCALE:g})")
    return code, json.loads(out), took, deadline


@pytest.mark.parametrize("fault", ["never", "drip"])
def test_a_target_that_never_answers_in_full_ends_within_the_deadline(
    fault: str,
    target: Callable[..., str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = target(fault, drip_interval_s=2 * SCALE)
    # What is tested is the bound, not its size: below full scale the wake is 3 s (the suite
    # waits less); OPSCTL_DEADLINE_SCALE=1 waits render's whole 120 s.
    wake_s = 120.0 if SCALE >= 1 else 3.0
    config = write_config(tmp_path, base, wake_timeout_s=wake_s)
    code, run, took, deadline = timed_verify(config, tmp_path, capsys)
    assert took <= deadline + 2, f"took {took:.1f}s against a stated {deadline:.1f}s"
    for check_id in ("health", "warmup", "metrics", "webhook"):
        check = check_of(run, check_id)
        assert check["status"] == "ERROR"
        # The time actually waited, and what the last request met: no invented "within 10s".
        assert check["reason"].startswith(f"the bot did not answer in {wake_s:.0f}."), check
        assert f"no complete answer from {base}/health within" in check["reason"]
    assert len(gate_of(run, "P2.2")["attempts"]) == 1  # the wake already waited its budget
    assert code == 3


@pytest.mark.parametrize(
    ("fault", "asleep_s", "seen"),
    [
        ("asleep_hold", 70, ""),  # Render holds the first request while the instance boots
        ("asleep_page", 25, "503: Render's page for a free instance that is waking up"),
    ],
)
def test_a_sleeping_instance_is_slow_not_red(
    fault: str,
    asleep_s: float,
    seen: str,
    target: Callable[..., str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base = target(fault, asleep_s=asleep_s * SCALE)
    code, run, took, deadline = timed_verify(write_config(tmp_path, base), tmp_path, capsys)
    assert took <= deadline + 2
    health = check_of(run, "health")
    assert health["status"] == "WARN", health
    # Asleep for asleep_s: the wake sees the bot within one of its 1 s polls after that.
    cold_start = float(re.match(r"cold start ([\d.]+)s: ", health["reason"]).group(1))  # type: ignore[union-attr]
    assert asleep_s * SCALE <= cold_start <= asleep_s * SCALE + 1.5, health["reason"]
    assert "the instance was asleep" in health["reason"]
    assert seen in health["reason"]
    assert "opsctl warmup" in health["hint"]
    # The cold start is the run's, seen once: every other check found the bot awake.
    assert [g["status"] for g in run["gates"]] == ["PASS", "WARN"]
    assert len(gate_of(run, "P2.2")["attempts"]) == 1
    assert code == 0
    assert run["verdict"]["line"].startswith("PASS with warnings")


def test_every_warm_sample_is_judged(
    target: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Requests: the wake (1), then samples 2, 3, 4: the third of them all is Render's 502.
    base = target("flaky_502", fail_every=3)
    code, run, _, _ = timed_verify(write_config(tmp_path, base), tmp_path, capsys)
    health = check_of(run, "health")
    assert health["status"] == "WARN"
    assert health["reason"].startswith(
        "1 of 3 warm /health samples failed: 502: Render's page, its edge could not reach"
    )
    assert "512 MB" in health["hint"]
    assert {"p50_ms", "p95_ms", "max_ms"} <= health["details"].keys()
    assert code == 0


def test_a_majority_of_failed_samples_fails_and_is_retried(
    target: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Every other /health is a 502: samples 2 and 4 of the first attempt (2 of 3), a 502 may
    # not happen again, so P2.2 is tried again: samples 5, 6, 7 fail once (a WARN).
    base = target("flaky_502", fail_every=2)
    code, run, _, _ = timed_verify(write_config(tmp_path, base), tmp_path, capsys)
    gate = gate_of(run, "P2.2")
    first = next(c for c in gate["attempts"][0]["checks"] if c["id"] == "health")
    assert first["status"] == "FAIL"
    assert first["reason"].startswith("2 of 3 warm /health samples failed: 502: Render's page")
    assert gate["status"] == "WARN" and gate["reason"].startswith("passed on attempt 2")
    assert code == 0


def test_a_reset_connection_says_so(
    target: Callable[..., str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = target("reset")
    code, run, _, _ = timed_verify(write_config(tmp_path, base, wake_timeout_s=2), tmp_path, capsys)
    health = check_of(run, "health")
    assert health["status"] == "ERROR"
    assert f"last: connection reset by peer at {base}/health" in health["reason"]
    assert "closed the connection mid-request" in health["hint"]
    assert code == 3


@pytest.fixture
def not_found() -> Iterator[str]:
    """A server that answers 404 to everything: something is there, but not the bot."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "10")
            self.end_headers()
            self.wfile.write(b"not found\n")

        do_POST = do_HEAD = do_GET

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_what_cannot_change_is_not_retried(
    not_found: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, run, took, _ = timed_verify(write_config(tmp_path, not_found), tmp_path, capsys)
    health = check_of(run, "health")
    assert health["status"] == "FAIL"
    assert health["reason"].startswith("3 of 3 warm /health samples failed: /health answered 404")
    assert "is base_url the bot's address" in health["hint"]
    assert len(gate_of(run, "P2.2")["attempts"]) == 1  # a 404 stays a 404
    assert took < 10 * SCALE  # no retry delay was spent
    assert code == 1


@pytest.mark.parametrize("kind", ["dns", "tls"])
def test_dns_and_tls_failures_end_the_wake_at_once(
    kind: str, not_found: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = not_found.rsplit(":", 1)[1]
    base = {
        "dns": "http://opsctl-no-such-host.invalid",  # .invalid never resolves (RFC 2606)
        "tls": f"https://127.0.0.1:{port}",  # TLS to a server that speaks plain HTTP
    }[kind]
    code, run, took, _ = timed_verify(write_config(tmp_path, base), tmp_path, capsys)
    health = check_of(run, "health")
    assert health["status"] == "ERROR"
    expected = {"dns": "DNS lookup failed for", "tls": "TLS failed for"}[kind]
    assert health["reason"].startswith(expected), health["reason"]
    assert len(gate_of(run, "P2.2")["attempts"]) == 1
    assert took < 120 * SCALE / 2  # not the wake's budget: asking again cannot help
    assert code == 3


def test_the_stated_deadline_counts_the_wake_and_chains_of_needs(tmp_path: Path) -> None:
    ctx, gates = context_of(write_config(tmp_path, "http://127.0.0.1:9"))
    runner = Runner(CHECKS)
    p21, _ = gates
    webhook_budget = CHECKS["webhook"].budget_s(ctx)
    assert runner.deadline_s([p21], ctx) == pytest.approx(120 * SCALE + webhook_budget)
    assert runner.deadline_s(gates, ctx) == pytest.approx(
        120 * SCALE + max(150 * SCALE, webhook_budget)
    )
