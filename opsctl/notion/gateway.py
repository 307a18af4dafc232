"""Every Notion request goes through here: paced, retried within a bound, errors made one line."""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import httpx
from notion_client import APIResponseError, Client, RequestTimeoutError
from notion_client.client import RetryOptions
from notion_client.errors import HTTPResponseError

from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode
from opsctl.tls import tls_context

API_ORIGIN = "https://api.notion.com"
# The SDK's methods that only read; every other one (create, update, append, delete) writes.
READ_METHODS = frozenset({"retrieve", "query", "list", "me"})
# An answer lost, or a gateway's error: Notion may still be working on the request.
UNFINISHED_STATUS = frozenset({502, 504})
# 409 conflict_error is not here: a write that conflicts is redone from a fresh read (sync.py).
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 529})


class NotionError(OpsctlError):
    """Notion could not be reached or kept failing: the changes stay in the outbox."""

    exit_code = ExitCode.UNREACHABLE


class NotionSetupError(NotionError):
    """The token, the sharing or the schema is wrong: a person has to fix it."""

    exit_code = ExitCode.USAGE


class NotionNotFound(NotionSetupError):
    """403/404: the object is gone, in the trash or not shared with the integration."""


class NotionConflict(NotionError):
    """409 conflict_error: someone wrote the same object; read again and redo."""


