"""The MessageSid reply cache: one computation per message, even under concurrency."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bot.replies import ReplyCache


def test_repeat_gets_the_same_reply_without_recomputing() -> None:
    cache = ReplyCache()
    calls = []

    def compute() -> str:
        calls.append(1)
        return f"reply {len(calls)}"

    assert cache.get_or_compute("SM1", compute) == ("reply 1", True)
    assert cache.get_or_compute("SM1", compute) == ("reply 1", False)
    assert cache.get_or_compute("SM2", compute) == ("reply 2", True)
    assert len(calls) == 2


def test_concurrent_repeats_compute_once() -> None:
    cache = ReplyCache()
    release = threading.Event()
    calls = []

    def compute() -> str:
        calls.append(1)
        release.wait(5)
        return "answer"

    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(cache.get_or_compute, "SM1", compute) for _ in range(8)]
        release.set()
        results = [f.result(10) for f in futures]
    assert len(calls) == 1
    assert sorted(fresh for _, fresh in results) == [False] * 7 + [True]
    assert {reply for reply, _ in results} == {"answer"}


def test_entries_expire_and_are_bounded() -> None:
    now = [0.0]
    cache = ReplyCache(max_entries=2, ttl_sec=10, clock=lambda: now[0])
    cache.get_or_compute("a", lambda: "1")
    now[0] = 11
    assert cache.get_or_compute("a", lambda: "2") == ("2", True)
    cache.get_or_compute("b", lambda: "b")
    cache.get_or_compute("c", lambda: "c")  # evicts 'a'
    assert cache.get_or_compute("a", lambda: "3") == ("3", True)


def test_a_failed_computation_is_not_remembered() -> None:
    cache = ReplyCache()

    def boom() -> str:
        raise RuntimeError("llm down")

    with pytest.raises(RuntimeError):
        cache.get_or_compute("SM1", boom)
    assert cache.get_or_compute("SM1", lambda: "ok") == ("ok", True)
