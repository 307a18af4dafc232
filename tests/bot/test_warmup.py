"""The warm-up: steps run once in the background, within a deadline; failures degrade /health."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from flask import Flask

from bot.warmup import StepFailed, StepWarning, Warmup, WarmupStep


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
            WarmupStep("fail", fail),
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
    assert client.get("/status/warmup").json["ready"] is False
    release.set()
    deadline = time.monotonic() + 5
    while client.get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert client.get("/health").json["status"] == "ok"


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
    report = client.get("/status/warmup").json
    assert report["ready"] is False
    assert report["checks"]["audio_files"]["ok"] is False
    assert report["errors"] == [
        "audio_files: imv_es.mp3 missing or empty; imv_fr.mp3 is not an MP3"
    ]


def test_warmup_report_lists_every_check(make_app: Callable[..., Flask]) -> None:
    report = make_app({"TWILIO_AUTH_TOKEN": ""}).test_client().get("/status/warmup").json
    assert report["ready"] is True
    assert set(report["checks"]) == {
        "knowledge_base",
        "audio_files",
        "http_client",
        "answerer",
        "configuration",
    }
    assert report["checks"]["knowledge_base"]["detail"] == "8 entries"
    assert report["warnings"] == [
        "configuration: TWILIO_AUTH_TOKEN is not set: /webhook answers 403 to every request"
    ]
    assert report["duration_sec"] >= 0


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
