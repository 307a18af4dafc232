"""Shared fixtures: the bot as a Flask test app and under its real gunicorn command."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
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
from tests.loopback import TLS

REPO_ROOT = Path(__file__).resolve().parent.parent
# Data from outside the project (the full PyPA advisory database): only the
# optional test reads it, and skips naming this folder when it is absent.
SHARED_DIR = Path(os.environ.get("SHARED_DIR", REPO_ROOT.parent / "shared"))

# We are inside this repository's test run: the tests gate must not start it again from
# within (checks/testsuite.py).
os.environ.setdefault("OPSCTL_INSIDE_TEST_RUN", "1")
# The opsctl runs the tests start share one cache (the repository's own, where `opsctl verify`
# keeps it): the many end-to-end verifies of this repository then scan only the files they have
# not seen (checks/secrets.py); entries are keyed by content, so sharing cannot change a result.
os.environ.setdefault("OPSCTL_CACHE_DIR", str(REPO_ROOT / ".opsctl" / "cache"))
# The pytest runs the tests start (the tests gate on small repositories of their own) need
# neither hypothesis's plugin nor anyio's: they import ~1.7 s at every start (hypothesis
# imports itself whole for its terminal summary); without them a run takes 0.7 s, not 2.4 s.
os.environ.setdefault("PYTEST_ADDOPTS", "-p no:hypothesispytest -p no:anyio")

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


# A small OSV folder in the PyPA advisory database's layout, one case of checks/deps.py's
# matching each: hits, a withdrawn advisory, ranges that miss, last_affected, a versions list.
# Nothing here affects this repository's locked pins (its own audit must pass offline).
OSV_SNAPSHOT = "tests/conftest.py: a small OSV folder written for the test run"
OSV_ADVISORIES: dict[str, dict[str, Any]] = {
    # The ids and ranges of two real advisories (requests==2.19.0 is hit by both).
    "requests/PYSEC-2018-28": {
        "affected": [
            {
                "package": {"name": "requests", "ecosystem": "PyPI"},
                "ranges": [
                    # GIT ranges name commits: the audit must skip them.
                    {"type": "GIT", "events": [{"introduced": "0"}, {"fixed": "c45d7c4"}]},
                    {"type": "ECOSYSTEM", "events": [{"introduced": "0"}, {"fixed": "2.20.0"}]},
                ],
            }
        ],
        "aliases": ["CVE-2018-18074"],
    },
    "requests/PYSEC-2023-74": {
        "affected": [
            {
                "package": {"name": "requests", "ecosystem": "PyPI"},
                "ranges": [
                    {"type": "ECOSYSTEM", "events": [{"introduced": "2.3.0"}, {"fixed": "2.31.0"}]}
                ],
            }
        ],
        "aliases": ["CVE-2023-32681"],
    },
    # Withdrawn, and it would hit every requests (ours too): it must be ignored.
    "requests/PYSEC-2099-1": {
        "withdrawn": "2099-01-01T00:00:00Z",
        "affected": [
            {
                "package": {"name": "requests", "ecosystem": "PyPI"},
                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
            }
        ],
    },
    # Two ranges, both below our flask: looked at, not affected.
    "flask/PYSEC-2023-62": {
        "affected": [
            {
                "package": {"name": "Flask", "ecosystem": "PyPI"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [
                            {"introduced": "0"},
                            {"fixed": "2.2.5"},
                            {"introduced": "2.3.0"},
                            {"fixed": "2.3.2"},
                        ],
                    }
                ],
            }
        ],
    },
    # last_affected: up to and including 3.1.4; our jinja2 is later.
    "jinja2/PYSEC-2099-2": {
        "affected": [
            {
                "package": {"name": "jinja2", "ecosystem": "PyPI"},
                "ranges": [
                    {
                        "type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"last_affected": "3.1.4"}],
                    }
                ],
            }
        ],
    },
    # Only a versions list, no range.
    "gunicorn/PYSEC-2099-3": {
        "affected": [
            {"package": {"name": "gunicorn", "ecosystem": "PyPI"}, "versions": ["19.4.0", "19.5.0"]}
        ],
    },
}


def write_advisories(folder: Path) -> Path:
    """Write OSV_ADVISORIES as `vulns/<package>/<id>.yaml` under folder, with a SOURCE.txt."""
    import yaml

    for name, advisory in OSV_ADVISORIES.items():
        package, advisory_id = name.split("/")
        path = folder / "vulns" / package / f"{advisory_id}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump({"id": advisory_id, **advisory}, sort_keys=False))
    (folder / "SOURCE.txt").write_text(f"source: {OSV_SNAPSHOT}\n")
    return folder


@pytest.fixture(scope="session")
def offline_advisories(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The small OSV folder (written once per test process)."""
    return write_advisories(tmp_path_factory.mktemp("advisories"))


