"""Prometheus metrics for the bot, on a registry of the app's own (so tests can build many apps).

Every label has a bounded set of values: with the raw HTTP method as a label, 100,000 made-up
methods grew the worker by 90 MB and /metrics to 18 MB (issue 14; gunicorn accepts any
upper-case method of 3-20 letters, on any path, unsigned). `LABELS` names every label a metric
may carry with every value it can take, a metric is built only from labels named there, and
`request_labels` is the one place a request becomes label values.

Several gunicorn workers: PROMETHEUS_MULTIPROC_DIR (prometheus-client's own switch, read once as
the library is imported; gunicorn.conf.py names a fresh directory itself when it runs more than
one worker) makes every process write its values to files there, and /metrics serves their merge,
whichever worker answers (https://prometheus.github.io/client_python/multiprocess/). Counters and
histograms are summed over every worker that ever ran in this server's life, so a killed worker's
counts stay; gauges say how they merge (`multiprocess_mode`); the process metrics (resident
memory) are read for each live worker and carry its `pid`, a label bounded by the worker count.
Without the variable: one registry in this process, as before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum

from flask import Flask, Request, Response, g
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    values,
)
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.samples import Sample

from bot.context import this_request

MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client's variable: set, every process keeps its values in files in this folder."""
WORKERS = "clara_workers"

METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"}
)
"""RFC 9110's methods and PATCH (RFC 5789); any other method is counted as OTHER_METHOD."""
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"
"""A request no rule of the URL map matched (a 404, or a 405 for a method the rule lacks)."""
STATUSES = frozenset({200, 206, 304, 308, 400, 403, 404, 405, 413, 416, 500, 503})
"""The codes the bot answers; any other is counted by its class (2xx to 5xx)."""
STATUS_CLASSES = frozenset({"1xx", "2xx", "3xx", "4xx", "5xx"})
OTHER_STATUS = "other"
STATUS_VALUES = frozenset(map(str, STATUSES)) | STATUS_CLASSES | {OTHER_STATUS}


class Refusal(StrEnum):
    """Why /webhook refused a request: every value of the `reason` label."""

    UNCONFIGURED = "unconfigured"
    """No auth token: every request is refused (fail closed)."""
    MISSING = "missing"
    """No X-Twilio-Signature header."""
    INVALID = "invalid"
    """A signature that is not Twilio's for this URL, form and token (or SharedKey)."""
    NO_SHARED_KEY = "no_shared_key"
    """Signed with a Twilio SharedKey, and TWILIO_SHARED_KEY_SECRET is not set (500)."""
    MESSAGE_SID = "message_sid"
    """Signed, but MessageSid is not one SID of a message (400)."""
    ACCOUNT_SID = "account_sid"
    """Signed, but AccountSid is not one account SID (400)."""
    FROM = "from"
    """Signed, but From is not one WhatsApp address (400)."""
    TO = "to"
    """Signed, but To is not one WhatsApp address (400)."""
    OTHER_ACCOUNT = "other_account"
    """Signed, but for another account than TWILIO_ACCOUNT_SID (403)."""


@dataclass(frozen=True)
class Label:
    """A label metrics may carry, and the function giving its every value for an app."""

    name: str
    values: Callable[[Flask], frozenset[str]]


def _routes(app: Flask) -> frozenset[str]:
    """The rules of the app's URL map (fixed once the app is built), and UNMATCHED_ROUTE."""
    return frozenset(rule.rule for rule in app.url_map.iter_rules()) | {UNMATCHED_ROUTE}


LABELS: dict[str, Label] = {
    label.name: label
    for label in (
        Label("route", _routes),
        Label("method", lambda app: METHODS | {OTHER_METHOD}),
        Label("status", lambda app: STATUS_VALUES),
        Label("reason", lambda app: frozenset(Refusal)),
    )
}


def _labels(*names: str) -> list[str]:
    """The label names of a metric, refused (the app does not start) unless LABELS bounds each."""
    unbounded = [name for name in names if name not in LABELS]
    if unbounded:
        raise ValueError(f"metric labels without a bound in bot.metrics.LABELS: {unbounded}")
    return list(names)


@dataclass(frozen=True)
class RequestLabels:
    """The label values of one answered request."""

    route: str
    method: str
    status: str


def status_label(code: int) -> str:
    """A known code as itself, any other by its class; 'other' outside 100-599."""
    if code in STATUSES:
        return str(code)
    return f"{code // 100}xx" if 100 <= code < 600 else OTHER_STATUS


def request_labels(req: Request, status_code: int) -> RequestLabels:
    """The one place a request becomes label values: the matched rule, not the path."""
    route = req.url_rule.rule if req.url_rule is not None else UNMATCHED_ROUTE
    method = req.method if req.method in METHODS else OTHER_METHOD
    return RequestLabels(route, method, status_label(status_code))


def multiprocess_on() -> bool:
    """Whether prometheus-client keeps values in PROMETHEUS_MULTIPROC_DIR's files: it chose
    once, as it was imported (prometheus_client/values.py)."""
    return values.ValueClass is not values.MutexValue


