"""Every Notion request goes through here: paced, retried within a bound, errors made one line."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from notion_client import APIResponseError, Client, RequestTimeoutError
from notion_client.client import RetryOptions
from notion_client.errors import HTTPResponseError

from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode

API_ORIGIN = "https://api.notion.com"
# 409 conflict_error is not here: a write that conflicts is redone from a fresh read (sync.py).
RETRYABLE_STATUS = frozenset({500, 502, 503, 504, 529})


class NotionError(OpsctlError):
    """Notion could not be reached or kept failing: the changes stay in the outbox."""

    exit_code = ExitCode.UNREACHABLE


class NotionSetupError(NotionError):
    """The token, the sharing or the schema is wrong: a person has to fix it."""

    exit_code = ExitCode.USAGE


class NotionConflict(NotionError):
    """409 conflict_error: someone wrote the same object; read again and redo."""


class NotionMaybeDone(NotionError):
    """A create timed out or got a 5xx: it may have happened; look before creating again."""


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


class NotionGateway:
    """Calls notion-client: paced, retried with backoff within a bound, errors translated."""

    def __init__(
        self,
        client: Client,
        pacer: Pacer | None = None,
        attempts: int = 4,
        backoff_s: float = 0.5,
        max_wait_s: float = 60.0,
    ) -> None:
        self.client = client
        self.pacer = pacer or Pacer()
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        """How long one call may sit through 429s before its changes wait for the next sync."""
        self.requests = 0
        self.writes = 0

    def send(self, what: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """A call that is safe to repeat (GET, query, a PATCH of the same values)."""
        return self._call(what, call, True, kwargs)

    def create(self, what: str, call: Callable[..., Any], **kwargs: Any) -> dict[str, Any]:
        """A POST that creates: repeated only when Notion surely did not act on it."""
        return self._call(what, call, False, kwargs)

    def _call(
        self, what: str, call: Callable[..., Any], repeatable: bool, kwargs: Mapping[str, Any]
    ) -> dict[str, Any]:
        delay, failures, limited_s = self.backoff_s, 0, 0.0
        while True:
            self.pacer.wait()
            self.requests += 1
            if getattr(call, "__name__", "") in ("create", "update"):  # the SDK's write methods
                self.writes += 1
            try:
                return dict(call(**kwargs))
            except APIResponseError as error:
                if _status(error) == 429:  # refused before anything happened: safe to repeat
                    # A storm of 429s is waited out, bounded by time rather than by count.
                    wait = _retry_after(error) or self.backoff_s
                    limited_s += wait
                    if limited_s > self.max_wait_s:
                        raise NotionError(
                            f"Notion kept answering 429 rate_limited to {what} for over "
                            f"{self.max_wait_s:g} s; the changes are kept for the next sync"
                        ) from None
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
                raise NotionMaybeDone(f"{what}: {_describe(failure)}") from None
            if failures == self.attempts:
                raise _unreachable(what, failure) from None
            self.pacer.hold(delay)
            delay *= 2


def _describe(error: Exception) -> str:
    if isinstance(error, RequestTimeoutError):
        return "timed out"
    if isinstance(error, httpx.TransportError):
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    code = getattr(error, "code", "") or ""
    return f"HTTP {_status(error)} {code}".strip()


def _unreachable(what: str, error: Exception) -> NotionError:
    return NotionError(
        f"Notion could not be reached for {what} ({_describe(error)}); "
        "the changes are kept for the next sync"
    )


def _translate(what: str, error: Exception) -> NotionError:
    """One line a person can act on."""
    status, code = _status(error), str(getattr(error, "code", "") or "")
    message = str(error) or "no message"
    if status == 401:
        return NotionSetupError("Notion rejected the token: check NOTION_TOKEN")
    if status in (403, 404):
        return NotionSetupError(
            f"{what}: Notion says {code or status}: not found or not shared with the "
            "integration; fix: open it in Notion, ... > Connections, and add the integration "
            "NOTION_TOKEN belongs to"
        )
    if status == 409:
        return NotionConflict(f"{what}: conflict_error")
    if status == 400:  # a bad id or a value Notion refuses: repeating will not help
        return NotionSetupError(f"{what}: Notion refused it ({code}): {message}")
    return NotionError(f"{what}: Notion answered {status} {code}: {message}")
