"""Slow, idle and oversize clients against the bot under the Dockerfile's gunicorn (issue 14)."""

from __future__ import annotations

import runpy
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

import httpx
import pytest

from bot.serving import BODY_DEADLINE_SEC
from bot.webhook import MAX_BODY_BYTES
from tests.conftest import REPO_ROOT, signed_headers, whatsapp_form
from tests.loopback import TLS

ATTACKERS = 64
ANSWER_WITHIN_SEC = 2.0
# gevent's worker gives a request line and headers (and an idle connection's first byte)
# `keepalive` seconds (gunicorn/workers/ggevent.py timeout_ctx); the body has BODY_DEADLINE_SEC.
HEADER_DEADLINE_SEC = float(runpy.run_path(str(REPO_ROOT / "gunicorn.conf.py"))["keepalive"])
FORM_TYPE = "application/x-www-form-urlencoded"

pytestmark = pytest.mark.timeout(30)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def slow_body_head(length: int) -> bytes:
    """A webhook POST's headers, signed-looking so the app starts reading the body."""
    return (
        f"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: {FORM_TYPE}\r\n"
        f"X-Twilio-Signature: c2lnbmF0dXJl\r\nContent-Length: {length}\r\n\r\n"
    ).encode("ascii")


@contextmanager
def attackers(url: str, kind: str, count: int) -> Iterator[list[socket.socket]]:
    """`count` connections held open the `kind` way; all closed on the way out."""
    socks: list[socket.socket] = []
    stop = threading.Event()
    drip: threading.Thread | None = None
    try:
        for _ in range(count):
            sock = socket.create_connection(address(url), timeout=5)
            socks.append(sock)
            if kind == "slow body":  # headers of a POST within the limit, then nothing
                sock.sendall(slow_body_head(60_000) + b"Body=")
            elif kind == "slowloris":
                sock.sendall(b"G")
        if kind == "slowloris":  # headers a byte at a time, never finished
            line = b"ET /health HTTP/1.1\r\nHost: bot\r\nX-Padding: " + b"a" * 10_000

            def trickle() -> None:
                for byte in line:
                    for sock in socks:
                        with suppress(OSError):
                            sock.send(bytes([byte]))
                    if stop.wait(0.1):
                        return

            drip = threading.Thread(target=trickle, daemon=True)
            drip.start()
        yield socks
    finally:
        stop.set()
        if drip is not None:
            drip.join(5)
        for sock in socks:
            sock.close()


def still_waiting(sock: socket.socket) -> bool:
    """True while the server has neither answered nor closed this connection."""
    sock.setblocking(False)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def signed_webhook(url: str) -> httpx.Response:
    form = whatsapp_form("¿Cómo pido el ingreso mínimo vital?", sid="SM" + secrets.token_hex(16))
    return httpx.post(
        url + "/webhook", data=form, headers=signed_headers(form), timeout=10, verify=TLS
    )


