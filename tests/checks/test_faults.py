"""`opsctl verify` against a fault-injecting target: each fault gets the right status and reason."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from opsctl.cli import main
from tests.fakes.bot_target import TargetSettings


def verify(
    config: Path, env_file: Path, capsys: pytest.CaptureFixture[str]
) -> tuple[int, dict[str, Any], str]:
    """Run `opsctl verify --env fault --json`; return (exit code, JSON, stderr)."""
    code = main(
        ["verify", "--env", "fault", "--config", str(config), "--env-file", str(env_file), "--json"]
    )
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def check_of(run: dict[str, Any], check_id: str) -> dict[str, Any]:
    for gate in run["gates"]:
        for check in gate["checks"]:
            if check["id"] == check_id:
                return check
    raise AssertionError(f"{check_id} did not run")


def gate_of(run: dict[str, Any], gate_id: str) -> dict[str, Any]:
    return next(g for g in run["gates"] if g["id"] == gate_id)


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.env"
    path.write_text(f"FAKE_TWILIO_TOKEN={TargetSettings().token}\n")
    return path


def test_a_healthy_target_passes(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, run, err = verify(fault_config(target()), env_file, capsys)
    assert (code, err) == (0, "")
    assert [g["status"] for g in run["gates"]] == ["PASS", "PASS", "SKIP"]
    assert check_of(run, "audio")["reason"] == (
        "6 MP3 files answer a plain GET (as Twilio fetches), HEAD and ranged GET"
    )
    assert check_of(run, "webhook")["details"]["cases"]["signed for http://"]["status"] == 403
    verdict = "PASS with warnings: every blocking gate passed (2 PASS, 1 SKIP)"  # P2.6: advisory
    assert run["verdict"]["line"] == verdict


@pytest.mark.parametrize(
    ("fault", "check_id", "status", "reason"),
    [
        ("health_500", "health", "FAIL", "/health answered 500 with invalid JSON"),
        ("health_invalid_json", "health", "FAIL", "/health answered 200 with invalid JSON"),
        (
            "health_degraded",
            "health",
            "FAIL",
            "/health answered 503 with status 'degraded': Twilio credentials missing "
            "(TWILIO_AUTH_TOKEN or TWILIO_ACCOUNT_SID): every webhook is refused (403) "
            "(accepted: ok, healthy)",
        ),
        ("wrong_component", "health", "FAIL", "components differ: cache_entries is 7, expected 8"),
        ("slow_health", "health", "FAIL", "over the 1000 ms limit"),
        (
            "audio_missing",
            "audio",
            "FAIL",
            "1 of 6 audio files broken; imv_es.mp3: HEAD answered 404",
        ),
        (
            "audio_mistyped",
            "audio",
            "FAIL",
            "imv_fr.mp3: HEAD Content-Type is 'text/html', expected audio/mpeg",
        ),
        ("head_get_disagree", "audio", "FAIL", "tarjeta_sanitaria_es.mp3: HEAD says"),
        ("webhook_accepts_unsigned", "webhook", "FAIL", "unsigned got 200, expected 403"),
        (
            "webhook_internal_url",
            "webhook",
            "FAIL",
            "the bot validates signatures against its internal http:// URL",
        ),
    ],
)
def test_each_fault_fails_with_its_reason(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    check_id: str,
    status: str,
    reason: str,
) -> None:
    code, run, err = verify(fault_config(target(fault)), env_file, capsys)
    check = check_of(run, check_id)
    assert check["status"] == status
    assert reason in check["reason"]
    assert check["hint"], "every FAIL says what to do"
    assert code == 1
    assert err == ""
    others = [c for g in run["gates"] for c in g["checks"] if c["id"] != check_id]
    assert all(c["status"] in ("PASS", "SKIP") for c in others), others
    assert gate_of(run, "P2.6")["status"] == "BLOCKED"
    assert run["verdict"]["line"].startswith("FAIL: gate ")


def test_internal_url_hint_names_the_fix(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _, run, _ = verify(fault_config(target("webhook_internal_url")), env_file, capsys)
    hint = check_of(run, "webhook")["hint"]
    assert "PUBLIC_BASE_URL" in hint and "X-Forwarded-Proto" in hint


def test_connection_refused_is_an_error(
    fault_config: Callable[..., Path], env_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code, run, err = verify(fault_config(f"http://127.0.0.1:{port}"), env_file, capsys)
    assert code == 3
    for check_id in ("health", "warmup", "audio", "metrics", "webhook"):
        check = check_of(run, check_id)
        assert check["status"] == "ERROR", check_id
        # Refused is what a bot that is still starting gives: the run's one wake keeps asking
        # until wake_timeout_s (2 s here), then every check says so.
        assert re.fullmatch(
            r"the bot did not answer in 2\.\ds \(wake_timeout_s 2\); "
            r"last: connection refused at http://127\.0\.0\.1:\d+/health",
            check["reason"],
        ), check
    assert run["verdict"]["line"].startswith(
        "ERROR: gate P2.1 Twilio pipeline: webhook: the bot did not answer in 2."
    )
    assert err == ""


def test_a_hang_past_the_timeout_is_an_error(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, run, _ = verify(fault_config(target("hang", hang_s=5), timeout_s=1), env_file, capsys)
    health = check_of(run, "health")
    assert health["status"] == "ERROR"
    assert re.fullmatch(
        r"the bot did not answer in 1\.\ds \(wake_timeout_s 1\); last: no complete answer "
        r"from http://127\.0\.0\.1:\d+/health within 1\.\ds \(ReadTimeout\)",
        health["reason"],
    ), health["reason"]
    assert code == 3


def test_missing_token_is_an_error_naming_the_variable(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FAKE_TWILIO_TOKEN", raising=False)
    empty = tmp_path / "empty.env"
    empty.write_text("")
    code, run, _ = verify(fault_config(target()), empty, capsys)
    webhook = check_of(run, "webhook")
    assert webhook["status"] == "ERROR"
    assert webhook["reason"] == "FAKE_TWILIO_TOKEN is not set: cannot sign test requests"
    assert code == 3


def test_missing_account_sid_is_an_error_naming_the_variable(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("FAKE_TWILIO_ACCOUNT_SID", raising=False)
    code, run, _ = verify(fault_config(target()), env_file, capsys)
    webhook = check_of(run, "webhook")
    assert webhook["status"] == "ERROR"
    assert webhook["reason"] == (
        "FAKE_TWILIO_ACCOUNT_SID is not set: cannot send the AccountSid Twilio sends"
    )
    assert code == 3


def test_another_account_fails_naming_the_variable_not_the_token(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bot answers for another account: the signed message is refused, and the check says
    which setting to compare, not 'is the token the same?'."""
    code, run, _ = verify(fault_config(target(account_sid="AC" + "1" * 32)), env_file, capsys)
    webhook = check_of(run, "webhook")
    assert webhook["status"] == "FAIL"
    assert webhook["reason"] == (
        "signed got 403, expected 200: the bot answers for another account than "
        "FAKE_TWILIO_ACCOUNT_SID's"
    )
    assert webhook["hint"].startswith("is FAKE_TWILIO_ACCOUNT_SID the bot's TWILIO_ACCOUNT_SID?")
    assert code == 1


