"""Replies kept by MessageSid: a redelivered message gets the same answer and runs once."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class _Pending:
    """A reply being computed. Its Event is made only when a repeat comes to wait for it:
    most messages come once, and an Event per message was 2 % of a request (issue 17)."""

    def __init__(self) -> None:
        self.reply: str | None = None
        self.finished = False
        self.done: threading.Event | None = None


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
        waiting_on: threading.Event | None = None
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
                if not pending.finished and pending.done is None:
                    pending.done = threading.Event()
                waiting_on = pending.done
        if found is not None:
            finished = waiting_on is None or waiting_on.wait(self._wait)
            if finished and pending.reply is not None:
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
            with self._lock:  # no repeat makes an Event after this
                pending.finished = True
                waiters = pending.done
            if waiters is not None:
                waiters.set()
        return pending.reply, True

    def _expire(self, now: float) -> None:
        while self._entries:
            oldest_key, (created, _) = next(iter(self._entries.items()))
            if now - created <= self._ttl:
                break
            del self._entries[oldest_key]
