"""GET /health and GET /status/warmup: what a load balancer and an operator see."""

from __future__ import annotations

import shutil
import time
from typing import Any

from flask import Blueprint, Flask, Response, jsonify, request

from bot.signature import public_base
from bot.state import get_state
from bot.warmup import WarmupReport

blueprint = Blueprint("status", __name__)
HEALTH_PATH = "/health"


def _components() -> dict[str, Any]:
    """Booleans and counts only: never a secret value."""
    state = get_state()
    settings = state.settings
    return {
        # This build ships no speech-to-text model: honest 'false', whatever WHISPER_ON says.
        "whisper_loaded": False,
        "whisper_enabled": settings.whisper_on,
        "ffmpeg_available": shutil.which("ffmpeg") is not None,
        "gemini_key_set": bool(settings.gemini_api_key),
        "twilio_configured": settings.twilio_configured,
        "cache_entries": len(state.knowledge) if state.knowledge else 0,
        "demo_mode": settings.demo_mode,
        "llm_live": settings.llm_enabled,
        "store": state.store.kind,
    }


def _reason(report: WarmupReport) -> str:
    """Why the bot is not serving, in the failed steps' fixed words ('' when it is)."""
    if report.status == "starting":
        return "the start-up warm-up is running"
    return "; ".join(report.reasons)


@blueprint.get(HEALTH_PATH)
def health() -> tuple[Response, int]:
    """200 with status 'ok' once warmed up; 503 'starting' or 'degraded', with the reason,
    otherwise: Render's own health check then sees what `opsctl verify` sees.

    Redis (REDIS_URL) down is 'degraded' with its reason but still 200: the instance answers
    from its own memory, and Render taking it out (or restarting it) would bring no Redis
    back, only leave messages unanswered. `opsctl verify` reads the status, not the code."""
    state = get_state()
    assert state.warmup is not None
    report = state.warmup.report()
    status = report.status
    reasons = [_reason(report)] if status != "ok" else []
    store_problem = state.store.problem() if report.finished else ""
    if store_problem:
        reasons.append(store_problem)
    body: dict[str, Any] = {
        "status": status,
        "uptime_s": int(time.monotonic() - state.started_at),
        "version": state.settings.render_git_commit or "unknown",
        "components": _components(),
        # Where /webhook checks signatures: not a secret, and the one thing that tells a bot
        # behind a proxy that rewrites the host (it sees its container's own) from a wrong token.
        "webhook_url": public_base(
            request, state.settings.public_base_url, state.settings.render_external_url
        )
        + "/webhook",
    }
    code = 200 if status == "ok" else 503
    if store_problem and status == "ok":
        body["status"] = "degraded"
    if reasons:
        body["reason"] = "; ".join(reasons)
    return jsonify(body), code


@blueprint.get("/status/warmup")
def warmup_status() -> tuple[Response, int]:
    """The warm-up's full report; 200 when ready, else 503."""
    state = get_state()
    assert state.warmup is not None
    report = state.warmup.report()
    body = report.as_dict()
    # What the cache refers to, so `opsctl verify` can check every file without a list of its own.
    body["audio_files"] = list(state.knowledge.audio_files) if state.knowledge else []
    return jsonify(body), 200 if report.ready else 503


def init_app(app: Flask) -> None:
    """Register the status routes."""
    app.register_blueprint(blueprint)
