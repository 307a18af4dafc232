"""Two gunicorn bots (the Dockerfile's command) sharing one real Redis: what scaling out needs."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

from bot.webhook import RATE_LIMITED
from opsctl.devserver import DevServer
from tests.bot.test_http import metric, post_form, twiml
from tests.bot.test_store import fresh_minute
from tests.conftest import RedisServer, message_sid, signed_headers, whatsapp_form
from tests.loopback import TLS

SPANISH = "¿Cómo pido el ingreso mínimo vital?"


def send(url: str, label: str, body: str = SPANISH) -> httpx.Response:
    form = whatsapp_form(body, sid=message_sid(label))
    return post_form(url, form, signed_headers(form))


def answered(*urls: str) -> float:
    """Messages the bots' answerers handled, all bots together."""
    return sum(
        metric(url, "clara_cache_hits_total") + metric(url, "clara_cache_misses_total")
        for url in urls
    )


def duplicates(*urls: str) -> float:
    return sum(metric(url, "clara_webhook_duplicates_total") for url in urls)


def test_two_bots_process_a_message_sid_once(
    start_bot: Callable[..., DevServer], redis_server: RedisServer
) -> None:
    env = {"REDIS_URL": redis_server.url}
    urls = [start_bot(env).url, start_bot(env).url]
    with ThreadPoolExecutor(10) as pool:
        responses = list(pool.map(lambda n: send(urls[n % 2], "shared"), range(10)))
    assert {r.status_code for r in responses} == {200}
    assert len({r.text for r in responses}) == 1
    assert answered(*urls) == 1
    assert duplicates(*urls) == 9


def test_a_restart_does_not_forget(
    start_bot: Callable[..., DevServer], redis_server: RedisServer
) -> None:
    env = {"REDIS_URL": redis_server.url}
    first = start_bot(env)
    before = send(first.url, "restart")
    first.stop()
    second = start_bot(env)
    after = send(second.url, "restart")
    assert after.status_code == 200 and after.text == before.text
    assert answered(second.url) == 0
    assert duplicates(second.url) == 1


def test_the_rate_limit_holds_across_both_bots(
    start_bot: Callable[..., DevServer], redis_server: RedisServer
) -> None:
    env = {"REDIS_URL": redis_server.url, "RATE_LIMIT_PER_MINUTE": "3"}
    urls = [start_bot(env).url, start_bot(env).url]
    fresh_minute()
    bodies = [twiml(send(urls[n % 2], f"limited-{n}"))[0] for n in range(5)]
    assert [b == RATE_LIMITED["es"] for b in bodies] == [False, False, False, True, True]
    assert sum(metric(url, "clara_webhook_rate_limited_total") for url in urls) == 2


def test_redis_killed_leaves_the_bot_answering_and_health_degraded(
    start_bot: Callable[..., DevServer], redis_server: RedisServer
) -> None:
    server = start_bot({"REDIS_URL": redis_server.url})
    assert httpx.get(server.url + "/health", verify=TLS).json()["status"] == "ok"
    assert send(server.url, "before-kill").status_code == 200
    redis_server.stop()
    started = time.monotonic()
    response = send(server.url, "after-kill")
    assert response.status_code == 200
    assert twiml(response)[0].startswith("Ingreso Mínimo Vital (IMV)")
    assert time.monotonic() - started < 3
    health = httpx.get(server.url + "/health", verify=TLS)
    assert health.status_code == 200
    assert health.json()["status"] == "degraded"
    assert "Redis (REDIS_URL) unavailable" in health.json()["reason"]
    for n in range(3):
        assert send(server.url, f"still-down-{n}").status_code == 200
    log = "\n".join(server.lines)
    assert "Traceback" not in log
    assert log.count("Redis (REDIS_URL) unavailable: ConnectionError") == 1, log[-2000:]
    assert redis_server.url not in log
