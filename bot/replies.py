"""Replies kept by MessageSid: a redelivered message gets the same answer and runs once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class _Pending:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: str | None = None


class ReplyCache:
    """A bounded, time-limited map MessageSid -> reply; concurrent repeats wait for the first."""

    def __init__(
        self,
        max_entries: int = 2048,
        ttl_sec: float = 6 * 3600,
        wait_sec: float = 14.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._entries: OrderedDict[str, tuple[float, _Pending]] = OrderedDict()
        self._lock = threading.Lock()
        self._max = max_entries
        self._ttl = ttl_sec
        # Twilio gives up after 15 s (error 11205): a repeat waits for the first no longer.
        self._wait = wait_sec
        self._clock = clock

    def get_or_compute(self, key: str, compute: Callable[[], str]) -> tuple[str, bool]:
        """(reply, computed_now). `compute` runs at most once per key while the key is kept."""
        now = self._clock()
        with self._lock:
            self._expire(now)
            found = self._entries.get(key)
            if found is None:
                pending = _Pending()
                self._entries[key] = (now, pending)
                if len(self._entries) > self._max:
                    self._entries.popitem(last=False)
            else:
                pending = found[1]
        if found is not None:
            if pending.done.wait(self._wait) and pending.reply is not None:
                return pending.reply, False
            # The first attempt failed or is stuck: answer rather than leave Twilio waiting.
            return compute(), False
        try:
            pending.reply = compute()
        except BaseException:
            with self._lock:
                self._entries.pop(key, None)
            raise
        finally:
            pending.done.set()
        return pending.reply, True

    def _expire(self, now: float) -> None:
        while self._entries:
            oldest_key, (created, _) = next(iter(self._entries.items()))
            if now - created <= self._ttl:
                break
            del self._entries[oldest_key]