class NotionRefused(NotionSetupError):
    """400: Notion refused this request for what it holds (a value, a name); resending it as it
    is will never work, but other changes may go through."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class NotionMaybeDone(NotionError):
    """A create timed out or got a 5xx: it may have happened; look before creating again."""

    def __init__(self, message: str, may_land_later: bool) -> None:
        super().__init__(message)
        self.may_land_later = may_land_later
        """No answer, or a gateway's (502, 504): Notion may still be working on it, so a row
        not there yet may appear later; an answered 500/503/529 has finished."""


class Pacing(Protocol):
    """Decides when the next request may start."""

    def wait(self) -> None:
        """Block until the next request may start, and claim that slot."""

    def hold(self, seconds: float) -> None:
        """Start nothing for `seconds` (a 429's Retry-After)."""


@dataclass
class Pacer:
    """Spaces request starts at least 1/rate apart; Retry-After pushes the next start later.

    Notion allows about 3 requests per second per integration on average
    (https://developers.notion.com/reference/request-limits).
    """

    rate: float = 3.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    _next: float = field(default=0.0, init=False)

    def wait(self) -> None:
        """Block until the next request may start, and claim that slot."""
        now = self.clock()
        if self._next > now:
            self.sleep(self._next - now)
            now = self._next
        # 5 % over the interval: the server sees our starts with some jitter, and a window of
        # one second there must still hold no more than `rate` of them.
        self._next = now + 1.05 / self.rate

    def hold(self, seconds: float) -> None:
        """Start nothing for `seconds` (a 429's Retry-After)."""
        self._next = max(self._next, self.clock() + seconds)


# A stored next start further ahead than this is not believed (a clock set back, a bad file).
MAX_PACE_AHEAD_S = 300.0


@dataclass
class SharedPacer:
    """Pacer whose next start lives in a file that every opsctl process of one integration on
    this machine shares (under flock): Notion's limit is per integration, not per process.

    A token bucket of one token, refilled every 1.05/rate s: two syncs at once take turns
    rather than each sending `rate` requests per second.
    """

    path: Path
    rate: float = 3.0
    clock: Callable[[], float] = time.time  # wall-clock: the processes compare their times
    sleep: Callable[[float], None] = time.sleep

    def wait(self) -> None:
        """Block until the next request may start, and claim that slot."""
        with self._state() as state:
            now = self.clock()
            start = max(now, state.get("next", 0.0))
            state["next"] = start + 1.05 / self.rate
        if start > now:
            self.sleep(start - now)  # outside the lock: the slot is ours, others queue behind

    def hold(self, seconds: float) -> None:
        """Start nothing for `seconds` (a 429's Retry-After): every process holds back."""
        with self._state() as state:
            state["next"] = max(state.get("next", 0.0), self.clock() + seconds)

    @contextmanager
    def _state(self) -> Iterator[dict[str, float]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.seek(0)
            try:
                state = {"next": float(json.loads(handle.read() or "{}").get("next", 0.0))}
            except (ValueError, TypeError, AttributeError):
                state = {"next": 0.0}  # a torn or foreign file: start afresh
            if state["next"] > self.clock() + MAX_PACE_AHEAD_S:
                state["next"] = 0.0
            yield state
            handle.seek(0)
            handle.truncate()
            handle.write(json.dumps(state))
            handle.flush()


def pace_file(token: str, environ: Mapping[str, str]) -> Path:
    """Where the pace of this integration is shared: per user, in the runtime (or temp) folder,
    named by a digest of the token (never the token itself)."""
    digest = hashlib.sha256(f"opsctl notion pace {token}".encode()).hexdigest()[:16]
    runtime = environ.get("XDG_RUNTIME_DIR") or os.path.join(
        tempfile.gettempdir(), f"opsctl-{os.getuid()}"
    )
    return Path(runtime) / "opsctl" / f"notion-pace-{digest}.json"


def notion_client(token: str, base_url: str | None, timeout_s: float) -> Client:
    """notion-client with its own retries off (ours know which calls are safe to repeat)."""
    origin = (base_url or API_ORIGIN).rstrip("/")
    # The SDK appends /v1/ itself: an origin ending in /v1 would give /v1/v1/.
    origin = origin.removesuffix("/v1")
    logger = logging.getLogger("opsctl.notion.sdk")
    if not logger.handlers:  # without a logger of ours the SDK adds a console handler per client
        logger.addHandler(logging.NullHandler())
    logger.propagate = False
    return Client(
        client=httpx.Client(verify=tls_context()),  # the SDK sets its URL, timeout and headers
        auth=token,
        base_url=origin,
        timeout_ms=int(timeout_s * 1000),
        retry=RetryOptions(max_retries=0),
        logger=logger,
    )


def _status(error: Exception) -> int:
    return int(getattr(error, "status", 0) or 0)


def _retry_after(error: Exception) -> float | None:
    headers = getattr(error, "headers", None) or {}
    try:
        return max(0.0, float(headers.get("retry-after", "")))
    except (TypeError, ValueError):
        return None


def notion_code(error: Exception) -> str:
    """Notion's own error code ('validation_error'), never the SDK's enum name: read from the
    body, since the SDK keeps codes it does not know (529 service_overload) only there."""
    try:
        body = json.loads(str(getattr(error, "body", "") or ""))
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return str(body["code"])
    code = getattr(error, "code", "")
    return str(getattr(code, "value", code) or "")


def notion_message(error: Exception) -> str:
    """Notion's message for an error answer (the body's), else the exception's text."""
    try:
        body = json.loads(str(getattr(error, "body", "") or ""))
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("message"), str):
        return str(body["message"])
    return str(error) or "no message"


class NotionGateway:
    """Calls notion-client: paced, retried with backoff within a bound, errors translated."""

    def __init__(
        self,
        client: Client,
        pacer: Pacing | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.pacer: Pacing = pacer or Pacer()
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        """How long one call may sit through 429s before its changes wait for the next sync."""
        self.clock = clock
        # Every request sent is one of: a write Notion accepted, a read it answered, or one
        # that failed (an error answer, including 429, or no answer); so the three add up.
        self.requests = 0
        self.writes = 0
        self.reads = 0
        self.failed = 0

    def send(self, what: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """A call that is safe to repeat (GET, query, a PATCH of the same values)."""
        return self._call(what, call, True, kwargs)

    def create(self, what: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """A POST that creates: repeated only when Notion surely did not act on it."""
        return self._call(what, call, False, kwargs)

    def _call(
        self, what: str, call: Callable[..., Any], repeatable: bool, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        delay, failures = self.backoff_s, 0
        limited_since: float | None = None
        while True:
            try:
                return self._once(call, kwargs)
            except APIResponseError as error:
                if _status(error) == 429:  # refused before anything happened: safe to repeat
                    # A storm of 429s is waited out, bounded by the time really spent.
                    wait = _retry_after(error) or self.backoff_s
                    now = self.clock()
                    limited_since = now if limited_since is None else limited_since
                    if now - limited_since + wait > self.max_wait_s:
                        raise self._limited(what, wait, now - limited_since) from None
                    self.pacer.hold(wait)
                    continue
                if _status(error) not in RETRYABLE_STATUS:
                    raise _translate(what, error) from None
                failure: Exception = error
            except HTTPResponseError as error:  # 502 HTML, 529 and other non-JSON answers
                if _status(error) not in RETRYABLE_STATUS:
                    raise _translate(what, error) from None
                failure = error
            except RequestTimeoutError as error:
                failure = error
            except httpx.ConnectError as error:  # never reached Notion: nothing happened
                failure = error
            except httpx.TransportError as error:
                failure = error
            failures += 1
            if not repeatable and not isinstance(failure, httpx.ConnectError):
                unfinished = _status(failure) in UNFINISHED_STATUS or not _status(failure)
                raise NotionMaybeDone(f"{what}: {_describe(failure)}", unfinished) from None
            if failures == self.attempts:
                raise _unreachable(what, failure) from None
            self.pacer.hold(delay)
            delay *= 2

    def _once(self, call: Callable[..., Any], kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """One paced request, counted as a write, a read or a failure."""
        self.pacer.wait()
        self.requests += 1
        try:
            answer = dict(call(**kwargs))
        except Exception:
            self.failed += 1
            raise
        if getattr(call, "__name__", "") in READ_METHODS:
            self.reads += 1
        else:
            self.writes += 1
        return answer

    def _limited(self, what: str, wait: float, waited: float) -> NotionError:
        """The 429s outlast the bound: say what Notion asked for and what was really waited."""
        keep = "the changes are kept for the next sync"
        if waited == 0:
            return NotionError(
                f"Notion answered 429 rate_limited to {what} and asked to wait {wait:g} s "
                f"(Retry-After), longer than the {self.max_wait_s:g} s a sync waits; {keep}"
            )
        return NotionError(
            f"Notion kept answering 429 rate_limited to {what} for {waited:.1f} s (and asked "
            f"for {wait:g} s more), past the {self.max_wait_s:g} s a sync waits; {keep}"
        )


def _describe(error: Exception) -> str:
    if isinstance(error, RequestTimeoutError):
        return "timed out"
    if isinstance(error, httpx.TransportError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return f"HTTP {_status(error)} {notion_code(error)}".strip()


def _unreachable(what: str, error: Exception) -> NotionError:
    return NotionError(
        f"Notion could not be reached for {what} ({_describe(error)}); "
        "the changes are kept for the next sync"
    )


def _translate(what: str, error: Exception) -> NotionError:
    """One line a person can act on."""
    status, code = _status(error), notion_code(error)
    message = notion_message(error)
    if status == 401:
        return NotionSetupError("Notion rejected the token: check NOTION_TOKEN")
    if status in (403, 404):
        return NotionNotFound(
            f"{what}: Notion says {code or status}: not found or not shared with the "
            "integration; fix: open it in Notion, ... > Connections, and add the integration "
            "NOTION_TOKEN belongs to"
        )
    if status == 409:
        return NotionConflict(f"{what}: conflict_error")
    if status == 400:  # a bad id or a value Notion refuses: repeating will not help
        return NotionRefused(f"{what}: Notion refused it ({code}): {message}", code)
    return NotionError(f"{what}: Notion answered {status} {code}: {message}")
