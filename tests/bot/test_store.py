"""One behavioural suite, run against both stores: this process's memory and a real Redis."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from bot.settings import SettingsError, load_settings
from bot.store import MemoryStore, RedisStore, Store, StoreDown, redis_client
from bot.webhook import RATE_LIMITED
from tests.bot.test_llm import GEMINI_ENV, FakeGemini
from tests.bot.test_llm import gemini as gemini  # a fixture, re-exported here
from tests.conftest import RedisServer, message_sid, signed_headers, whatsapp_form

STORES = ("memory", "redis")


@pytest.fixture(params=STORES)
def store_env(request: pytest.FixtureRequest) -> Iterator[dict[str, str]]:
    """The environment that picks each store: nothing for memory, REDIS_URL for a real Redis."""
    if request.param == "memory":
        yield {}
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    yield {"REDIS_URL": server.url}


def post(app: Flask, body: str, sid: str, sender: str = "whatsapp:+34612345678") -> tuple[int, str]:
    form = whatsapp_form(body, sid=message_sid(sid), From=sender)
    response = app.test_client().post("/webhook", data=form, headers=signed_headers(form))
    return response.status_code, response.get_data(as_text=True)


def reply_text(twiml: str) -> str:
    return ElementTree.fromstring(twiml).findtext("Message/Body") or ""


def metric(app: Flask, name: str) -> float:
    text = app.test_client().get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name:
                return float(sample.value)
    return 0.0


def answered(app: Flask) -> float:
    """Messages the answerer handled (every one is a cache hit or a miss)."""
    return metric(app, "clara_cache_hits_total") + metric(app, "clara_cache_misses_total")


def fresh_minute() -> None:
    """Wait out the end of a minute: the rate limit counts in fixed one-minute windows."""
    if time.time() % 60 > 55:
        time.sleep(60 - time.time() % 60 + 0.1)


# --- the suite both stores pass ---------------------------------------------------------


def test_health_names_the_store(make_app: Callable[..., Flask], store_env: dict[str, str]) -> None:
    body = make_app(store_env).test_client().get("/health").json
    assert body["status"] == "ok" and "reason" not in body
    assert body["components"]["store"] == ("redis" if store_env else "memory")


def test_repeated_message_sid_is_answered_once(
    make_app: Callable[..., Flask], store_env: dict[str, str]
) -> None:
    app = make_app(store_env)
    first = post(app, "¿Cómo pido el ingreso mínimo vital?", "repeat")
    again = post(app, "¿Cómo pido el ingreso mínimo vital?", "repeat")
    assert first == again and first[0] == 200
    assert reply_text(first[1]).startswith("Ingreso Mínimo Vital (IMV)")
    assert answered(app) == 1
    assert metric(app, "clara_webhook_duplicates_total") == 1


def test_concurrent_same_message_sid_is_processed_once(
    make_app: Callable[..., Flask], store_env: dict[str, str], gemini: FakeGemini
) -> None:
    gemini.delay = 0.5  # the first attempt is still asking the LLM when the others arrive
    app = make_app({**store_env, **GEMINI_ENV}, GEMINI_URL=gemini.url)
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda _: post(app, "¿Qué tiempo hace hoy?", "race"), range(6)))
    assert {code for code, _ in results} == {200}
    assert {reply_text(twiml) for _, twiml in results} == {"Respuesta del modelo."}
    assert len(gemini.requests) == 1
    assert metric(app, "clara_webhook_duplicates_total") == 5


def test_rate_limit_holds_and_answers_politely_in_the_senders_language(
    make_app: Callable[..., Flask], store_env: dict[str, str]
) -> None:
    app = make_app({**store_env, "RATE_LIMIT_PER_MINUTE": "2"})
    fresh_minute()
    spanish = "¿Cómo pido el ingreso mínimo vital?"
    for n in range(2):
        code, twiml = post(app, spanish, f"limit-{n}")
        assert code == 200 and reply_text(twiml).startswith("Ingreso Mínimo Vital")
    code, twiml = post(app, spanish, "limit-2")
    assert code == 200 and reply_text(twiml) == RATE_LIMITED["es"]
    code, twiml = post(app, "Bonjour, comment obtenir la carte sanitaire ?", "limit-3")
    assert code == 200 and reply_text(twiml) == RATE_LIMITED["fr"]
    # A retry of an answered message is not a new message: same answer, nothing counted.
    assert reply_text(post(app, spanish, "limit-0")[1]).startswith("Ingreso Mínimo Vital")
    # Another sender has a limit of its own.
    code, twiml = post(app, spanish, "other-sender", sender="whatsapp:+33612345678")
    assert reply_text(twiml).startswith("Ingreso Mínimo Vital")
    assert metric(app, "clara_webhook_rate_limited_total") == 2
    assert answered(app) == 3


def test_no_rate_limit_by_default(
    make_app: Callable[..., Flask], store_env: dict[str, str]
) -> None:
    app = make_app(store_env)
    replies = [reply_text(post(app, "Hola, ¿qué es el padrón?", f"many-{n}")[1]) for n in range(15)]
    assert RATE_LIMITED["es"] not in replies
    assert metric(app, "clara_webhook_rate_limited_total") == 0


# --- the Store interface itself, both implementations -------------------------------------


@pytest.fixture
def make_store(store_env: dict[str, str]) -> Callable[..., Store]:
    """make_store(rate_limit, clock): a MemoryStore, or a RedisStore on the test's Redis."""

    def build(rate_limit: int = 0, clock: Callable[[], float] = time.time) -> Store:
        if not store_env:
            return MemoryStore(rate_limit, clock=clock)
        return RedisStore(redis_client(store_env["REDIS_URL"]), rate_limit, clock=clock)

    return build


