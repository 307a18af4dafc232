"""Bounded metric labels: no request, however made up, adds a sample to /metrics (issue 14)."""

from __future__ import annotations

import http.client
import random
import string
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from prometheus_client import CollectorRegistry
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import LABELS, Metrics, _labels, status_label
from opsctl.devserver import DevServer
from tests.loopback import TLS

HISTOGRAM_LABELS = frozenset({"le"})
"""prometheus-client's own: a histogram's buckets, fixed when the metric is built."""


def labelled_metrics(registry: CollectorRegistry) -> Iterator[MetricWrapperBase]:
    """Every metric with labels on the registry, however it was built."""
    # prometheus-client keeps no public list of a registry's collectors.
    for collector in list(registry._collector_to_names):
        if isinstance(collector, MetricWrapperBase) and collector._labelnames:
            yield collector


def samples(text: str) -> list[tuple[str, dict[str, str]]]:
    """(name, labels) of every sample of a /metrics text."""
    return [
        (sample.name, sample.labels)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def out_of_bounds(app: Flask, text: str) -> list[str]:
    """Every label value of the text that its label's bound does not hold."""
    bounds = {name: label.values(app) for name, label in LABELS.items()}
    return [
        f"{name}{{{key}={value!r}}}"
        for name, labels in samples(text)
        for key, value in labels.items()
        if key not in HISTOGRAM_LABELS and value not in bounds[key]
    ]


def made_up_methods(rng: random.Random, count: int) -> list[str]:
    """Methods gunicorn lets through: upper-case letters, 3 to 20 of them."""
    letters = string.ascii_uppercase
    return ["".join(rng.choices(letters, k=rng.randint(3, 20))) for _ in range(count)]


def test_every_label_of_every_metric_has_a_bound(make_app: Callable[..., Flask]) -> None:
    """Fails when a metric gains a label LABELS does not bound, however the metric was built."""
    app = make_app()
    metrics: Metrics = app.extensions["clara"].metrics
    found = {metric._name: metric._labelnames for metric in labelled_metrics(metrics.registry)}
    assert found, "no labelled metric found: the walk is broken"
    unbounded = {name: [n for n in names if n not in LABELS] for name, names in found.items()}
    assert {name: names for name, names in unbounded.items() if names} == {}
    for name, label in LABELS.items():
        values = label.values(app)
        assert values and len(values) < 100, name


def test_a_label_without_a_bound_is_refused() -> None:
    with pytest.raises(ValueError, match=r"without a bound in bot\.metrics\.LABELS: \['path'\]"):
        _labels("route", "path")


@pytest.mark.parametrize(
    ("code", "label"),
    [(200, "200"), (404, "404"), (201, "2xx"), (418, "4xx"), (599, "5xx"), (99, "other")],
)
def test_status_label(code: int, label: str) -> None:
    assert status_label(code) == label


def test_made_up_requests_stay_in_their_bounds_in_process(make_app: Callable[..., Flask]) -> None:
    app = make_app()
    client = app.test_client()
    rng = random.Random(14)  # noqa: S311 - seeded: the same made-up requests every run
    for method in made_up_methods(rng, 50):
        client.open(f"/{rng.randbytes(8).hex()}", method=method)
        client.open("/health", method=method)
        client.open("/static/cache/imv_es.mp3", method=method)
    for path in ("/webhook", "/metrics", "/nope", "/static/cache/x.mp3", "/static/cache//x"):
        for method in ("GET", "HEAD", "POST", "DELETE", "TRACE"):
            client.open(path, method=method)
    text = client.get("/metrics").get_data(as_text=True)
    assert out_of_bounds(app, text) == []
    routes = {labels.get("route") for name, labels in samples(text)}
    assert "unmatched" in routes and "/static/cache/<path:name>" in routes


def scrape(url: str) -> str:
    return httpx.get(url + "/metrics", timeout=10, verify=TLS).text


def attack(url: str, rng: random.Random, count: int) -> None:
    """`count` requests with made-up methods, on made-up paths and on every route, unsigned."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    paths = ["/health", "/webhook", "/metrics", "/static/cache/imv_es.mp3"]
    for index, method in enumerate(made_up_methods(rng, count)):
        path = paths[index % len(paths)] if index % 2 else f"/{rng.randbytes(6).hex()}"
        connection.request(method, path, headers={"Content-Length": "0"})
        response = connection.getresponse()
        response.read()
        assert response.status in (404, 405), (method, path, response.status)
        if response.will_close:
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    connection.close()


@pytest.mark.timeout(60)
def test_made_up_methods_and_paths_add_no_samples_under_gunicorn(
    start_bot: Callable[..., DevServer], make_app: Callable[..., Flask]
) -> None:
    """The bot under its real gunicorn: 2 x 400 distinct methods and paths; the second 400
    add not one sample, and every label value is within its bound."""
    server = start_bot()
    rng = random.Random(1414)  # noqa: S311 - seeded: the same made-up requests every run
    scrape(server.url)  # /metrics counts itself: its own sample exists before the first count
    attack(server.url, rng, 400)
    first = scrape(server.url)
    attack(server.url, rng, 400)
    second = scrape(server.url)
    assert len(samples(second)) == len(samples(first)) < 200
    assert out_of_bounds(make_app(), second) == []
    assert len(second) < 20_000