@pytest.mark.parametrize("kind", ["slowloris", "slow body", "idle"])
def test_health_and_webhook_answer_while_64_slow_clients_hold_connections(
    bot_url: str, kind: str
) -> None:
    with attackers(bot_url, kind, ATTACKERS) as socks:
        time.sleep(0.5)  # let the server take them all in
        health, health_sec = timed(lambda: httpx.get(bot_url + "/health", timeout=10, verify=TLS))
        webhook, webhook_sec = timed(lambda: signed_webhook(bot_url))
        held = sum(still_waiting(sock) for sock in socks)
    assert health.status_code == 200 and health_sec < ANSWER_WITHIN_SEC, health_sec
    assert webhook.status_code == 200 and webhook_sec < ANSWER_WITHIN_SEC, webhook_sec
    assert held == ATTACKERS, f"only {held} of {ATTACKERS} {kind} connections were still held"


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a full response: {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = sock.recv(65536)
        assert chunk, "connection closed inside the response body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def cut_after(sock: socket.socket, started: float) -> tuple[bytes, float]:
    """What the server sent until it closed the connection, and when it closed it.

    A reset counts as the close: the server's kernel answers bytes the client trickles after
    the close with RST, which recv reports instead of the end of the stream."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data, time.monotonic() - started


def test_slow_requests_are_cut_at_their_read_deadlines(bot_url: str) -> None:
    """Headers within keepalive (5 s), the body within BODY_DEADLINE_SEC (10 s) of them, even
    from a client that keeps sending a byte at a time (a timeout per read would never fire)."""
    # Upper bounds with room for a loaded machine (the suite runs beside it): what is tested
    # is that the deadline fires, not early and not never.
    slack = 5.0
    timeout = BODY_DEADLINE_SEC + 2 * slack
    idle = socket.create_connection(address(bot_url), timeout=timeout)
    loris = socket.create_connection(address(bot_url), timeout=timeout)
    body = socket.create_connection(address(bot_url), timeout=timeout)
    stop = threading.Event()

    def trickle() -> None:
        while not stop.wait(0.5):
            for sock, byte in ((loris, b"a"), (body, b"b")):
                with suppress(OSError):
                    sock.send(byte)

    started = time.monotonic()
    loris.sendall(b"GET /health HTTP/1.1\r\nHost: bot\r\nX-Padding: ")
    body.sendall(slow_body_head(60_000) + b"Body=")
    dripping = threading.Thread(target=trickle, daemon=True)
    dripping.start()
    try:
        results = {
            name: cut_after(sock, started)
            for name, sock in [("idle", idle), ("loris", loris), ("body", body)]
        }
    finally:
        stop.set()
        dripping.join(5)
        for sock in (idle, loris, body):
            sock.close()
    for name in ("idle", "loris"):
        data, after = results[name]
        assert data == b"" and HEADER_DEADLINE_SEC - 0.5 < after < HEADER_DEADLINE_SEC + slack, (
            name,
            data,
            after,
        )
    data, after = results["body"]
    assert BODY_DEADLINE_SEC - 0.5 < after < BODY_DEADLINE_SEC + slack, after
    assert data.startswith(b"HTTP/1.1 400 "), data[:80]
    assert b"\r\nConnection: close\r\n" in data


def oversize_request(body_length: int, send: int) -> bytes:
    """A signed-looking webhook POST declaring `body_length` bytes, `send` of them included."""
    return slow_body_head(body_length) + b"a" * send


@pytest.mark.parametrize(
    ("declared", "sent"),
    [
        (2 * MAX_BODY_BYTES, 2 * MAX_BODY_BYTES),  # the whole oversize body
        (1024 * 1024, 0),  # only the headers of a 1 MB POST, then nothing
    ],
    ids=["whole body", "headers only"],
)
def test_413_says_close_and_ends_the_connection_cleanly(
    bot_url: str, declared: int, sent: int
) -> None:
    with socket.create_connection(address(bot_url), timeout=5) as sock:
        started = time.monotonic()
        sock.sendall(oversize_request(declared, sent))
        status, headers, _ = read_response(sock)
        assert status == 413
        assert headers["connection"] == "close"
        # An end of stream, not a reset, and at once: the server half-closes after the answer.
        assert sock.recv(65536) == b""
        assert time.monotonic() - started < 1.5
    # A fresh connection is served as usual.
    assert httpx.get(bot_url + "/health", timeout=5, verify=TLS).status_code == 200


def test_oversize_chunked_body_gets_413_and_close(bot_url: str) -> None:
    with socket.create_connection(address(bot_url), timeout=5) as sock:
        head = (
            f"POST /webhook HTTP/1.1\r\nHost: bot\r\nContent-Type: {FORM_TYPE}\r\n"
            "X-Twilio-Signature: c2lnbmF0dXJl\r\nTransfer-Encoding: chunked\r\n\r\n"
        ).encode("ascii")
        chunk = b"%x\r\n%s\r\n" % (1024, b"a" * 1024)
        sock.sendall(head + chunk * (MAX_BODY_BYTES // 1024 + 8) + b"0\r\n\r\n")
        status, headers, _ = read_response(sock)
        assert (status, headers["connection"]) == (413, "close")
        assert sock.recv(65536) == b""


def test_keep_alive_still_serves_the_next_request(bot_url: str) -> None:
    """The hooks close only what must close: an ordinary connection carries many requests."""
    with socket.create_connection(address(bot_url), timeout=5) as sock:
        for _ in range(3):
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: bot\r\n\r\n")
            status, headers, _ = read_response(sock)
            assert (status, headers["connection"]) == (200, "keep-alive")
