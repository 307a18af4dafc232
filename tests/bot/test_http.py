"""The bot over real HTTP, under the Dockerfile's gunicorn command on 127.0.0.1:0."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import json
import os
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.audio import looks_like_mp3
from opsctl.devserver import DevServer
from tests.conftest import BASE_ENV, PUBLIC, TOKEN, signed_headers, whatsapp_form
from tests.loopback import TLS

FORM_TYPE = {"Content-Type": "application/x-www-form-urlencoded"}
AUDIO_FILES = [
    "imv_es.mp3",
    "imv_fr.mp3",
    "empadronamiento_es.mp3",
    "empadronamiento_fr.mp3",
    "tarjeta_sanitaria_es.mp3",
    "tarjeta_sanitaria_fr.mp3",
]


def metric(url: str, name: str, **labels: str) -> float:
    """One sample's value from /metrics (0 when absent)."""
    text = httpx.get(url + "/metrics", verify=TLS).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def post_form(
    url: str, form: dict[str, str], headers: dict[str, str] | None = None
) -> httpx.Response:
    return httpx.post(url + "/webhook", data=form, headers=headers or {}, timeout=10, verify=TLS)


def twiml(response: httpx.Response) -> tuple[str, list[str]]:
    """(Body text, Media URLs) of a TwiML reply."""
    root = ElementTree.fromstring(response.content)
    assert root.tag == "Response"
    body = root.findtext("Message/Body") or ""
    return body, [m.text or "" for m in root.findall("Message/Media")]


# --- /health and /status/warmup ---------------------------------------------------------