@pytest.fixture(scope="session", autouse=True)
def audit_offline(offline_advisories: Path) -> Iterator[None]:
    """Every opsctl run in the suite audits dependencies against the small folder, never PyPI.

    Set even when the caller exported OPSCTL_ADVISORIES (make does, to ../shared): the
    suite's outcome must not depend on data outside the project.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPSCTL_ADVISORIES", str(offline_advisories))
        yield


OPSCTL = [sys.executable, "-m", "opsctl.cli"]


def run_opsctl(
    *args: str,
    cwd: Path = REPO_ROOT,
    env: Mapping[str, str] | None = None,
    unset: tuple[str, ...] = ("NO_COLOR",),
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """`opsctl ARGS` as a user runs it, output captured: this environment over `env`, less the
    variables in `unset` (NO_COLOR by default, so colour follows the terminal, as for a user)."""
    environ = {k: v for k, v in os.environ.items() if k not in unset}
    return subprocess.run(
        [*OPSCTL, *args],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def config_copy(folder: Path) -> Path:
    """The repository's opsctl.toml in `folder` (evidence, status and ledger land there),
    still judging this repository."""
    text = (REPO_ROOT / "opsctl.toml").read_text()
    assert '\nroot = "."\n' in text
    path = folder / "opsctl.toml"
    path.write_text(text.replace('\nroot = "."\n', f'\nroot = "{REPO_ROOT}"\n'))
    return path


def message_sid(label: str) -> str:
    """A MessageSid in Twilio's shape (SM and 32 hex digits), the same for the same label: the
    bot refuses any other (bot/webhook.py)."""
    return "SM" + hashlib.sha256(label.encode()).hexdigest()[:32]


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
    return lambda: str(httpx.get(url + "/health", timeout=5, verify=TLS).json()["status"])


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


def process_alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie runs nothing; its reaper may not be us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


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


def pytest_configure(config: pytest.Config) -> None:
    """A pytest-xdist worker dies with its pytest, even a SIGKILLed one (checks/children.py)."""
    if hasattr(config, "workerinput"):  # only xdist workers have it
        from checks.children import die_with_parent

        die_with_parent()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """`-n auto`: one worker more than cores. Many tests wait (servers starting and stopping,
    keep-alive intervals), and a spare worker keeps the cores busy meanwhile (2 cores:
    99 s with 3 workers against 109 s with 2, same run)."""
    return (os.cpu_count() or 1) + 1


class RedisServer:
    """Debian's redis-server on 127.0.0.1, no persistence, in a folder of its own."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """REDIS_URL for the bot."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, port: int = 0) -> RedisServer:
        """Start on `port` (0: a free one, picked again if another process takes it first)."""
        for _ in range(5):
            self.port = port or _free_port()
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--bind",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                    "--dir",
                    str(self.folder),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._answers(deadline=time.monotonic() + 5):
                return self
            self.stop()
            if port:
                break
        raise AssertionError(f"redis-server did not start on 127.0.0.1:{self.port}")

    def _answers(self, deadline: float) -> bool:
        """True once the server on the port is ours: another test process may have taken the
        free port first, and then this one exits while the other's answers."""
        assert self.process is not None
        own = f"process_id:{self.process.pid}\r\n".encode()
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    sock.sendall(b"INFO server\r\n")
                    reply = b""
                    while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                        chunk = sock.recv(65536)
                        if not chunk:
                            break
                        reply += chunk
                    return own in reply
            except OSError:
                time.sleep(0.02)
        return False

    def stop(self) -> None:
        """Kill it (SIGKILL: Redis gone at once, as a crashed instance is)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A started redis-server of this test's own; skipped when Debian's redis-server is absent."""
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: apt-get install redis-server (.ci/run does)")
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
