"""What the bot remembers between messages (MessageSid replies, per-sender counts): one interface,
in this process by default, in Redis when REDIS_URL is set (issue 18)."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from bot.replies import ReplyCache
from bot.settings import Settings

REPLY_TTL_SEC = 6 * 3600
"""How long a MessageSid's reply is kept: Twilio's retries and replays come well within it."""
REPEAT_WAIT_SEC = 14.0
"""How long a repeat waits for the first attempt's reply: Twilio gives up at 15 s (11205)."""
RATE_WINDOW_SEC = 60
# A dead Redis costs each request at most this per call (connect, then each reply), and after a
# failure the store leaves Redis alone for DOWN_RECHECK_SEC: requests do not each pay it.
REDIS_TIMEOUT_SEC = 0.5
DOWN_RECHECK_SEC = 5.0
KEY_PREFIX = "clara:"
_PENDING = "\x00pending"
"""The value of a MessageSid's key while its first attempt computes (a reply is never this)."""
_POLL_SEC = 0.05

log = logging.getLogger("clara.store")


class StoreDown(Exception):
    """The shared store does not answer and DEDUPE_ON_STORE_DOWN=closed: answer 503."""


class Store(ABC):
    """MessageSid dedupe and per-sender rate limiting, whatever keeps them."""

    kind: str
    """'memory' or 'redis', as /health names it."""

    @abstractmethod
    def get_or_compute(self, message_sid: str, compute: Callable[[], str]) -> tuple[str, bool]:
        """(reply, computed_now): `compute` runs once per MessageSid while it is kept, even
        when repeats arrive at once; a repeat gets the first's reply. StoreDown when closed."""

    @abstractmethod
    def allow(self, sender: str) -> bool:
        """Count one message of `sender`; False once it is over the limit of this minute."""

    @abstractmethod
    def problem(self) -> str:
        """Why the store is not working as configured, in fixed words; '' when it is."""


