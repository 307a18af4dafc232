"""Shared fixtures: the bot as a Flask test app and under its real gunicorn command."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient

from bot import create_app
from bot.signature import sign
from opsctl.devserver import DevServer

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DIR = Path(os.environ.get("SHARED_DIR", REPO_ROOT.parent / "shared"))

# We are inside this repository's test run: the tests gate must not start it again from
# within (checks/testsuite.py), and the dependency audit reads the offline advisories.
os.environ.setdefault("OPSCTL_INSIDE_TEST_RUN", "1")
if (SHARED_DIR / "advisories").is_dir():
    os.environ.setdefault("OPSCTL_ADVISORIES", str(SHARED_DIR / "advisories"))

TOKEN = "test-auth-token-0123456789abcdef"
PUBLIC = "https://bot.example.org"
BASE_ENV = {
    "TWILIO_ACCOUNT_SID": "AC00000000000000000000000000000000",  # pragma: allowlist secret
    "TWILIO_AUTH_TOKEN": TOKEN,
    "PUBLIC_BASE_URL": PUBLIC,
    "AUDIO_BASE_URL": "https://cdn.example.org/audio",
    "LOG_LEVEL": "INFO",
    "OBSERVABILITY_ON": "true",
}


def config_copy(folder: Path) -> Path:
    """The repository's opsctl.toml in `folder` (evidence, status and ledger land there),
    still judging this repository."""
    text = (REPO_ROOT / "opsctl.toml").read_text()
    assert '\nroot = "."\n' in text
    path = folder / "opsctl.toml"
    path.write_text(text.replace('\nroot = "."\n', f'\nroot = "{REPO_ROOT}"\n'))
    return path


def whatsapp_form(body: str = "Hola", sid: str = "SM" + "0" * 32, **extra: str) -> dict[str, str]:
    """A form as Twilio posts it for an inbound WhatsApp message."""
    return {
        "MessageSid": sid,
        "AccountSid": BASE_ENV["TWILIO_ACCOUNT_SID"],
        "From": "whatsapp:+34612345678",
        "To": "whatsapp:+14155238886",
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "Ana",
        "WaId": "34612345678",
        **extra,
    }


def signed_headers(form: Mapping[str, str], url: str = PUBLIC + "/webhook") -> dict[str, str]:
    """The X-Twilio-Signature Twilio would send for this form at this URL."""
    return {"X-Twilio-Signature": sign(TOKEN, url, form)}


def wait_ready(health_status: Callable[[], str], budget: float = 15.0) -> None:
    """Poll until the warm-up has finished: /health says 'ok' or 'degraded'."""
    deadline = time.monotonic() + budget
    while time.monotonic() < deadline:
        if health_status() in ("ok", "degraded"):
            return
        time.sleep(0.02)
    raise AssertionError("the bot did not finish warming up")


def http_health_status(url: str) -> Callable[[], str]:
    """The /health status of a bot served over HTTP."""
    return lambda: str(httpx.get(url + "/health", timeout=5).json()["status"])


@pytest.fixture
def make_app() -> Callable[..., Flask]:
    """Build a warmed-up test app: make_app(env_overrides, **config)."""

    def build(env: Mapping[str, str] | None = None, **config: Any) -> Flask:
        environ = {**BASE_ENV, **(env or {})}
        app = create_app({"TESTING": True, "ENVIRON": environ, **config})
        wait_ready(lambda: app.test_client().get("/health").json["status"])
        return app

    return build


@pytest.fixture
def client(make_app: Callable[..., Flask]) -> FlaskClient:
    """A test client of a warmed-up app with the base environment."""
    return make_app().test_client()


@pytest.fixture
def start_bot() -> Iterator[Callable[..., DevServer]]:
    """Start the bot under the Dockerfile's gunicorn command on 127.0.0.1:0."""
    servers: list[DevServer] = []

    def start(env: Mapping[str, str] | None = None, extra_args: str = "") -> DevServer:
        environ = {**os.environ, **BASE_ENV, **(env or {})}
        environ = {k: v for k, v in environ.items() if v is not None}
        server = DevServer(environ, port=0, extra_args=extra_args)
        servers.append(server)
        url = server.start()
        wait_ready(http_health_status(url))
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def bot_url() -> Iterator[str]:
    """One gunicorn bot shared by a module's read-mostly HTTP tests."""
    server = DevServer({**os.environ, **BASE_ENV}, port=0)
    url = server.start()
    wait_ready(http_health_status(url))
    yield url
    server.stop()


@pytest.fixture
def fake_notion() -> Iterator[Any]:
    """A fake Notion API on 127.0.0.1 for one test: a started tests.fakes.notion_api.FakeNotion."""
    # Imported here so that adding this fixture left the module's imports untouched.
    from tests.fakes.notion_api import FakeNotion

    fake = FakeNotion().start()
    yield fake
    fake.stop()
    assert not fake.crashes, "the fake Notion failed:\n" + "\n".join(fake.crashes)
