"""Who answered and why: each kind of answer a deploy check meets gets its cause and hint.

The responses are real httpx responses built as the platform sends them (headers and bodies as
in tests/fakes/bot_target.py, where each cites Render's docs); the transport errors are met for
real in tests/checks/test_deadlines.py and test_faults.py.
"""

from __future__ import annotations

import httpx
import pytest

from checks.target import explain, is_waking_page, platform_of, render_502
from tests.fakes.bot_target import RENDER_502, RENDER_WAKING

URL = "https://clara-whatsapp.onrender.com/health"
HTML = {"content-type": "text/html; charset=utf-8"}


def answer(status: int, body: bytes = b"", **headers: str) -> httpx.Response:
    """A response to GET URL, as received (header names with '_' for '-')."""
    return httpx.Response(
        status,
        headers={k.replace("_", "-"): v for k, v in headers.items()},
        content=body,
        request=httpx.Request("GET", URL),
    )


RENDERS_502 = answer(502, RENDER_502, **HTML, rndr_id="0123", x_render_routing="no-server")


@pytest.mark.parametrize(
    ("response", "platform", "what", "hint", "transient"),
    [
        (
            RENDERS_502,
            "render",
            "502: Render's page, its edge could not reach the bot's process",
            "512 MB",
            True,
        ),
        (
            answer(503, RENDER_WAKING, **HTML, rndr_id="abc"),
            "render",
            "503: Render's page for a free instance that is waking up",
            "opsctl warmup",
            True,
        ),
        (
            answer(503, b"no instance", x_render_routing="suspend-by-user"),
            "render",
            "503: Render's own page, the request never reached the bot",
            "Render's dashboard",
            True,
        ),
        (
            answer(
                502,
                b"<html><head><title>502 Bad Gateway</title></head></html>",
                **HTML,
                server="nginx/1.25",
            ),
            "proxy",
            "502: a proxy's default page (nginx/1.25), not the bot",
            "is the bot running behind it",
            True,
        ),
        (
            answer(302, location="https://clara.example.org/health"),
            "",
            "302: redirected to https://clara.example.org/health",
            "use the URL it redirects to (https://clara.example.org/health) as base_url",
            False,
        ),
        (
            answer(301, location="/health/"),  # relative: resolved against the request's URL
            "",
            f"301: redirected to {URL}/",
            f"use the URL it redirects to ({URL}/) as base_url",
            False,
        ),
        (answer(404, b"not found"), "", f"404: no such route at {URL}", "is base_url", False),
        (answer(429), "", "429: the server asked to slow down", "run again later", True),
        (answer(408), "", "408: request timeout", "run again later", True),
        (answer(403), "", "403: the bot refused the request", "bot's logs", False),
        (answer(500, b"Internal Server Error"), "", "500: the bot's own error", "traceback", True),
        (
            answer(503, b'{"status": "degraded"}'),
            "",
            "503: the bot says it is not ready",
            "/status/warmup",
            True,
        ),
    ],
)
def test_each_answer_has_its_cause(
    response: httpx.Response, platform: str, what: str, hint: str, transient: bool
) -> None:
    cause = explain(response)
    assert platform_of(response) == platform
    assert (cause.what, cause.transient) == (what, transient)
    assert hint in cause.hint


def test_only_renders_waking_page_is_a_waking_page() -> None:
    assert is_waking_page(answer(503, RENDER_WAKING, **HTML, rndr_id="abc"))
    assert not is_waking_page(RENDERS_502)
    # The bot's own 503 names a waking-like word: still the bot, not Render.
    assert not is_waking_page(answer(503, b"<html>waking up</html>", **HTML))


def test_a_render_502_names_the_memory_when_known() -> None:
    assert (
        "(its /metrics said 498 MB of the plan's 512 MB)"
        in render_502("498 MB of the plan's 512 MB").hint
    )
