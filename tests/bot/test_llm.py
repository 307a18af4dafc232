"""The live LLM path against a loopback server that speaks Gemini's generateContent API."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flask import Flask

from tests.conftest import message_sid, signed_headers, whatsapp_form

GEMINI_KEY = "gem-key-abcdef"  # pragma: allowlist secret
GEMINI_ENV = {
    "LLM_LIVE": "true",
    "GEMINI_API_KEY": GEMINI_KEY,
    "LLM_TIMEOUT": "1",
}  # pragma: allowlist secret


@dataclass
class FakeGemini:
    """What the fake received, and how it should answer."""

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    reply: str = "Respuesta del modelo."
    delay: float = 0.0
    status: int = 200


@pytest.fixture
def gemini() -> Iterator[FakeGemini]:
    fake = FakeGemini()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            fake.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            time.sleep(fake.delay)
            payload = {"candidates": [{"content": {"parts": [{"text": fake.reply}]}}]}
            data = json.dumps(payload).encode()
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    fake.url = (
        f"http://127.0.0.1:{server.server_port}/v1beta/models/gemini-2.0-flash:generateContent"
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield fake
    server.shutdown()
    server.server_close()


def _ask(app: Flask, text: str, sid: str) -> tuple[int, str, float]:
    form = whatsapp_form(text, sid=message_sid(sid))
    started = time.monotonic()
    response = app.test_client().post("/webhook", data=form, headers=signed_headers(form))
    return response.status_code, response.get_data(as_text=True), time.monotonic() - started


def test_cache_miss_asks_gemini(make_app: Callable[..., Flask], gemini: FakeGemini) -> None:
    app = make_app(GEMINI_ENV, GEMINI_URL=gemini.url)
    checks = app.test_client().get("/status/warmup").json["checks"]
    assert checks["http_client"]["detail"] == "built"
    assert checks["answerer"]["detail"] == "live LLM on cache misses"
    status, body, _ = _ask(app, "¿Qué necesito para renovar el NIE?", "SMllm1")
    assert status == 200
    assert "<Body>Respuesta del modelo.</Body>" in body
    (request,) = gemini.requests
    assert request["headers"]["x-goog-api-key"] == GEMINI_KEY
    prompt = request["body"]["contents"][0]["parts"][0]["text"]
    assert "Answer in Spanish" in prompt and "renovar el NIE" in prompt


def test_cache_hit_never_asks_gemini(make_app: Callable[..., Flask], gemini: FakeGemini) -> None:
    app = make_app(GEMINI_ENV, GEMINI_URL=gemini.url)
    status, body, _ = _ask(app, "tarjeta sanitaria", "SMllm2")
    assert status == 200 and "Tarjeta sanitaria: te da acceso" in body
    assert gemini.requests == []


def test_slow_gemini_is_cut_at_llm_timeout(
    make_app: Callable[..., Flask], gemini: FakeGemini
) -> None:
    gemini.delay = 3.0
    app = make_app(GEMINI_ENV, GEMINI_URL=gemini.url)
    status, body, elapsed = _ask(app, "¿Qué necesito para renovar el NIE?", "SMllm3")
    assert status == 200
    assert "Todavía no tengo una respuesta" in body
    assert elapsed < 2.0  # LLM_TIMEOUT=1, not the server's 3 s


def test_gemini_error_falls_back(make_app: Callable[..., Flask], gemini: FakeGemini) -> None:
    gemini.status = 500
    app = make_app(GEMINI_ENV, GEMINI_URL=gemini.url)
    status, body, _ = _ask(app, "comment renouveler mon titre de séjour", "SMllm4")
    assert status == 200 and "Je n'ai pas encore de réponse" in body


def test_demo_mode_answers_from_the_cache_then_asks_gemini(
    make_app: Callable[..., Flask], gemini: FakeGemini
) -> None:
    """The runbook's DEMO_MODE=true: a cached question never reaches the LLM, a miss does."""
    app = make_app({**GEMINI_ENV, "DEMO_MODE": "true"}, GEMINI_URL=gemini.url)
    status, body, _ = _ask(app, "tarjeta sanitaria", "SMdemo1")
    assert status == 200 and "Tarjeta sanitaria: te da acceso" in body
    assert gemini.requests == []
    status, body, _ = _ask(app, "¿Qué necesito para renovar el NIE?", "SMdemo2")
    assert status == 200 and "<Body>Respuesta del modelo.</Body>" in body
    assert len(gemini.requests) == 1


@pytest.mark.parametrize(
    "env",
    [
        {**GEMINI_ENV, "LLM_LIVE": "false"},
        {**GEMINI_ENV, "GEMINI_API_KEY": ""},
        {**GEMINI_ENV, "DEMO_MODE": "true", "LLM_LIVE": "false"},
        {**GEMINI_ENV, "DEMO_MODE": "true", "GEMINI_API_KEY": ""},
    ],
)
def test_llm_stays_off(
    make_app: Callable[..., Flask], gemini: FakeGemini, env: dict[str, str]
) -> None:
    app = make_app(env, GEMINI_URL=gemini.url)
    status, body, _ = _ask(app, "¿Qué necesito para renovar el NIE?", "SMllm5")
    assert status == 200 and "Todavía no tengo una respuesta" in body
    assert gemini.requests == []


def test_structured_output_and_rag(make_app: Callable[..., Flask], gemini: FakeGemini) -> None:
    gemini.reply = json.dumps({"answer": "Respuesta estructurada."})
    env = {**GEMINI_ENV, "STRUCTURED_OUTPUT_ON": "true", "RAG_ENABLED": "true"}
    app = make_app(env, GEMINI_URL=gemini.url)
    _, body, _ = _ask(app, "¿Qué necesito para renovar el NIE?", "SMllm6")
    assert "<Body>Respuesta estructurada.</Body>" in body
    sent = gemini.requests[0]["body"]
    assert sent["generationConfig"]["responseMimeType"] == "application/json"
    assert "Ingreso Mínimo Vital (IMV): es una ayuda" in sent["contents"][0]["parts"][0]["text"]


def test_long_llm_reply_fits_whatsapp(make_app: Callable[..., Flask], gemini: FakeGemini) -> None:
    gemini.reply = "palabra " * 400
    app = make_app(GEMINI_ENV, GEMINI_URL=gemini.url)
    _, body, _ = _ask(app, "¿Qué necesito para renovar el NIE?", "SMllm7")
    text = body.split("<Body>")[1].split("</Body>")[0]
    assert len(text) == 1600 and text.endswith("…")
