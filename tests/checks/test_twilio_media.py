"""What Twilio meets in the bot's replies: the <Media> it fetches, and what answers /webhook.

Each fault of the bot look-alike's MEDIA_FAULTS (tests/fakes/bot_target.py) goes through
`opsctl verify --env fault --json`; the media rules of checks/media.py are tested on their own.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bot.knowledge import detect_language, load_knowledge
from checks.interface import AUDIO_QUESTIONS, CheckContext, Expectations
from checks.media import check_media, fetch_address, private_reason
from checks.registry import CHECKS
from opsctl.cli import main
from opsctl.config import ConfigError, load_config
from tests.checks.conftest import PUBLIC
from tests.fakes.bot_target import AUDIO_DIR, MEDIA_FAULTS, TargetSettings

TOKEN_HINT = "the same auth token the bot has"


@dataclass(frozen=True)
class Expected:
    """How one planted fault must come out of `opsctl verify`."""

    fault: str
    status: str
    reason: str
    hint: str
    code: int
    audio: str = "PASS"
    """The audio check's status: only a plain GET that fails also fails it."""


EXPECTED = [
    Expected(
        "media_http_localhost",
        "FAIL",
        "es http://localhost:10000/static/cache/tarjeta_sanitaria_es.mp3: not https; "
        "localhost is a local name, not a public host: Twilio cannot fetch it",
        "AUDIO_BASE_URL, else PUBLIC_BASE_URL or RENDER_EXTERNAL_URL",
        1,
    ),
    Expected(
        "media_404",
        "FAIL",
        f"es {PUBLIC}/static/cache/tarjeta_sanitaria_es.v1.mp3: a plain GET (as Twilio "
        "fetches) answered 404: no such route at http://127.0.0.1:",
        "Twilio gets the same 404",
        1,
    ),
    Expected(
        "media_get_500",
        "FAIL",
        f"es {PUBLIC}/static/cache/tarjeta_sanitaria_es.mp3: a plain GET (as Twilio fetches) "
        "answered 500: the bot's own error",
        "read the service's logs",
        1,
        audio="FAIL",
    ),
    Expected(
        "media_wrong_host",
        "FAIL",
        "es https://cdn.example.net/audio/tarjeta_sanitaria_es.mp3: on cdn.example.net, not on "
        "the deploy's host bot.example.org: AUDIO_BASE_URL points at cdn.example.net",
        "set AUDIO_BASE_URL on the bot to a URL on bot.example.org (or empty: the bot serves "
        "/static/cache on bot.example.org itself); if cdn.example.net is meant to serve the "
        'MP3s, set audio_host = "cdn.example.net"',
        1,
    ),
    Expected(
        "twiml_text_xml",
        "PASS",
        "4 cases as expected; the signed message got 180 characters of TwiML; 2 <Media> MP3 "
        "(es, fr) fetched as Twilio does",
        "",
        0,
    ),
    Expected(
        "webhook_302",
        "FAIL",
        "every /webhook request got 302 before its signature was judged: 302: redirected to "
        "http://127.0.0.1:",  # the bot's relative Location, resolved
        "Twilio signs the URL it calls, and a redirect changes it",
        1,
    ),
    Expected(
        "webhook_404",
        "FAIL",
        "every /webhook request got 404 before its signature was judged: 404: no such route",
        "is base_url the bot's address",
        1,
    ),
    Expected(
        "webhook_render_502",
        "ERROR",
        "every /webhook request got 502 before its signature was judged: 502: Render's page, "
        "its edge could not reach the bot's process",
        "over 512 MB is killed",
        3,
    ),
    Expected(
        "webhook_503",
        "ERROR",
        "every /webhook request got 503 before its signature was judged: 503: the bot says it "
        "is not ready",
        "read /status/warmup",
        3,
    ),
    Expected(
        "webhook_container_host",
        "FAIL",
        "signed got 403, expected 200: the bot validates signatures against "
        f"http://srv-clara-5f7c9:10000/webhook, not {PUBLIC}/webhook",
        f"set PUBLIC_BASE_URL={PUBLIC} on the bot: it checks signatures against "
        "PUBLIC_BASE_URL, else RENDER_EXTERNAL_URL",
        1,
    ),
]


