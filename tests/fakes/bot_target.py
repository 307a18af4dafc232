"""A loopback stand-in for the deployed bot that can be told to misbehave in one way at a time."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from bot.knowledge import detect_language, load_knowledge

AUDIO_DIR = Path(__file__).resolve().parents[2] / "bot" / "static" / "cache"
COMPONENTS = {
    "whisper_loaded": False,
    "whisper_enabled": False,
    "ffmpeg_available": False,
    "gemini_key_set": True,
    "twilio_configured": True,
    "cache_entries": 8,
    "demo_mode": False,
    "llm_live": False,
}
# /status/warmup as the bot reports a start-up step that warns, or one that failed.
WARMUP_FAULTS: dict[str, dict[str, Any]] = {
    "warmup_warning": {
        "ready": True,
        "status": "ok",
        "duration_sec": 0.1,
        "checks": {"configuration": {"ok": True, "detail": "DEMO_MODE keeps the live LLM off"}},
        "errors": [],
        "warnings": ["configuration: DEMO_MODE keeps the live LLM off"],
    },
    "warmup_not_ready": {
        "ready": False,
        "status": "error",
        "duration_sec": 0.1,
        "checks": {"knowledge_base": {"ok": False, "detail": "knowledge base not loaded"}},
        "errors": ["knowledge_base: knowledge base not loaded"],
        "warnings": [],
    },
}
FAULTS: tuple[str, ...] = (
    "hang",
    "health_500",
    "health_invalid_json",
    "health_degraded",
    "wrong_component",
    "warmup_warning",
    "warmup_not_ready",
    "metrics_missing",
    "audio_missing",
    "audio_mistyped",
    "head_get_disagree",
    "webhook_accepts_unsigned",
    "webhook_internal_url",
    "slow_health",
    # The bot hands out its own auth token (each must FAIL the check that asked, naming where):
    "token_in_health",  # a /health component, JSON-escaped by json.dumps
    "token_in_text_health",  # a /health that is not JSON, token as is
    "token_in_header",  # a header of every /webhook answer, URL-encoded
    "token_straddles_cut",  # /metrics, the token across byte EXCERPT_BYTES of the transcript
    # A value derived from the token (the request's signature) echoed back: redacted, not a FAIL.
    "signature_echo",
)
# What Render and the network do to a deployed bot (checks/target.py tells them apart):
DEPLOY_FAULTS = (
    "flaky_502",  # every `fail_every`-th /health is Render's 502 page
    "render_502",  # every request: Render's 502 page (the process is gone)
    "asleep_hold",  # asleep until `asleep_s` after the first request, which Render holds
    "asleep_page",  # asleep likewise, Render answers its 503 waking page meanwhile
    "never",  # accepts the connection, never answers
    "drip",  # /health's body one byte every `drip_interval_s`
    "reset",  # /health's connection reset by peer (TCP RST)
    "memory_high",  # /metrics reports 480 MB resident on a 512 MB plan
)
FAULTS += DEPLOY_FAULTS
# /health's reason under health_degraded: the bot's words for missing Twilio credentials.
DEGRADED_REASON = (
    "Twilio credentials missing (TWILIO_AUTH_TOKEN or TWILIO_ACCOUNT_SID): "
    "every webhook is refused (403)"
)
# Render's pages, as its edge sends them (the request never reached the bot). A 502 is "Render's
# edge can't reach your process" (render.com/tutorials/when-deploys-go-wrong/runtime-errors); a
# free instance spun down on idle is spun up by the next request, which hangs meanwhile "up to
# a minute" (render.com/docs/free#spinning-down-on-idle), or gets Render's waking page.
RENDER_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body>Bad Gateway (Render)</body></html>"
)
RENDER_WAKING = (
    b"<!DOCTYPE html><html><head><title>Service waking up</title></head>"
    b"<body>This service is waking up. It will be available shortly.</body></html>"
)
RENDER_HEADERS = {"rndr-id": "0123abcd-4567", "x-render-routing": "no-server"}
# What Twilio meets in a reply's <Media>, and what answers /webhook before the bot's signature
# check (checks/media.py, checks/webhook.py). The fake answers the webhook check's audio
# questions from the shipped knowledge base, with <Media> on its public URL as the bot does.
MEDIA_FAULTS = (
    "media_http_localhost",  # <Media> on http://localhost (AUDIO_BASE_URL left at a dev value)
    "media_404",  # <Media> names a file the bot does not serve
    "media_get_500",  # every MP3: HEAD and a ranged GET fine, a plain GET (Twilio's) 500
    "media_wrong_host",  # <Media> on another host than the deploy's (a stale AUDIO_BASE_URL)
    "twiml_text_xml",  # valid TwiML served as text/xml
    "webhook_302",  # every POST /webhook: redirected
    "webhook_404",  # every POST /webhook: no such route
    "webhook_render_502",  # every POST /webhook: Render's 502 page
    "webhook_503",  # every POST /webhook: the bot's own 503 while it warms up
    "webhook_container_host",  # signatures checked against the container's own host
)
FAULTS += MEDIA_FAULTS
KNOWLEDGE = load_knowledge()
# Where <Media> points instead of the public URL's /static/cache (AUDIO_BASE_URL gone wrong).
MEDIA_BASES = {
    "media_http_localhost": "http://localhost:10000/static/cache",
    "media_wrong_host": "https://cdn.example.net/audio",
}
# /webhook answered by something before the signature check: (status, body, type, headers).
WEBHOOK_ANSWERS: dict[str, tuple[int, bytes, str, dict[str, str]]] = {
    "webhook_302": (302, b"", "text/html", {"Location": "/webhook/"}),
    "webhook_404": (404, b"<h1>Not Found</h1>", "text/html", {}),
    "webhook_render_502": (502, RENDER_502, "text/html", RENDER_HEADERS),
    "webhook_503": (503, b"warming up\n", "text/plain", {"Retry-After": "5"}),
}
# The host a container sees behind a proxy that rewrites Host, with no PUBLIC_BASE_URL set.
CONTAINER_URL = "http://srv-clara-5f7c9:10000"

# Where the token starts in the straddling /metrics body: half of it before the 2048-byte cut.
STRADDLE_AT = 2048


@dataclass
class TargetSettings:
    """How the fake behaves: the token and public URL it validates against, one fault, a delay."""

    token: str = "fake-token-0123456789"  # pragma: allowlist secret
    account_sid: str = "AC" + "fa4e" * 8
    """The account the fake answers for: a signed form of another is refused, as the bot does."""
    public_url: str = ""
    """Empty: the URL the request came to."""
    fault: str = ""
    delay_s: float = 0.0
    """Added to every response (the concurrency benchmark uses 0.2)."""
    hang_s: float = 30.0
    asleep_s: float = 25.0
    """asleep_*: how long after the first request the instance is awake."""
    fail_every: int = 2
    drip_interval_s: float = 2.0
    first_request_at: float | None = None
    health_requests: int = 0
    stopped: threading.Event = field(default_factory=threading.Event)
    """Set when the fake stops: a request it holds ('never') lets go."""
    slow_health_s: float = 1.2
    requests: list[str] = field(default_factory=list)
    signatures: list[str] = field(default_factory=list)
    """Every X-Twilio-Signature received."""


def _handler(settings: TargetSettings) -> type[BaseHTTPRequestHandler]:
    audio = {p.name: p.read_bytes() for p in AUDIO_DIR.glob("*.mp3")}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            kind: str,
            extra: dict[str, str] | None = None,
            length: int | None = None,
            head: bool = False,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body) if length is None else length))
            for name, value in (extra or {}).items():
                self.send_header(name, value)
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def _json(self, status: int, data: Any) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _begin(self) -> str:
            settings.requests.append(f"{self.command} {self.path}")
            time.sleep(settings.delay_s)
            if settings.first_request_at is None:
                settings.first_request_at = time.monotonic()
            return settings.fault

        def _drain(self) -> None:
            """Read a request body left unread (else it is parsed as the next request)."""
            self.rfile.read(int(self.headers.get("Content-Length", 0)))

        def _platform(self, fault: str) -> bool:
            """Answer as Render or the network would, before the bot; True when it did."""
            asleep_for = settings.first_request_at + settings.asleep_s - time.monotonic()  # type: ignore[operator]
            if fault == "never":
                settings.stopped.wait()
                return True
            if fault == "render_502":
                self._drain()
                self._send(502, RENDER_502, "text/html", RENDER_HEADERS)
                return True
            if fault == "asleep_hold" and asleep_for > 0:
                time.sleep(asleep_for)  # Render holds the request while the instance boots
            if fault == "asleep_page" and asleep_for > 0:
                self._drain()
                self._send(503, RENDER_WAKING, "text/html; charset=utf-8", {"rndr-id": "abc"})
                return True
            return False

        def do_GET(self) -> None:
            self._get(head=False)

        def do_HEAD(self) -> None:
            self._get(head=True)

        def _get(self, head: bool) -> None:
            fault = self._begin()
            if self._platform(fault):
                return
            if self.path == "/status/warmup" and fault in WARMUP_FAULTS:
                self._json(200, WARMUP_FAULTS[fault])
                return
            if self.path == "/metrics" and fault == "metrics_missing":
                self._send(404, b"not found\n", "text/plain")  # prometheus-client not wired in
                return
            if self.path == "/health":
                self._health(fault)
            elif self.path == "/status/warmup":
                report = {
                    "ready": True,
                    "status": "ok",
                    "duration_sec": 0.1,
                    "checks": {"knowledge_base": {"ok": True, "detail": "8 entries"}},
                    "errors": [],
                    "warnings": [],
                    "audio_files": sorted(audio),
                }
                self._json(200, report)
            elif self.path == "/metrics":
                self._send(200, self._metrics(fault), "text/plain; version=0.0.4; charset=utf-8")
            elif self.path.startswith("/static/cache/"):
                self._audio(self.path.rsplit("/", 1)[1], fault, head)
            else:
                self._send(404, b"not found\n", "text/plain")

        def _metrics(self, fault: str) -> bytes:
            text = b"# HELP up Up\n# TYPE up gauge\nup 1.0\n"
            if fault == "memory_high":
                text += (
                    b"# HELP process_resident_memory_bytes Resident memory size in bytes.\n"
                    b"# TYPE process_resident_memory_bytes gauge\n"
                    b"process_resident_memory_bytes 4.8e+08\n"
                )
            if fault != "token_straddles_cut":
                return text
            token = settings.token.encode()
            # A comment padded so that the token starts half its length before STRADDLE_AT.
            start = STRADDLE_AT - len(token) // 2
            padding = b"# debug " + b"x" * (start - len(text) - len(b"# debug ") - 1) + b" "
            # More after it: redacted, the body is still cut (the marker is shorter than the token).
            return text + padding + token + b"\n# more " + b"y" * 64 + b"\n"

        def _health(self, fault: str) -> None:
            settings.health_requests += 1
            if fault == "flaky_502" and settings.health_requests % settings.fail_every == 0:
                self._send(502, RENDER_502, "text/html", RENDER_HEADERS)
                return
            if fault == "reset":
                # SO_LINGER 0: close() sends RST, what a killed worker behind a proxy looks like.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                )
                self.connection.close()
                self.close_connection = True
                return
            if fault == "drip":
                # 200 bytes: at 2 s a byte, far longer than any wake or request deadline.
                body = json.dumps({"status": "ok", "padding": "x" * 160}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                for byte in body:
                    if settings.stopped.wait(settings.drip_interval_s):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                return
            if fault == "hang":
                time.sleep(settings.hang_s)
            if fault == "slow_health":
                time.sleep(settings.slow_health_s)
            if fault == "health_500":
                self._send(500, b"<h1>Internal Server Error</h1>", "text/html")
                return
            if fault == "health_invalid_json":
                self._send(200, b"{status: ok", "application/json")
                return
            if fault == "token_in_text_health":
                self._send(200, f"ok token={settings.token}\n".encode(), "text/plain")
                return
            components: dict[str, Any] = dict(COMPONENTS)
            if fault == "wrong_component":
                components["cache_entries"] = 7
            if fault == "token_in_health":
                components["debug"] = f"auth token {settings.token}"
            status = "degraded" if fault == "health_degraded" else "ok"
            body = {
                "status": status,
                "uptime_s": 5,
                "version": "abc1234",
                "components": components,
                "webhook_url": self._webhook_url(fault),
            }
            if status != "ok":  # as the bot says why (bot/status.py)
                body["reason"] = DEGRADED_REASON
            self._json(200 if status == "ok" else 503, body)

        def _audio(self, name: str, fault: str, head: bool) -> None:
            data = audio.get(name)
            if data is None or (fault == "audio_missing" and name == "imv_es.mp3"):
                self._send(404, b"not found\n", "text/plain", head=head)
                return
            kind = "audio/mpeg"
            if fault == "audio_mistyped" and name == "imv_fr.mp3":
                kind, data = "text/html", b"<html>oops</html>" + data
            length = len(data)
            if head:
                if fault == "head_get_disagree" and name == "tarjeta_sanitaria_es.mp3":
                    length += 100
                self._send(200, b"", kind, {"Accept-Ranges": "bytes"}, length=length, head=True)
                return
            if self.headers.get("Range", "").startswith("bytes=0-"):
                end = min(int(self.headers["Range"][8:] or length - 1), length - 1)
                self._send(206, data[: end + 1], kind, {"Content-Range": f"bytes 0-{end}/{length}"})
                return
            if fault == "media_get_500":
                # Only Twilio's own request fails: a plain GET, no Range (its media fetch, see
                # twilio.com/docs/messaging/guides/accepted-mime-types).
                self._send(500, b"<h1>Internal Server Error</h1>", "text/html")
                return
            self._send(200, data, kind)

        def do_POST(self) -> None:
            fault = self._begin()
            if self._platform(fault):
                return
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path != "/webhook":
                self._send(404, b"", "text/plain")
                return
            if fault in WEBHOOK_ANSWERS:
                self._send(*WEBHOOK_ANSWERS[fault])
                return
            form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
            url = self._webhook_url(fault)
            signature = self.headers.get("X-Twilio-Signature", "")
            if signature:
                settings.signatures.append(signature)
            valid = bool(signature) and RequestValidator(settings.token).validate(
                url, form, signature
            )
            leak = {"X-Debug": "auth=" + quote(settings.token, safe="")}
            if fault != "token_in_header":
                leak = {}
            if not valid and fault != "webhook_accepts_unsigned":
                self._send(403, b"Forbidden\n", "text/plain", leak)
                return
            if valid and form.get("AccountSid") != settings.account_sid:
                # The bot's words for a signed form of another account (bot/webhook.py).
                body = b"Forbidden: AccountSid is not this bot's TWILIO_ACCOUNT_SID\n"
                self._send(403, body, "text/plain", leak)
                return
            reply = MessagingResponse()
            message = reply.message()
            echo = fault == "signature_echo"
            entry = KNOWLEDGE.lookup(form.get("Body", ""), detect_language(form.get("Body", "")))
            text = entry.answer if entry else "¡Hola! Soy Clara."
            message.body(text + (f" (signed {signature})" if echo else ""))
            if entry is not None and entry.audio:
                message.media(self._media_url(entry.audio, fault))
            extra = {"X-Signature-Echo": signature} if echo else leak
            # Twilio reads text/xml as TwiML too (twilio.com/docs/messaging/twiml/your-response).
            kind = "text/xml" if fault == "twiml_text_xml" else "application/xml"
            self._send(200, str(reply).encode(), kind, extra)

        def _public(self) -> str:
            return settings.public_url or f"http://{self.headers['Host']}"

        def _webhook_url(self, fault: str) -> str:
            """The URL this bot checks signatures against (its /health names it, as the bot's)."""
            public = self._public()
            if fault == "webhook_internal_url":
                # Behind a TLS-terminating proxy that keeps the Host: the app sees http://.
                public = "http://" + public.split("://", 1)[1]
            if fault == "webhook_container_host":
                public = CONTAINER_URL
            return public + "/webhook"

        def _media_url(self, name: str, fault: str) -> str:
            """The <Media> URL of an answer's MP3: the public URL's /static/cache, as the bot's."""
            base = MEDIA_BASES.get(fault, self._public() + "/static/cache")
            if fault == "media_404":
                name = name.replace(".mp3", ".v1.mp3")  # a name the cache no longer has
            return f"{base}/{name}"

    return Handler


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hung up (a killed or interrupted run) is not the fake's problem


def environment_toml(
    name: str,
    base_url: str,
    public_url: str,
    *,
    latency_warn_ms: int = 5000,
    latency_fail_ms: int = 10000,
    wake_timeout_s: float = 10,
    warm_samples: int = 2,
) -> str:
    """An opsctl.toml `[environments.NAME]` aimed at a fake target: its token and account
    from FAKE_TWILIO_TOKEN and FAKE_TWILIO_ACCOUNT_SID, its components as COMPONENTS says.
    The default limits are far from the fake's answers, however loaded the machine."""
    return f"""
[environments.{name}]
base_url = "{base_url}"
public_url = "{public_url}"
token_env = "FAKE_TWILIO_TOKEN"
account_sid_env = "FAKE_TWILIO_ACCOUNT_SID"
latency_warn_ms = {latency_warn_ms}
latency_fail_ms = {latency_fail_ms}
cold_start_budget_s = 20
wake_timeout_s = {wake_timeout_s}
warm_samples = {warm_samples}
require_https = false

[environments.{name}.components]
cache_entries = 8
gemini_key_set = true
twilio_configured = true
whisper_enabled = false
"""


@contextmanager
def serve_target(settings: TargetSettings, port: int = 0) -> Iterator[str]:
    """Serve the fake on 127.0.0.1 (a free port unless given); yields its base URL."""
    server = _QuietServer(("127.0.0.1", port), _handler(settings))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        settings.stopped.set()
        server.shutdown()
        server.server_close()