class FixedWindow:
    """Per-key counts in fixed one-minute windows, in this process (bounded: old windows go)."""

    def __init__(
        self, limit: int, window_sec: int = RATE_WINDOW_SEC, clock: Callable[[], float] = time.time
    ) -> None:
        self._limit = limit
        self._window = window_sec
        self._clock = clock
        self._lock = threading.Lock()
        self._current = -1
        self._counts: dict[str, int] = {}

    def allow(self, key: str) -> bool:
        """Count one hit of `key`; False past the limit (always True when the limit is 0)."""
        if self._limit <= 0:
            return True
        window = int(self._clock() // self._window)
        with self._lock:
            if window != self._current:  # a new minute: every count starts again
                self._current, self._counts = window, {}
            count = self._counts.get(key, 0) + 1
            self._counts[key] = count
        return count <= self._limit


class MemoryStore(Store):
    """One process's memory: today's behaviour, nothing to install, lost on restart."""

    kind = "memory"

    def __init__(self, rate_limit: int, clock: Callable[[], float] = time.time) -> None:
        self._replies = ReplyCache(ttl_sec=REPLY_TTL_SEC, wait_sec=REPEAT_WAIT_SEC)
        self._rate = FixedWindow(rate_limit, clock=clock)

    def get_or_compute(self, message_sid: str, compute: Callable[[], str]) -> tuple[str, bool]:
        """See Store."""
        return self._replies.get_or_compute(message_sid, compute)

    def allow(self, sender: str) -> bool:
        """See Store."""
        return self._rate.allow(sender)

    def problem(self) -> str:
        """Never any: this process is up when it answers."""
        return ""


def sender_key(sender: str) -> str:
    """A sender as a Redis key part: hashed, so the keys hold no phone number."""
    return hashlib.sha256(sender.encode()).hexdigest()[:24]


class RedisStore(Store):
    """Redis, shared by every instance: SET NX EX claims a MessageSid, INCR counts a sender.

    When Redis does not answer, the rate limit and (DEDUPE_ON_STORE_DOWN=open) the dedupe fall
    back to this process's memory, so the bot keeps answering, each message at most once per
    instance; `closed` raises StoreDown instead."""

    kind = "redis"

    def __init__(
        self,
        client: Any,
        rate_limit: int,
        fail_open: bool = True,
        on_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._redis = client
        self._limit = rate_limit
        self._fail_open = fail_open
        self._on_error = on_error
        self._clock = clock
        self._sleep = sleep
        self._local = MemoryStore(rate_limit, clock=clock)
        self._down = False
        self._down_until = 0.0
        self._down_reason = ""

    # --- the store's health ----------------------------------------------------------------

    def _failed(self, exc: Exception) -> None:
        self._on_error()
        # The exception's class only (ConnectionError, TimeoutError, AuthenticationError...):
        # its text may name the host, and the class says enough to act on.
        self._down_reason = f"Redis (REDIS_URL) unavailable: {type(exc).__name__}; " + (
            "MessageSid dedupe and the rate limit per instance only"
            if self._fail_open
            else "new messages answered 503 (DEDUPE_ON_STORE_DOWN=closed)"
        )
        if not self._down:  # one line when it goes, not one per request
            self._down = True
            log.warning("%s", self._down_reason)
        self._down_until = time.monotonic() + DOWN_RECHECK_SEC

    def _known_down(self) -> bool:
        return time.monotonic() < self._down_until

    def problem(self) -> str:
        """'' once Redis answers a PING; the reason while it does not."""
        if self._known_down():
            return self._down_reason
        try:
            self._redis.ping()
        except Exception as exc:  # redis-py raises RedisError, and OSError from some sockets
            self._failed(exc)
            return self._down_reason
        self._answered()
        return ""

    def _answered(self) -> None:
        if self._down:  # one line when it comes back
            self._down = False
            log.warning("Redis (REDIS_URL) answers again: the shared store is used again")

    # --- MessageSid dedupe --------------------------------------------------------------------

    def get_or_compute(self, message_sid: str, compute: Callable[[], str]) -> tuple[str, bool]:
        """See Store."""
        if not self._known_down():
            try:
                found = self._shared(message_sid, compute)
            except _RedisFailed as failed:
                self._failed(failed.cause)
            else:
                self._answered()
                return found
        if not self._fail_open:
            raise StoreDown(self._down_reason)
        return self._local.get_or_compute(message_sid, compute)

    def _shared(self, message_sid: str, compute: Callable[[], str]) -> tuple[str, bool]:
        key = f"{KEY_PREFIX}sid:{message_sid}"
        deadline = time.monotonic() + REPEAT_WAIT_SEC
        while True:
            # The claim outlives a repeat's wait, and expires if this instance dies computing:
            # the next retry then computes.
            if _call(self._redis.set, key, _PENDING, nx=True, ex=int(REPEAT_WAIT_SEC * 2)):
                return self._compute_claimed(key, compute), True
            value = _call(self._redis.get, key)
            if value is not None and value != _PENDING:
                return str(value), False
            if time.monotonic() >= deadline:
                # The first attempt is stuck: answer rather than leave Twilio waiting.
                return compute(), False
            if value is not None:  # still computing elsewhere (None: it failed, claim again)
                self._sleep(_POLL_SEC)

    def _compute_claimed(self, key: str, compute: Callable[[], str]) -> str:
        try:
            reply = compute()
        except BaseException:
            _quietly(self._redis.delete, key)  # a failed attempt is not remembered
            raise
        try:
            _call(self._redis.set, key, reply, ex=REPLY_TTL_SEC)
        except _RedisFailed as failed:  # answered all the same; the claim expires
            self._failed(failed.cause)
        return reply

    # --- the rate limit -----------------------------------------------------------------------

    def allow(self, sender: str) -> bool:
        """See Store: one counter per sender and minute, INCR then EXPIRE in one transaction."""
        if self._limit <= 0:
            return True
        if not self._known_down():
            window = int(self._clock() // RATE_WINDOW_SEC)
            key = f"{KEY_PREFIX}rate:{sender_key(sender)}:{window}"
            try:
                pipe = self._redis.pipeline(transaction=True)
                pipe.incr(key)
                pipe.expire(key, RATE_WINDOW_SEC * 2)
                count, _ = pipe.execute()
            except Exception as exc:
                self._failed(exc)
            else:
                self._answered()
                return int(count) <= self._limit
        return self._local.allow(sender)


class _RedisFailed(Exception):
    """A Redis call failed; `cause` is redis-py's exception."""

    def __init__(self, cause: Exception) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _call(method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """A Redis call whose failure is told apart from the failure of `compute` around it."""
    try:
        return method(*args, **kwargs)
    except Exception as exc:
        raise _RedisFailed(exc) from exc


def _quietly(method: Callable[..., Any], *args: Any) -> None:
    # The claim expires by itself, and compute's own error is the one to raise.
    with contextlib.suppress(Exception):
        method(*args)


def redis_client(url: str) -> Any:
    """redis-py's client for REDIS_URL: short timeouts, no retries (the store falls back)."""
    import redis  # only when REDIS_URL is set: the default bot never loads it
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SEC,
        socket_connect_timeout=REDIS_TIMEOUT_SEC,
        retry=Retry(NoBackoff(), 0),
        decode_responses=True,
    )


def open_store(settings: Settings, on_error: Callable[[], None] = lambda: None) -> Store:
    """The store the settings ask for: Redis when REDIS_URL is set, else this process."""
    if not settings.redis_url:
        return MemoryStore(settings.rate_limit_per_minute)
    return RedisStore(
        redis_client(settings.redis_url),
        settings.rate_limit_per_minute,
        fail_open=settings.dedupe_on_store_down == "open",
        on_error=on_error,
    )
