"""`create_app()`: the Flask app gunicorn serves, its start-up checks run in the background."""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from bot import audio, logs, metrics, status, webhook
from bot.answers import Answerer
from bot.knowledge import DEFAULT_PATH, load_knowledge
from bot.metrics import Metrics
from bot.settings import load_settings
from bot.state import BotState
from bot.store import open_store
from bot.warmup import StepFailed, StepWarning, Warmup, WarmupReport, WarmupStep


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app. `config` may set ENVIRON (instead of os.environ), KNOWLEDGE_PATH,
    AUDIO_DIR, GEMINI_URL, HTTP_TRANSPORT and WARMUP_EXTRA_STEPS (tests inject these)."""
    app = Flask(__name__, static_folder=None)
    app.config.update(config or {})
    # '//' must not be merged into a redirect: /static/cache//etc/passwd is a plain 404.
    app.url_map.merge_slashes = False
    settings = load_settings(app.config.get("ENVIRON", os.environ))
    app.config["DEBUG"] = settings.flask_env == "development"
    logger = logs.configure_logging(
        settings.log_level, settings.observability_on, settings.secret_values
    )

    app_metrics = Metrics()
    store = open_store(settings, on_error=app_metrics.store_errors.inc)
    state = BotState(settings=settings, metrics=app_metrics, store=store)
    app.extensions["clara"] = state
    logs.init_app(app, logger)
    metrics.init_app(app, state.metrics)
    audio.init_app(app)
    status.init_app(app)
    webhook.init_app(app)

    def record(report: WarmupReport) -> None:
        state.metrics.warmup_duration.set(report.duration_sec)
        state.metrics.warmup_ready.set(1 if report.ready else 0)
        if report.ready:
            logger.info("warm-up ready in %.2fs", report.duration_sec)
        else:
            logger.error("warm-up failed: %s", "; ".join(report.errors))

    steps = [*_warmup_steps(app, state), *app.config.get("WARMUP_EXTRA_STEPS", ())]
    state.warmup = Warmup(steps, settings.warmup_timeout_sec, on_done=record)
    state.warmup.start()
    return app


def _warmup_steps(app: Flask, state: BotState) -> list[WarmupStep]:
    """The start-up checks; they also build the knowledge base, HTTP client and answerer."""
    settings = state.settings

    def knowledge_base() -> str:
        state.knowledge = load_knowledge(Path(app.config.get("KNOWLEDGE_PATH", DEFAULT_PATH)))
        return f"{len(state.knowledge)} entries"

    def audio_files() -> str:
        if state.knowledge is None:
            raise StepFailed("knowledge base not loaded")
        folder = Path(app.config["AUDIO_DIR"])
        problems = []
        for name in state.knowledge.audio_files:
            path = folder / name
            if not path.is_file() or path.stat().st_size == 0:
                problems.append(f"{name} missing or empty")
                continue
            with path.open("rb") as handle:
                if not audio.looks_like_mp3(handle.read(4)):
                    problems.append(f"{name} is not an MP3")
        if problems:
            raise StepFailed("; ".join(problems))
        return f"{len(state.knowledge.audio_files)} MP3 files present"

    def http_client() -> str:
        if not settings.llm_enabled:
            # Only the LLM calls out; its TLS context (certifi's bundle, ~50 ms of CPU and a
            # few MB per process) is not worth building for a bot that answers from its cache.
            return "not needed: the LLM is off"
        import httpx  # here: only a bot whose LLM is on pays for the HTTP stack

        state.http = httpx.Client(
            transport=app.config.get("HTTP_TRANSPORT"),
            timeout=settings.llm_timeout,
            limits=httpx.Limits(max_connections=8),
        )
        return "built"

    def answerer() -> str:
        if state.knowledge is None or (settings.llm_enabled and state.http is None):
            raise StepFailed("needs the knowledge base and the HTTP client")
        llm = None
        if settings.llm_enabled and state.http is not None:
            from bot.llm import GEMINI_URL, GeminiClient

            llm = GeminiClient(
                state.http,
                settings.gemini_api_key,
                settings.llm_timeout,
                structured=settings.structured_output_on,
                url=app.config.get("GEMINI_URL", GEMINI_URL),
            )
        state.answerer = Answerer(
            state.knowledge,
            state.metrics,
            llm=llm,
            guardrails=settings.guardrails_on,
            rag=settings.rag_enabled,
        )
        return "live LLM on cache misses" if llm else "cache and fallback only"

    def webhook_credentials() -> str:
        if settings.dev_allow_unsigned_webhook:
            raise StepWarning("DEV_ALLOW_UNSIGNED_WEBHOOK is on: /webhook checks no signature")
        missing = [
            name
            for name, value in (
                ("TWILIO_AUTH_TOKEN", settings.twilio_auth_token),
                ("TWILIO_ACCOUNT_SID", settings.twilio_account_sid),
            )
            if not value
        ]
        if missing:
            raise StepFailed(
                f"{' and '.join(missing)} not set: /webhook answers 403 to every request"
            )
        if settings.twilio_shared_key_secret:
            return "Twilio signatures (auth token and SharedKey) and the account are checked"
        return "Twilio signatures and the account are checked"

    def configuration() -> str:
        notes = []
        if settings.llm_live and not settings.gemini_api_key:
            notes.append("LLM_LIVE is on but GEMINI_API_KEY is not set: the LLM stays off")
        if settings.demo_mode and not settings.llm_live:
            notes.append("DEMO_MODE is on but LLM_LIVE is off: cache misses get no LLM fallback")
        if settings.whisper_on:
            notes.append("WHISPER_ON is set but this build has no speech-to-text")
            if shutil.which("ffmpeg") is None:
                notes.append("ffmpeg is not installed")
        if notes:
            raise StepWarning("; ".join(notes))
        return "consistent"

    # Each step that keeps the bot from its purpose when it fails says so in fixed words: they
    # are /health's reason, which Render's health check and `opsctl verify` both read.
    return [
        WarmupStep("knowledge_base", knowledge_base, "knowledge base not loaded"),
        WarmupStep("audio_files", audio_files, "audio files missing or not MP3"),
        WarmupStep("http_client", http_client, "no HTTP client"),
        WarmupStep("answerer", answerer, "no answerer: messages cannot be answered"),
        WarmupStep(
            "webhook_credentials",
            webhook_credentials,
            "Twilio credentials missing (TWILIO_AUTH_TOKEN or TWILIO_ACCOUNT_SID): "
            "every webhook is refused (403)",
        ),
        WarmupStep("configuration", configuration),
    ]
