"""gunicorn's hooks around each request: a deadline for its body, a clean close when cut short."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NoReturn

from gunicorn import util

from bot.limits import MAX_BODY_BYTES

# A request's body must have arrived this long after its headers (gevent's worker gives the
# request line and headers `keepalive` seconds: gunicorn.conf.py). Twilio's forms are about
# 1 KB and Render's proxy forwards a request whole; only a stalled or trickling client waits.
BODY_DEADLINE_SEC = 10.0
# When a response ends the connection, what the client still sends is read and dropped for up
# to this long (and this much) before closing: closing with unread bytes makes the kernel send
# a reset, which can destroy the response before the client reads it (RFC 9112 section 9.6).
LINGER_SEC = 2.0
LINGER_MAX_BYTES = 1024 * 1024


class DeadlineSocket:
    """A socket whose recv() calls, all together, wait no later than one deadline."""

    def __init__(
        self,
        sock: Any,
        deadline: float,
        on_expiry: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.wrapped = sock
        self.expired = False
        self._deadline = deadline
        self._on_expiry = on_expiry
        self._clock = clock
        self._prior_timeout = sock.gettimeout()

    def recv(self, size: int) -> bytes:
        """At most `size` bytes, waiting only for what is left before the deadline."""
        remaining = self._deadline - self._clock()
        if remaining <= 0:
            self._expire()
        # The way gunicorn bounds its own drain of an unread body (gunicorn/http/parser.py
        # finish_body): a timeout per read, set to the time that remains.
        self.wrapped.settimeout(remaining)
        try:
            data: bytes = self.wrapped.recv(size)
        except TimeoutError:
            self._expire()
        finally:
            self.wrapped.settimeout(self._prior_timeout)
        return data

    def _expire(self) -> NoReturn:
        self.expired = True
        self._on_expiry()
        # An OSError: werkzeug's input stream turns it into a 400 (ClientDisconnected), and
        # gunicorn marks the body failed, so the connection is never reused.
        raise TimeoutError(f"the request body did not arrive within {BODY_DEADLINE_SEC:g}s")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)


def body_exceeds_limit(headers: list[tuple[str, str]]) -> bool:
    """Whether the server may stop reading this body before its end: too long, or unknown."""
    for name, value in headers:
        # gunicorn accepts a Transfer-Encoding only when it ends in chunked: no length known.
        if name == "TRANSFER-ENCODING":
            return True
        if name == "CONTENT-LENGTH" and int(value) > MAX_BODY_BYTES:
            return True
    return False


def pre_request(worker: Any, req: Any) -> None:
    """Before the app: bound the body's reads; say `Connection: close` if it may go unread."""
    if body_exceeds_limit(req.headers):
        # The app answers 413 without reading more than MAX_BODY_BYTES, so the rest of the body
        # would be taken for the next request: the connection must end with this response.
        # The app cannot say so: gunicorn drops its hop-by-hop headers (gunicorn/http/wsgi.py
        # Response.process_headers); the request's own flag is what gunicorn's reply honours.
        req.force_close()
    unreader: Any = getattr(req, "unreader", None)  # HTTP/1 requests read from a socket
    sock = getattr(unreader, "sock", None)
    if sock is not None:
        deadline = time.monotonic() + BODY_DEADLINE_SEC
        unreader.sock = DeadlineSocket(sock, deadline, on_expiry=req.force_close)


def post_request(worker: Any, req: Any, environ: dict[str, Any], resp: Any) -> None:
    """After the response: lift the body deadline; end a closing connection cleanly."""
    unreader: Any = getattr(req, "unreader", None)
    sock = getattr(unreader, "sock", None)
    if isinstance(sock, DeadlineSocket):
        unreader.sock = sock.wrapped  # the next request's headers have keepalive's deadline
        if sock.expired:
            worker.log.warning(
                "a request body did not arrive within %gs: answered and closed", BODY_DEADLINE_SEC
            )
    if resp is not None and resp.headers_sent and resp.should_close():
        # Half-close first (the client reads the response, then EOF), drain, then close.
        util.close_graceful(resp.sock, timeout=LINGER_SEC, max_drain=LINGER_MAX_BYTES)
    # Take turns. A greenlet runs until it would block, and gevent's sockets block only when
    # no data is there yet (https://www.gevent.org/intro.html#cooperative-multitasking): a
    # keep-alive client whose next request is already waiting is served again and again
    # while the others wait (under wrk, p50 1.6 ms but p95 1.2 s and 2-second timeouts).
    # The worker monkey-patches time.sleep into gevent.sleep, whose sleep(0) lets every other
    # ready greenlet run first; under a thread worker it only releases the GIL.
    time.sleep(0)