def _constant(value: str) -> Callable[[], str]:
    """A function returning `value` (ProcessCollector asks for the pid as a function)."""
    return lambda: value


class WorkersCollector(Collector):
    """Every worker's metrics merged from PROMETHEUS_MULTIPROC_DIR, and the process metrics of
    each live worker, labelled with its pid."""

    def __init__(self, directory: str) -> None:
        self._merged = MultiProcessCollector(None, path=directory)

    def collect(self) -> Iterable[Metric]:
        merged = list(self._merged.collect())
        yield from merged
        # The library's own ProcessCollector reads /proc/self only (its docs: "custom collectors
        # do not work" in this mode), but takes any pid: each live worker's, read now, not as
        # that worker last wrote it. Live: clara_workers's files, which child_exit removes.
        # The master is left out: forked from it, the workers' resident memory already counts
        # the pages they share with it (two workers: 92.7 MB of RSS summed, 93.3 MB PSS for
        # master and workers together), and their sum is what opsctl judges against the plan.
        pids = sorted(
            {s.labels["pid"] for m in merged if m.name == WORKERS for s in m.samples}, key=int
        )
        families: dict[str, Metric] = {}
        for pid in pids:
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                into = families.setdefault(
                    family.name, Metric(family.name, family.documentation, family.type)
                )
                into.samples += [
                    Sample(s.name, {**s.labels, "pid": pid}, s.value) for s in family.samples
                ]
        yield from families.values()


class Metrics:
    """Every metric the bot exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        """This process's metrics."""
        r = self.registry
        self.exported = r
        """What /metrics renders: this registry, or every worker's merge (multiprocess mode)."""
        if multiprocess_on():
            self.exported = CollectorRegistry()
            self.exported.register(WorkersCollector(os.environ[MULTIPROC_DIR]))
        else:
            # process_resident_memory_bytes and friends (Linux): Render kills an instance over
            # its plan's memory (512 MB free) and answers 502; opsctl's metrics check judges it.
            ProcessCollector(registry=r)
        # 1 per live worker; in multiprocess mode one sample per worker, labelled pid.
        self.workers = Gauge(
            WORKERS,
            "Live worker processes (labelled pid under PROMETHEUS_MULTIPROC_DIR)",
            registry=r,
            multiprocess_mode="liveall",
        )
        self.workers.set(1)
        self.requests = Counter(
            "clara_http_requests",
            "HTTP requests by route and status",
            _labels("route", "method", "status"),
            registry=r,
        )
        self.latency = Histogram(
            "clara_http_request_duration_seconds",
            "Time to answer, by route",
            _labels("route"),
            registry=r,
        )
        self.signature_rejections = Counter(
            "clara_webhook_signature_rejections",
            "Webhook requests refused for their signature (403; 500: a SharedKey, no secret)",
            _labels("reason"),
            registry=r,
        )
        self.form_rejections = Counter(
            "clara_webhook_form_rejections",
            "Signed webhook forms refused: a field not as Twilio sends it, or another account",
            _labels("reason"),
            registry=r,
        )
        self.duplicates = Counter(
            "clara_webhook_duplicates", "Repeated MessageSid answered from memory", registry=r
        )
        self.rate_limited = Counter(
            "clara_webhook_rate_limited",
            "Messages over the sender's RATE_LIMIT_PER_MINUTE, answered with a polite refusal",
            registry=r,
        )
        self.store_errors = Counter(
            "clara_store_errors",
            "Calls to Redis (REDIS_URL) that failed: answered from this process instead",
            registry=r,
        )
        self.store_unavailable = Counter(
            "clara_webhook_store_unavailable",
            "Messages answered 503 because Redis was down and DEDUPE_ON_STORE_DOWN=closed",
            registry=r,
        )
        self.cache_hits = Counter("clara_cache_hits", "Answers found in the cache", registry=r)
        self.cache_misses = Counter(
            "clara_cache_misses", "Messages the cache had no answer for", registry=r
        )
        # Each worker warms up on its own. Merged over the live workers only (a dead worker's
        # value leaves with it: a killed ready worker must not cover for its replacement), and
        # into one sample as with one process: ready once every live worker is (the lowest),
        # after the slowest one's time (the highest).
        self.warmup_duration = Gauge(
            "clara_warmup_duration_seconds",
            "How long the start-up warm-up took",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.warmup_ready = Gauge(
            "clara_warmup_ready",
            "1 once the warm-up passed",
            registry=r,
            multiprocess_mode="livemin",
        )

    def count_request(self, labels: RequestLabels, seconds: float | None) -> None:
        """Count one answered request, and its time when known."""
        self.requests.labels(labels.route, labels.method, labels.status).inc()
        if seconds is not None:
            self.latency.labels(labels.route).observe(seconds)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.exported)


def init_app(app: Flask, metrics: Metrics) -> None:
    """Count every request and serve GET /metrics."""

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        started = g.get("started")
        elapsed = time.perf_counter() - started if started is not None else None
        metrics.count_request(request_labels(this_request(), response.status_code), elapsed)
        return response

    @app.get("/metrics")
    def export_metrics() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE_LATEST)