def test_store_repeats_wait_for_the_first_and_get_its_reply(
    make_store: Callable[..., Store],
) -> None:
    store, calls, release = make_store(), [], threading.Event()

    def slow() -> str:
        calls.append(1)
        release.wait(5)
        return "the reply"

    with ThreadPoolExecutor(5) as pool:
        futures = [pool.submit(store.get_or_compute, "SM-wait", slow) for _ in range(5)]
        time.sleep(0.3)  # every repeat is now waiting on the first
        release.set()
        results = [f.result(10) for f in futures]
    assert len(calls) == 1
    assert sorted(results) == [("the reply", False)] * 4 + [("the reply", True)]


def test_store_forgets_a_failed_attempt(make_store: Callable[..., Store]) -> None:
    store = make_store()

    def fail() -> str:
        raise RuntimeError("the LLM call broke")

    with pytest.raises(RuntimeError):
        store.get_or_compute("SM-fail", fail)
    assert store.get_or_compute("SM-fail", lambda: "second try") == ("second try", True)
    assert store.get_or_compute("SM-fail", lambda: "third") == ("second try", False)


def test_store_counts_each_sender_in_its_own_minute(make_store: Callable[..., Store]) -> None:
    now = [1_000_000 * 60.0 + 1]  # a window's start: the counts below all fall in it
    store = make_store(rate_limit=2, clock=lambda: now[0])
    assert [store.allow("whatsapp:+34600000001") for _ in range(3)] == [True, True, False]
    assert store.allow("whatsapp:+34600000002") is True
    now[0] += 60  # the next minute
    assert store.allow("whatsapp:+34600000001") is True
    assert make_store(rate_limit=0).allow("whatsapp:+34600000001") is True


# --- Redis configured but down --------------------------------------------------------------


def test_redis_down_answers_and_health_says_degraded(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    app = make_app({"REDIS_URL": redis_server.url, "RATE_LIMIT_PER_MINUTE": "5"})
    assert post(app, "¿Qué es el padrón?", "before")[0] == 200
    redis_server.stop()
    started = time.monotonic()
    code, twiml = post(app, "¿Cómo pido el ingreso mínimo vital?", "during")
    assert code == 200 and reply_text(twiml).startswith("Ingreso Mínimo Vital")
    assert time.monotonic() - started < 3
    # Fail open: dedupe still holds within this process.
    assert post(app, "¿Cómo pido el ingreso mínimo vital?", "during") == (code, twiml)
    assert metric(app, "clara_webhook_duplicates_total") == 1
    assert metric(app, "clara_store_errors_total") >= 1
    health = app.test_client().get("/health")
    assert health.status_code == 200  # still serving: Render must keep routing to it
    assert health.json["status"] == "degraded"
    assert health.json["reason"].startswith("Redis (REDIS_URL) unavailable: ConnectionError")
    assert redis_server.url not in health.get_data(as_text=True)
    # Redis back: healthy again once the store looks again.
    redis_server.start(redis_server.port)
    deadline = time.monotonic() + 10
    while app.test_client().get("/health").json["status"] != "ok":
        assert time.monotonic() < deadline, "/health stayed degraded with Redis back"
        time.sleep(0.2)


def test_redis_down_with_dedupe_closed_answers_503_with_retry_after(
    make_app: Callable[..., Flask], redis_server: RedisServer
) -> None:
    app = make_app({"REDIS_URL": redis_server.url, "DEDUPE_ON_STORE_DOWN": "closed"})
    redis_server.stop()
    form = whatsapp_form("¿Qué es el padrón?", sid=message_sid("closed"))
    response = app.test_client().post("/webhook", data=form, headers=signed_headers(form))
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert "Traceback" not in response.get_data(as_text=True)
    assert metric(app, "clara_webhook_store_unavailable_total") == 1
    assert answered(app) == 0


def test_a_dead_redis_port_costs_a_request_little() -> None:
    """Nothing listens: each call fails at once, and the store then leaves Redis alone."""
    store = RedisStore(redis_client("redis://127.0.0.1:1/0"), rate_limit=1, fail_open=False)
    started = time.monotonic()
    with pytest.raises(StoreDown):
        store.get_or_compute("SM1", lambda: "reply")
    assert store.allow("whatsapp:+34600000000") is True  # this process's count
    assert store.allow("whatsapp:+34600000000") is False
    assert store.problem().startswith("Redis (REDIS_URL) unavailable")
    assert time.monotonic() - started < 2


# --- settings -------------------------------------------------------------------------------


def test_redis_url_password_is_a_secret_and_never_in_errors() -> None:
    url = "redis://:s3cret-pass@red-abc:6379"  # pragma: allowlist secret
    settings = load_settings({"REDIS_URL": url})
    assert url in settings.secret_values and "s3cret-pass" in settings.secret_values
    with pytest.raises(SettingsError) as caught:
        load_settings({"REDIS_URL": "http://:s3cret-pass@red-abc:6379"})  # pragma: allowlist secret
    assert "s3cret-pass" not in str(caught.value) and "REDIS_URL" in str(caught.value)


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("RATE_LIMIT_PER_MINUTE", "ten"),
        ("RATE_LIMIT_PER_MINUTE", "-1"),
        ("DEDUPE_ON_STORE_DOWN", "x"),
    ],
)
def test_bad_store_settings_are_refused_by_name(name: str, raw: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: raw})
