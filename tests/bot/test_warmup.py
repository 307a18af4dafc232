"""The warm-up: steps run once in the background, within a deadline; failures degrade /health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from bot.warmup import StepFailed, StepWarning, Warmup, WarmupStep
from tests.conftest import BASE_ENV


def _wait_finished(warmup: Warmup, budget: float = 5.0) -> None:
    deadline = time.monotonic() + budget
    while not warmup.report().finished and time.monotonic() < deadline:
        time.sleep(0.01)


def test_report_collects_checks_errors_and_warnings() -> None:
    def warn() -> str:
        raise StepWarning("no token")

    def fail() -> str:
        raise StepFailed("audio missing")

    def crash() -> str:
        raise OSError("disk gone")

    warmup = Warmup(
        [
            WarmupStep("ok", lambda: "fine"),
            WarmupStep("warn", warn),
            WarmupStep("fail", fail, "audio files missing"),
            WarmupStep("crash", crash),
        ],
        timeout=5,
    )
    warmup.start()
    _wait_finished(warmup)
    report = warmup.report()
    assert report.finished and not report.ready and report.status == "degraded"
    assert report.checks["ok"] == {"ok": True, "detail": "fine"}
    assert report.checks["warn"] == {"ok": True, "detail": "no token"}
    assert report.errors == ("fail: audio missing", "crash: OSError: disk gone")
    assert report.warnings == ("warn: no token",)
    # /health's reason: a step's fixed words, else its name; never the failure's own text.
    assert report.reasons == ("audio files missing", "start-up step crash failed")


def test_a_stuck_step_times_out_as_degraded() -> None:
    release = threading.Event()
    warmup = Warmup([WarmupStep("stuck", lambda: str(release.wait(5)))], timeout=0.2)
    warmup.start()
    assert warmup.report().status == "starting"
    time.sleep(0.3)
    report = warmup.report()
    assert report.status == "degraded"
    assert report.errors == (
        "warm-up did not finish within WARMUP_TIMEOUT_SEC=0.2s (stuck in stuck)",
    )
    assert report.reasons == ("warm-up did not finish within WARMUP_TIMEOUT_SEC=0.2s",)
    release.set()
    _wait_finished(warmup)
    assert warmup.report().status == "degraded"  # finishing late does not make it ready


def test_health_is_503_starting_until_the_warmup_ends(make_app: Callable[..., Flask]) -> None:
    release = threading.Event()
    from bot import create_app
    from tests.conftest import BASE_ENV

    app = create_app(
        {
            "ENVIRON": BASE_ENV,
            "WARMUP_EXTRA_STEPS": [WarmupStep("slow", lambda: str(release.wait(5)))],
        }
    )
    client = app.test_client()
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json["status"] == "starting"
    assert response.json["reason"] == "the start-up warm-up is running"
    assert client.get("/status/warmup").json["ready"] is False
    release.set()
    deadline = time.monotonic() + 5
    while client.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get("/health").json["status"] == "ok"
    assert "reason" not in client.get("/health").json


def test_missing_or_fake_audio_degrades(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "bot" / "static" / "cache"
    for mp3 in source.glob("*.mp3"):
        (tmp_path / mp3.name).write_bytes(mp3.read_bytes())
    (tmp_path / "imv_es.mp3").unlink()
    (tmp_path / "imv_fr.mp3").write_bytes(b"<html>not audio</html>")
    app = make_app(AUDIO_DIR=str(tmp_path))
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json["status"] == "degraded"
    assert health.json["reason"] == "audio files missing or not MP3"
    report = client.get("/status/warmup").json
    assert report["ready"] is False
    assert report["checks"]["audio_files"]["ok"] is False
    assert report["errors"] == [
        "audio_files: imv_es.mp3 missing or empty; imv_fr.mp3 is not an MP3"
    ]


def test_warmup_report_lists_every_check(make_app: Callable[..., Flask]) -> None:
    report = make_app().test_client().get("/status/warmup").json
    assert report["ready"] is True
    assert set(report["checks"]) == {
        "knowledge_base",
        "audio_files",
        "http_client",
        "answerer",
        "webhook_credentials",
        "configuration",
    }
    assert report["checks"]["knowledge_base"]["detail"] == "8 entries"
    # With the LLM off nothing calls out: no HTTP client, no TLS context, httpx not imported.
    assert report["checks"]["http_client"]["detail"] == "not needed: the LLM is off"
    assert report["warnings"] == []
    assert report["duration_sec"] >= 0


def test_no_auth_token_degrades_health_with_the_reason(make_app: Callable[..., Flask]) -> None:
    """Every webhook would be refused: /health must not say 'ok' (issue 14), and its body says
    why without a secret."""
    app = make_app({"TWILIO_AUTH_TOKEN": "", "GEMINI_API_KEY": "gem-secret-key"})
    client = app.test_client()
    health = client.get("/health")
    assert health.status_code == 503
    assert health.json["status"] == "degraded"
    assert health.json["reason"] == (
        "Twilio credentials missing (TWILIO_AUTH_TOKEN or TWILIO_ACCOUNT_SID): "
        "every webhook is refused (403)"
    )
    assert health.json["components"]["twilio_configured"] is False
    for secret in ("gem-secret-key", BASE_ENV["TWILIO_ACCOUNT_SID"]):
        assert secret not in health.get_data(as_text=True)
    report = client.get("/status/warmup").json
    assert report["ready"] is False
    assert report["errors"] == [
        "webhook_credentials: TWILIO_AUTH_TOKEN not set: /webhook answers 403 to every request"
    ]
    unaccounted = make_app({"TWILIO_ACCOUNT_SID": ""}).test_client()
    assert unaccounted.get("/health").status_code == 503
    assert unaccounted.get("/status/warmup").json["errors"] == [
        "webhook_credentials: TWILIO_ACCOUNT_SID not set: /webhook answers 403 to every request"
    ]


def test_a_missing_knowledge_base_degrades_health_with_the_reason(
    make_app: Callable[..., Flask], tmp_path: Path
) -> None:
    client = make_app(KNOWLEDGE_PATH=str(tmp_path / "nowhere.json")).test_client()
    health = client.get("/health")
    assert health.status_code == 503
    # Fixed words, not the loader's message (which names the path): /status/warmup has that.
    assert health.json["reason"] == (
        "knowledge base not loaded; audio files missing or not MP3; "
        "no answerer: messages cannot be answered"
    )
    assert str(tmp_path) not in health.get_data(as_text=True)
    assert str(tmp_path) in client.get("/status/warmup").get_data(as_text=True)


def test_an_unsigned_development_bot_is_healthy(make_app: Callable[..., Flask]) -> None:
    env = {
        "TWILIO_AUTH_TOKEN": "",
        "DEV_ALLOW_UNSIGNED_WEBHOOK": "true",
        "FLASK_ENV": "development",
    }
    client = make_app(env).test_client()
    assert client.get("/health").status_code == 200
    assert client.get("/status/warmup").json["warnings"] == [
        "webhook_credentials: DEV_ALLOW_UNSIGNED_WEBHOOK is on: /webhook checks no signature"
    ]


def test_demo_mode_without_the_llm_is_a_configuration_warning(
    make_app: Callable[..., Flask],
) -> None:
    """DEMO_MODE means the LLM as the cache's fallback: without LLM_LIVE there is none."""
    report = make_app({"DEMO_MODE": "true"}).test_client().get("/status/warmup").json
    assert report["ready"] is True
    assert report["warnings"] == [
        "configuration: DEMO_MODE is on but LLM_LIVE is off: cache misses get no LLM fallback"
    ]
    live = {"DEMO_MODE": "true", "LLM_LIVE": "true", "GEMINI_API_KEY": "k"}
    assert make_app(live).test_client().get("/status/warmup").json["warnings"] == []