def test_health_reports_components_and_no_secret(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot({"RENDER_GIT_COMMIT": "abc1234", "GEMINI_API_KEY": "gem-secret-key"})
    response = httpx.get(server.url + "/health", verify=TLS)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == "abc1234"
    assert isinstance(body["uptime_s"], int) and body["uptime_s"] >= 0
    assert body["components"] == {
        "whisper_loaded": False,
        "whisper_enabled": False,
        "ffmpeg_available": body["components"]["ffmpeg_available"],
        "gemini_key_set": True,
        "twilio_configured": True,
        "cache_entries": 8,
        "demo_mode": False,
        "llm_live": False,
        "store": "memory",
    }
    assert isinstance(body["components"]["ffmpeg_available"], bool)
    for secret in (TOKEN, "gem-secret-key", BASE_ENV["TWILIO_ACCOUNT_SID"]):
        assert secret not in response.text


def test_health_version_defaults_to_unknown(bot_url: str) -> None:
    assert httpx.get(bot_url + "/health", verify=TLS).json()["version"] == "unknown"


def test_warmup_status(bot_url: str) -> None:
    response = httpx.get(bot_url + "/status/warmup", verify=TLS)
    assert response.status_code == 200
    report = response.json()
    assert report["ready"] is True and report["errors"] == [] and report["warnings"] == []
    assert report["checks"]["audio_files"] == {"ok": True, "detail": "6 MP3 files present"}
    assert report["duration_sec"] > 0


# --- /webhook -------------------------------------------------------------------------------


def test_signed_message_gets_twiml_with_body_and_media(bot_url: str) -> None:
    form = whatsapp_form("¿Cómo pido el ingreso mínimo vital?", sid="SM" + "1" * 32)
    response = post_form(bot_url, form, signed_headers(form))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/xml")
    body, media = twiml(response)
    assert body.startswith("Ingreso Mínimo Vital (IMV): es una ayuda")
    assert media == ["https://cdn.example.org/audio/imv_es.mp3"]


def test_french_message_gets_french_answer(bot_url: str) -> None:
    form = whatsapp_form("Bonjour, comment obtenir la carte sanitaire ?", sid="SM" + "2" * 32)
    body, media = twiml(post_form(bot_url, form, signed_headers(form)))
    assert body.startswith("Carte sanitaire (tarjeta sanitaria) : elle donne")
    assert media == ["https://cdn.example.org/audio/tarjeta_sanitaria_fr.mp3"]


def test_unknown_question_gets_fallback_without_media(bot_url: str) -> None:
    misses = metric(bot_url, "clara_cache_misses_total")
    form = whatsapp_form("¿Qué tiempo hace en Madrid?", sid="SM" + "3" * 32)
    body, media = twiml(post_form(bot_url, form, signed_headers(form)))
    assert body.startswith("Todavía no tengo una respuesta para eso.")
    assert media == []
    assert metric(bot_url, "clara_cache_misses_total") == misses + 1


def tampered(signature: str) -> str:
    """The signature with its first character changed: "x" unless it is one (1 in 64 is)."""
    return ("y" if signature.startswith("x") else "x") + signature[1:]


@pytest.mark.parametrize(
    ("case", "headers_for"),
    [
        ("unsigned", lambda form: {}),
        (
            "tampered",
            lambda form: {
                "X-Twilio-Signature": tampered(signed_headers(form)["X-Twilio-Signature"])
            },
        ),
        ("http variant", lambda form: signed_headers(form, "http://bot.example.org/webhook")),
        ("other token", lambda form: {"X-Twilio-Signature": "RSOYDt4T1cUTdK1PDd93/VVr8B8="}),
    ],
)
def test_bad_signatures_get_403_and_nothing_is_processed(
    bot_url: str, case: str, headers_for: Callable[[dict[str, str]], dict[str, str]]
) -> None:
    hits = metric(bot_url, "clara_cache_hits_total")
    rejected = sum(
        metric(bot_url, "clara_webhook_signature_rejections_total", reason=r)
        for r in ("missing", "invalid")
    )
    form = whatsapp_form("ingreso minimo vital", sid="SM" + "4" * 32)
    response = post_form(bot_url, form, headers_for(form))
    assert response.status_code == 403, case
    assert "<Response>" not in response.text
    assert metric(bot_url, "clara_cache_hits_total") == hits
    after = sum(
        metric(bot_url, "clara_webhook_signature_rejections_total", reason=r)
        for r in ("missing", "invalid")
    )
    assert after == rejected + 1


def test_repeated_message_sid_is_answered_once(bot_url: str) -> None:
    hits = metric(bot_url, "clara_cache_hits_total")
    duplicates = metric(bot_url, "clara_webhook_duplicates_total")
    form = whatsapp_form("necesito empadronarme", sid="SM" + "5" * 32)
    first = post_form(bot_url, form, signed_headers(form))
    second = post_form(bot_url, form, signed_headers(form))
    assert first.status_code == second.status_code == 200
    assert first.content == second.content
    assert metric(bot_url, "clara_cache_hits_total") == hits + 1
    assert metric(bot_url, "clara_webhook_duplicates_total") == duplicates + 1


def test_oversized_body_gets_413(bot_url: str) -> None:
    form = whatsapp_form("a" * 70_000, sid="SM" + "6" * 32)
    assert post_form(bot_url, form, signed_headers(form)).status_code == 413
    assert post_form(bot_url, form).status_code == 413


def test_oversized_chunked_body_gets_413(bot_url: str) -> None:
    def chunks():  # no Content-Length: the limit must hold while reading
        yield b"Body="
        for _ in range(80):
            yield b"a" * 1024

    form = whatsapp_form("x")
    response = httpx.post(
        bot_url + "/webhook",
        content=chunks(),
        headers={**FORM_TYPE, **signed_headers(form)},
        verify=TLS,
    )
    assert response.status_code == 413


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (json.dumps(whatsapp_form()).encode(), "application/json"),
        (b"Body=%FF%FE&MessageSid=SM1&From=x", "application/x-www-form-urlencoded"),
        (b"Body=\xff\xfe&MessageSid=SM1", "application/x-www-form-urlencoded"),
    ],
)
def test_malformed_requests_get_400(bot_url: str, content: bytes, content_type: str) -> None:
    response = httpx.post(
        bot_url + "/webhook",
        content=content,
        headers={"Content-Type": content_type, "X-Twilio-Signature": "c2lnbmF0dXJl"},
        verify=TLS,
    )
    assert response.status_code in (400, 403)
    if content_type == "application/json":
        assert response.status_code == 400


