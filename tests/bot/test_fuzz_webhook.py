"""Property-based fuzzing of /webhook: random forms, headers, encodings and sizes; never a 5xx."""

from __future__ import annotations

import time
from collections.abc import Iterator
from urllib.parse import urlencode

import httpx
import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from bot import create_app
from tests.conftest import BASE_ENV, PUBLIC, signed_headers, whatsapp_form
from tests.loopback import TLS

ALLOWED = {200, 400, 403, 413}
TWILIO_KEYS = [
    "MessageSid",
    "AccountSid",
    "From",
    "To",
    "Body",
    "NumMedia",
    "MediaUrl0",
    "MediaContentType0",
    "ProfileName",
    "WaId",
]

any_text = st.text(st.characters(codec="utf-8"), max_size=300)
keys = st.one_of(st.sampled_from(TWILIO_KEYS), st.text(min_size=0, max_size=20))
forms = st.dictionaries(keys, any_text, max_size=12)
# HTTP forbids leading and trailing blanks in a header value (h11 refuses to send them).
header_values = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=80
)
content_types = st.sampled_from(
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "application/x-www-form-urlencoded; charset=latin-1",
        "multipart/form-data; boundary=xyz",
        "application/json",
        "text/plain",
        "",
    ]
)
encodings = st.sampled_from(["utf-8", "latin-1", "utf-16"])


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, dict[str, str]]:
    """A body and headers: sometimes a correctly signed WhatsApp form, sometimes junk."""
    kind = draw(st.sampled_from(["signed", "form", "bytes", "huge"]))
    headers: dict[str, str] = {}
    if kind == "signed":
        form = {
            **whatsapp_form(
                draw(any_text),
                sid="SM" + draw(st.text("0123456789abcdef", min_size=1, max_size=40)),
            ),
            **draw(forms),
        }
        headers.update(signed_headers(form))
        body = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif kind == "form":
        body = urlencode(draw(forms), encoding=draw(encodings), errors="replace").encode()
        headers["Content-Type"] = draw(content_types)
        headers["X-Twilio-Signature"] = draw(header_values)
    elif kind == "bytes":
        body = draw(st.binary(max_size=2000))
        headers["Content-Type"] = draw(content_types)
        if draw(st.booleans()):
            headers["X-Twilio-Signature"] = draw(header_values)
    else:
        body = b"Body=" + b"a" * draw(st.integers(60_000, 120_000))
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        headers["X-Twilio-Signature"] = draw(header_values)
    for name in ("X-Forwarded-Proto", "X-Request-Id", "Host"):
        if draw(st.booleans()):
            headers[name] = draw(header_values)
    return body, headers


@pytest.fixture(scope="module")
def fuzz_client() -> FlaskClient:
    app = create_app({"TESTING": True, "ENVIRON": {**BASE_ENV, "LOG_LEVEL": "CRITICAL"}})
    deadline = time.monotonic() + 10
    while app.test_client().get("/health").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.02)
    return app.test_client()


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_webhook_never_answers_5xx_in_process(
    fuzz_client: FlaskClient, request: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = request
    response = fuzz_client.post("/webhook", data=body, headers=headers, base_url=PUBLIC)
    event(f"status {response.status_code}")
    assert response.status_code in ALLOWED, (response.status_code, headers)
    if response.status_code == 200:
        assert response.mimetype == "application/xml"
        assert b"<Body>" in response.data


@pytest.fixture(scope="module")
def http() -> Iterator[httpx.Client]:
    # A new connection per request: a body over 64 KiB (or chunked) ends its connection after
    # the answer, with `Connection: close` (bot/serving.py pre_request), as it should.
    with httpx.Client(
        timeout=10, limits=httpx.Limits(max_keepalive_connections=0), verify=TLS
    ) as client:
        yield client


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests())
def test_webhook_never_answers_5xx_under_gunicorn(
    bot_url: str, http: httpx.Client, request: tuple[bytes, dict[str, str]]
) -> None:
    body, headers = request
    headers.pop("Host", None)  # keep the connection's own Host; a garbage one is tested in-process
    response = http.post(bot_url + "/webhook", content=body, headers=headers)
    event(f"status {response.status_code}")
    assert response.status_code in ALLOWED, (response.status_code, headers)