def verify(config: Path, env_file: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
    """`opsctl verify --env fault --json`: (exit code, the run as JSON)."""
    args = ["verify", "--env", "fault", "--config", str(config), "--env-file", str(env_file)]
    code = main([*args, "--json", "--no-evidence"])
    out, err = capsys.readouterr()
    assert err == ""
    return code, json.loads(out)


def checks_of(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for gate in run["gates"] for c in gate["checks"]}


def env_file_with(tmp_path: Path, token: str) -> Path:
    path = tmp_path / "test.env"
    path.write_text(f"FAKE_TWILIO_TOKEN={token}\n")
    return path


def test_every_media_fault_is_expected() -> None:
    assert [e.fault for e in EXPECTED] == list(MEDIA_FAULTS)


@pytest.mark.parametrize("expected", EXPECTED, ids=lambda e: e.fault)
def test_media_fault(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    expected: Expected,
) -> None:
    env_file = env_file_with(tmp_path, TargetSettings().token)
    code, run = verify(fault_config(target(expected.fault)), env_file, capsys)
    checks = checks_of(run)
    webhook = checks["webhook"]
    assert (webhook["status"], code) == (expected.status, expected.code), webhook
    assert expected.reason in webhook["reason"]
    assert expected.hint in webhook["hint"]
    assert TOKEN_HINT not in webhook["hint"]  # never blamed on the token
    assert checks["audio"]["status"] == expected.audio
    others = [c for name, c in checks.items() if name not in ("webhook", "audio")]
    assert all(c["status"] in ("PASS", "SKIP") for c in others), others


def test_plain_get_failure_fails_the_audio_check_too(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """HEAD and a ranged GET answer; the plain GET Twilio sends gets 500."""
    env_file = env_file_with(tmp_path, TargetSettings().token)
    _, run = verify(fault_config(target("media_get_500")), env_file, capsys)
    audio = checks_of(run)["audio"]
    assert audio["reason"] == (
        "6 of 6 audio files broken; empadronamiento_es.mp3: a plain GET (as Twilio fetches) "
        "answered 500: the bot's own error"
    )


def test_a_wrong_token_is_blamed_on_the_token(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The bot validates against the public URL (its /health says so): the token differs."""
    env_file = env_file_with(tmp_path, "another-token-0123456789")
    code, run = verify(fault_config(target()), env_file, capsys)
    webhook = checks_of(run)["webhook"]
    assert (code, webhook["status"]) == (1, "FAIL")
    assert webhook["reason"] == "signed got 403, expected 200"
    assert webhook["hint"] == "is FAKE_TWILIO_TOKEN the same auth token the bot has?"
    assert webhook["details"]["bot_validates_against"] == f"{PUBLIC}/webhook"


def test_a_healthy_target_fetches_each_language_s_media(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env_file = env_file_with(tmp_path, TargetSettings().token)
    _, run = verify(fault_config(target()), env_file, capsys)
    details = checks_of(run)["webhook"]["details"]
    assert details["media"] == {
        f"{PUBLIC}/static/cache/tarjeta_sanitaria_es.mp3": "ok",
        f"{PUBLIC}/static/cache/tarjeta_sanitaria_fr.mp3": "ok",
    }
    assert details["audio"]["fr"]["question"] == AUDIO_QUESTIONS["fr"]
    assert details["cases"]["signed"]["media"] == []  # "hola" has no audio


def test_the_default_questions_get_cached_answers_with_audio() -> None:
    """The shipped knowledge base answers each default question, in its language, with an MP3."""
    knowledge = load_knowledge()
    for lang, question in AUDIO_QUESTIONS.items():
        assert detect_language(question) == lang
        entry = knowledge.lookup(question, lang)
        assert entry is not None and entry.audio, question
        assert (AUDIO_DIR / entry.audio).is_file()
    assert set(AUDIO_QUESTIONS) == {e.lang for e in knowledge.entries if e.audio}


# --- checks/media.py on its own ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("localhost", "localhost is a local name, not a public host"),
        ("api.localhost", "api.localhost is a local name, not a public host"),
        ("printer.local", "printer.local is a local name, not a public host"),
        ("metadata.google.internal", "metadata.google.internal is a local name, not a public host"),
        ("127.0.0.1", "127.0.0.1 is not a public address (loopback)"),
        ("127.1", "127.1 is not a public address (loopback)"),
        ("::1", "::1 is not a public address (loopback)"),
        ("::ffff:10.1.2.3", "::ffff:10.1.2.3 is not a public address (private)"),
        ("10.0.0.5", "10.0.0.5 is not a public address (private)"),
        ("192.168.1.20", "192.168.1.20 is not a public address (private)"),
        ("169.254.169.254", "169.254.169.254 is not a public address (link-local)"),
        ("0.0.0.0", "0.0.0.0 is not a public address (unspecified)"),  # noqa: S104 - data
        ("100.64.0.1", "100.64.0.1 is not a public address (not global)"),
        # Public, or at least not private: reserved test names fail, if at all, on the fetch.
        ("clara-whatsapp.onrender.com", ""),
        ("clara.local.test", ""),
        ("bot.example.org", ""),
        ("8.8.8.8", ""),
    ],
)
def test_private_reason(host: str, reason: str) -> None:
    assert private_reason(host) == reason


def test_a_url_on_the_public_origin_is_fetched_through_base_url() -> None:
    public, base = "https://clara.local.test", "http://127.0.0.1:5000"
    assert fetch_address(f"{public}/static/cache/a.mp3?v=2", public, base) == (
        f"{base}/static/cache/a.mp3?v=2"
    )
    assert fetch_address(f"{public}:443/static/cache/a.mp3", public, base) == (
        f"{base}/static/cache/a.mp3"
    )
    cdn = "https://cdn.example.org/audio/a.mp3"
    assert fetch_address(cdn, public, base) == cdn


MP3 = (AUDIO_DIR / "imv_es.mp3").read_bytes()


def media_check(url: str, handler: Callable[[httpx.Request], httpx.Response], host: str) -> Any:
    """check_media for one URL against a mocked internet; (problem, URLs requested)."""
    seen: list[str] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url}")
        return handler(request)

    async def go() -> Any:
        async with httpx.AsyncClient(transport=httpx.MockTransport(record)) as client:
            ctx = CheckContext("t", PUBLIC, PUBLIC, Expectations(audio_host=host), client, {})
            return await check_media(ctx, url, host)

    return asyncio.run(go()), seen


def test_the_configured_audio_host_is_fetched_where_the_reply_says() -> None:
    url = "https://cdn.example.org/audio/imv_es.mp3"

    def cdn(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=MP3, headers={"Content-Type": "audio/mpeg"})

    problem, seen = media_check(url, cdn, "cdn.example.org")
    assert (problem, seen) == (None, [f"GET {url}"])
    problem, seen = media_check(url, cdn, "")
    assert problem is not None and "AUDIO_BASE_URL points at cdn.example.org" in problem.what
    assert seen == []  # judged, never fetched


def test_redirects_are_followed_as_twilio_follows_them() -> None:
    """Twilio follows redirects (twilio.com/docs/messaging/twiml/your-response): to the end."""
    url = "https://cdn.example.org/audio/imv_es.mp3"
    final = "https://storage.example.com/bucket/imv_es.mp3"

    def moved(to: str) -> Callable[[httpx.Request], httpx.Response]:
        def handler(request: httpx.Request) -> httpx.Response:
            if str(request.url) == url:
                return httpx.Response(302, headers={"Location": to})
            return httpx.Response(200, content=MP3, headers={"Content-Type": "audio/mpeg"})

        return handler

    problem, seen = media_check(url, moved(final), "cdn.example.org")
    assert (problem, seen) == (None, [f"GET {url}", f"GET {final}"])
    problem, _ = media_check(url, moved("http://10.0.0.8/imv_es.mp3"), "cdn.example.org")
    assert problem is not None
    assert problem.what == (
        "a plain GET is redirected to http://10.0.0.8/imv_es.mp3: 10.0.0.8 is not a public "
        "address (private)"
    )


@pytest.mark.parametrize(
    ("answer", "what"),
    [
        (
            httpx.Response(200, content=b"<html>", headers={"Content-Type": "text/html"}),
            "a plain GET's Content-Type is 'text/html', expected audio/mpeg",
        ),
        (
            httpx.Response(200, content=b"<html>", headers={"Content-Type": "audio/mpeg"}),
            "a plain GET's body is not an MP3 (starts with b'<htm')",
        ),
    ],
)
def test_what_twilio_rejects_in_the_answer(answer: httpx.Response, what: str) -> None:
    problem, _ = media_check(f"{PUBLIC}/static/cache/a.mp3", lambda _: answer, "")
    assert problem is not None and problem.what == what


# --- configuration ------------------------------------------------------------------------------


def config_with(tmp_path: Path, lines: str) -> Path:
    path = tmp_path / "opsctl.toml"
    path.write_text(
        '[environments.cdn]\nbase_url = "https://clara.example.org"\n'
        f"{lines}\n"
        '[gates."P2.1"]\ntitle = "Twilio pipeline"\nchecks = ["webhook"]\n'
    )
    return path


def test_audio_host_and_questions_are_per_environment(tmp_path: Path) -> None:
    path = config_with(
        tmp_path, 'audio_host = "CDN.example.org"\naudio_questions = { es = "¿padrón?" }'
    )
    expect = load_config(path, CHECKS).environments["cdn"].expect
    assert (expect.audio_host, dict(expect.audio_questions)) == (
        "cdn.example.org",
        {"es": "¿padrón?"},
    )
    plain = load_config(config_with(tmp_path, ""), CHECKS).environments["cdn"].expect
    assert (plain.audio_host, dict(plain.audio_questions)) == ("", AUDIO_QUESTIONS)


def test_an_audio_host_is_a_host_not_a_url(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="audio_host"):
        load_config(config_with(tmp_path, 'audio_host = "https://cdn.example.org/a"'), CHECKS)