def test_signed_form_without_message_sid_gets_400(bot_url: str) -> None:
    form = {"From": "whatsapp:+34600000000", "Body": "hola"}
    assert post_form(bot_url, form, signed_headers(form)).status_code == 400


def test_no_token_fails_closed(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot({"TWILIO_AUTH_TOKEN": ""})
    # What Render's health check sees: not 'ok' while every message is refused.
    health = httpx.get(server.url + "/health", verify=TLS)
    assert (health.status_code, health.json()["status"]) == (503, "degraded")
    assert "TWILIO_AUTH_TOKEN" in health.json()["reason"]
    form = whatsapp_form("hola")
    assert post_form(server.url, form, signed_headers(form)).status_code == 403
    assert post_form(server.url, form).status_code == 403
    assert (
        metric(server.url, "clara_webhook_signature_rejections_total", reason="unconfigured") == 2
    )


# Twilio signs with a SharedKey instead of the auth token when a Webhook Rule matches the URL,
# and says so in X-Twilio-Webhooks-Signature-Settings (`key=<id>,algorithm=<HMAC_SHA1 or
# HMAC_SHA256>`); the signed string stays the URL and the sorted form, only the key and the
# hash change: https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys and twilio-node's
# examples/WebhookSignatureValidation.md.
SHARED_KEY_SECRET = "shared-key-secret-0123456789abcdef"  # pragma: allowlist secret
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
SHA256_SETTINGS = "key=webhooks_sharedkey_0123,algorithm=HMAC_SHA256"


def signed_as_twilio(secret: str, form: dict[str, str], digest: Callable[..., Any]) -> str:
    """Twilio's signature computed here, apart from twilio's code: URL, then each name and
    value in name order, HMAC with the key, base64."""
    signed = PUBLIC + "/webhook" + "".join(name + form[name] for name in sorted(form))
    return base64.b64encode(hmac.new(secret.encode(), signed.encode(), digest).digest()).decode()


@pytest.mark.parametrize(
    ("settings", "secret", "digest", "status"),
    [
        (SHA256_SETTINGS, SHARED_KEY_SECRET, hashlib.sha256, 200),
        ("key=webhooks_sharedkey_0123,algorithm=HMAC_SHA1", SHARED_KEY_SECRET, hashlib.sha1, 200),
        ("", TOKEN, hashlib.sha1, 200),  # no header: the auth token, as always
        # The header names the SharedKey: a signature with the token does not count.
        (SHA256_SETTINGS, TOKEN, hashlib.sha256, 403),
        ("", SHARED_KEY_SECRET, hashlib.sha1, 403),  # and the other way round
        ("key=webhooks_sharedkey_0123,algorithm=HMAC_MD5", SHARED_KEY_SECRET, hashlib.md5, 403),
    ],
    ids=["sha256", "sha1", "token", "token-as-key", "key-as-token", "unknown-algorithm"],
)
def test_webhooks_signed_with_a_shared_key(
    bot_with_shared_key: DevServer,
    settings: str,
    secret: str,
    digest: Callable[..., Any],
    status: int,
) -> None:
    url = bot_with_shared_key.url
    sid = "SM" + hashlib.sha256((settings + secret).encode()).hexdigest()[:32]  # one per case
    form = whatsapp_form("ingreso minimo vital", sid=sid)
    headers = {"X-Twilio-Signature": signed_as_twilio(secret, form, digest)}
    if settings:
        headers[SETTINGS_HEADER] = settings
    response = post_form(url, form, headers)
    assert response.status_code == status
    if status == 200:
        assert twiml(response)[0]
    assert SHARED_KEY_SECRET not in "\n".join(bot_with_shared_key.lines)


@pytest.fixture(scope="module")
def bot_with_shared_key() -> Iterator[DevServer]:
    """A bot given TWILIO_SHARED_KEY_SECRET besides the token."""
    server = DevServer({**os.environ, **BASE_ENV, "TWILIO_SHARED_KEY_SECRET": SHARED_KEY_SECRET})
    server.start()
    server.wait_ready()
    yield server
    server.stop()


def test_a_shared_key_signature_without_its_secret_is_a_500_that_names_the_setting(
    start_bot: Callable[..., DevServer],
) -> None:
    """The bot cannot check such a request: its configuration's fault, not the caller's."""
    server = start_bot()
    form = whatsapp_form("hola", sid="SM" + "7" * 32)
    headers = {
        "X-Twilio-Signature": signed_as_twilio(SHARED_KEY_SECRET, form, hashlib.sha256),
        SETTINGS_HEADER: SHA256_SETTINGS,
    }
    response = post_form(server.url, form, headers)
    assert response.status_code == 500
    assert "<Response>" not in response.text
    assert (
        metric(server.url, "clara_webhook_signature_rejections_total", reason="no_shared_key") == 1
    )
    deadline = time.monotonic() + 5
    while not any("TWILIO_SHARED_KEY_SECRET is not set" in line for line in server.lines):
        assert time.monotonic() < deadline, "no log line names TWILIO_SHARED_KEY_SECRET"
        time.sleep(0.02)


def test_development_flag_allows_unsigned(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot(
        {"TWILIO_AUTH_TOKEN": "", "DEV_ALLOW_UNSIGNED_WEBHOOK": "true", "FLASK_ENV": "development"}
    )
    response = post_form(server.url, whatsapp_form("hola"))
    assert response.status_code == 200
    assert twiml(response)[0].startswith("¡Hola! Soy Clara.")


# --- behind a TLS-terminating proxy --------------------------------------------------------


def _proxied(url: str, form: dict[str, str], headers: dict[str, str]) -> int:
    """POST as the proxy forwards it: to http://127.0.0.1:P, signed for https://bot.example.org."""
    signature = signed_headers(form, PUBLIC + "/webhook")
    return post_form(url, form, {**signature, **headers}).status_code


def test_proxy_with_public_base_url(bot_url: str) -> None:
    assert urlsplit(bot_url).scheme == "http"
    assert _proxied(bot_url, whatsapp_form(sid="SM" + "7" * 32), {}) == 200


def test_proxy_without_public_url(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot({"PUBLIC_BASE_URL": "", "RENDER_EXTERNAL_URL": ""})
    host = {"Host": "bot.example.org"}
    assert _proxied(server.url, whatsapp_form(sid="SM" + "8" * 32), {}) == 403
    assert _proxied(server.url, whatsapp_form(sid="SM" + "9" * 32), host) == 403
    # gunicorn trusts X-Forwarded-Proto from loopback (forwarded_allow_ips' default).
    trusted = {**host, "X-Forwarded-Proto": "https"}
    assert _proxied(server.url, whatsapp_form(sid="SM" + "a" * 32), trusted) == 200


def test_untrusted_forwarded_proto_is_ignored(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot(
        {"PUBLIC_BASE_URL": "", "RENDER_EXTERNAL_URL": ""},
        extra_args="--forwarded-allow-ips 10.9.9.9",
    )
    headers = {"Host": "bot.example.org", "X-Forwarded-Proto": "https"}
    assert _proxied(server.url, whatsapp_form(sid="SM" + "b" * 32), headers) == 403


def test_render_external_url_is_used(start_bot: Callable[..., DevServer]) -> None:
    server = start_bot({"PUBLIC_BASE_URL": "", "RENDER_EXTERNAL_URL": PUBLIC})
    assert _proxied(server.url, whatsapp_form(sid="SM" + "c" * 32), {}) == 200


# --- audio ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", AUDIO_FILES)
def test_audio_files_are_served_as_mp3(bot_url: str, name: str) -> None:
    url = f"{bot_url}/static/cache/{name}"
    get = httpx.get(url, verify=TLS)
    head = httpx.head(url, verify=TLS)
    assert get.status_code == head.status_code == 200
    assert get.headers["content-type"] == head.headers["content-type"] == "audio/mpeg"
    assert int(get.headers["content-length"]) == len(get.content) > 10_000
    assert head.headers["content-length"] == get.headers["content-length"]
    assert head.headers["etag"] == get.headers["etag"]
    assert head.content == b""
    assert looks_like_mp3(get.content[:4])


def test_audio_range_and_conditional_requests(bot_url: str) -> None:
    url = f"{bot_url}/static/cache/imv_es.mp3"
    whole = httpx.get(url, verify=TLS)
    part = httpx.get(url, headers={"Range": "bytes=0-9"}, verify=TLS)
    assert part.status_code == 206
    assert part.content == whole.content[:10]
    assert part.headers["content-range"] == f"bytes 0-9/{len(whole.content)}"
    assert (
        httpx.get(url, headers={"If-None-Match": whole.headers["etag"]}, verify=TLS).status_code
        == 304
    )
    assert (
        httpx.get(
            url, headers={"Range": f"bytes={len(whole.content) + 5}-"}, verify=TLS
        ).status_code
        == 416
    )


@pytest.mark.parametrize(
    "path",
    [
        "/static/cache/../__init__.py",
        "/static/cache/..%2f__init__.py",
        "/static/cache/%2e%2e/settings.py",
        "/static/cache/../../pyproject.toml",
        "/static/cache/nope.mp3",
        "/static/cache/knowledge.json",
        "/static/cache//etc/passwd",
    ],
)
def test_paths_outside_the_audio_folder_are_404(bot_url: str, path: str) -> None:
    # http.client sends the path as written: no client-side normalisation of '..'.
    parts = urlsplit(bot_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    connection.request("GET", path)
    response = connection.getresponse()
    assert response.status == 404
    connection.close()


# --- /metrics and logs --------------------------------------------------------------------


def test_metrics_are_prometheus_text(bot_url: str) -> None:
    httpx.get(bot_url + "/health", verify=TLS)
    response = httpx.get(bot_url + "/metrics", verify=TLS)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = {f.name for f in text_string_to_metric_families(response.text)}
    assert {
        "clara_http_requests",
        "clara_webhook_signature_rejections",
        "clara_cache_hits",
        "clara_cache_misses",
        "clara_warmup_duration_seconds",
    } <= families
    assert metric(bot_url, "clara_http_requests_total", route="/health", status="200") >= 1
    assert metric(bot_url, "clara_warmup_duration_seconds") > 0
    assert metric(bot_url, "clara_warmup_ready") == 1
    # The worker's own memory, which opsctl's metrics check holds against the plan's 512 MB.
    assert 10e6 < metric(bot_url, "process_resident_memory_bytes") < 512e6


def test_logs_are_json_with_request_id_masked_and_redacted(
    start_bot: Callable[..., DevServer],
) -> None:
    server = start_bot({"GEMINI_API_KEY": "gem-secret-key"})
    form = whatsapp_form("hola", sid="SM" + "d" * 32)
    response = post_form(server.url, form, {**signed_headers(form), "X-Request-Id": "req-42"})
    assert response.headers["X-Request-Id"] == "req-42"
    post_form(server.url, form, {"X-Twilio-Signature": TOKEN})  # the token as a header value
    server.stop()
    records = [json.loads(line) for line in server.lines if line.startswith("{")]
    mine = [r for r in records if r["request_id"] == "req-42"]
    assert any(r["msg"] == "POST /webhook 200" or r.get("status") == 200 for r in mine)
    # One line per request, saying what it did (issue 17: one record, not two).
    (line,) = mine
    assert line["msg"].startswith("POST /webhook 200 ") and line["status"] == 200
    assert "answered SM" + "d" * 32 + " from whatsapp:+34******678 (es, " in line["msg"]
    everything = "\n".join(server.lines)
    assert "34612345678" not in everything
    assert TOKEN not in everything
    assert "gem-secret-key" not in everything
