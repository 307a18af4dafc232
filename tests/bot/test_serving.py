"""bot/serving.py's pieces alone: the body's deadline socket and which bodies end a connection."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from bot.serving import DeadlineSocket, body_exceeds_limit
from bot.webhook import MAX_BODY_BYTES


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def test_each_read_waits_only_for_what_remains(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    now = [100.0]
    expired: list[bool] = []
    sock = DeadlineSocket(
        server, 100.3, on_expiry=lambda: expired.append(True), clock=lambda: now[0]
    )
    client.sendall(b"abc")
    assert sock.recv(10) == b"abc"
    assert server.gettimeout() is None  # the worker's own setting is back after each read
    now[0] = 100.2
    with pytest.raises(TimeoutError):
        sock.recv(10)  # nothing comes: the read gives up after the 0.1 s left
    assert expired == [True] and sock.expired


def test_a_read_past_the_deadline_fails_at_once(pair: tuple[socket.socket, socket.socket]) -> None:
    server, client = pair
    client.sendall(b"late")
    sock = DeadlineSocket(server, 5.0, on_expiry=lambda: None, clock=lambda: 6.0)
    with pytest.raises(TimeoutError):
        sock.recv(10)
    assert sock.fileno() == server.fileno()  # everything else is the socket's own


@pytest.mark.parametrize(
    ("headers", "exceeds"),
    [
        ([("CONTENT-LENGTH", str(MAX_BODY_BYTES))], False),
        ([("CONTENT-LENGTH", str(MAX_BODY_BYTES + 1))], True),
        ([("TRANSFER-ENCODING", "chunked")], True),
        ([("HOST", "bot")], False),
    ],
)
def test_bodies_the_server_may_not_read_to_the_end(
    headers: list[tuple[str, str]], exceeds: bool
) -> None:
    assert body_exceeds_limit(headers) is exceeds