def test_plain_output_puts_the_verdict_first(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = fault_config(target("wrong_component"))
    args = ["--config", str(config), "--env-file", str(env_file), "--progress", "none"]
    code = main(["verify", "--env", "fault", *args])  # none: the final text alone
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert code == 1 and err == ""
    assert lines[0].startswith("FAIL: gate P2.2 Render deploy: health: components differ")
    assert "  FAIL    health" in out and "hint: fix the service's environment variables" in out
    assert "Traceback" not in out


def test_an_interrupted_run_leaves_a_bundle_that_says_so(
    fault_config: Callable[..., Path], env_file: Path
) -> None:
    import signal
    import subprocess
    import sys
    import time

    from evidence.store import list_bundles, verify_bundle
    from tests.conftest import REPO_ROOT
    from tests.fakes.bot_target import serve_target

    settings = TargetSettings(public_url="https://bot.example.org", delay_s=1.0)
    with serve_target(settings) as url:
        config = fault_config(url, timeout_s=5)
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "opsctl.cli",
                "verify",
                "--env",
                "fault",
                "--config",
                str(config),
                "--env-file",
                str(env_file),
            ],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(2.5)  # some checks done, the slow ones still waiting on the target
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert err.strip() == "opsctl: interrupted"
    (bundle,) = list_bundles(config.parent / "evidence-out")
    assert bundle.outcome == "interrupted"
    assert verify_bundle(bundle.path) == []
    summary = (bundle.path / "summary.md").read_text()
    assert "> This run was **interrupted**: the results below are incomplete." in summary
    assert bundle.verdict.startswith("ERROR: gate P2.1 Twilio pipeline: interrupted")
