"""Prometheus metrics for the bot, on a registry of the app's own (so tests can build many apps)."""

from __future__ import annotations

import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)


class Metrics:
    """Every metric the bot exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        # process_resident_memory_bytes and friends (Linux): Render kills an instance over its
        # plan's memory (512 MB free) and answers 502; opsctl's metrics check judges this.
        ProcessCollector(registry=r)
        self.requests = Counter(
            "clara_http_requests",
            "HTTP requests by route and status",
            ["route", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "clara_http_request_duration_seconds",
            "Time to answer, by route",
            ["route"],
            registry=r,
        )
        self.signature_rejections = Counter(
            "clara_webhook_signature_rejections",
            "Webhook requests refused with 403",
            ["reason"],
            registry=r,
        )
        self.duplicates = Counter(
            "clara_webhook_duplicates", "Repeated MessageSid answered from memory", registry=r
        )
        self.cache_hits = Counter("clara_cache_hits", "Answers found in the cache", registry=r)
        self.cache_misses = Counter(
            "clara_cache_misses", "Messages the cache had no answer for", registry=r
        )
        self.warmup_duration = Gauge(
            "clara_warmup_duration_seconds", "How long the start-up warm-up took", registry=r
        )
        self.warmup_ready = Gauge("clara_warmup_ready", "1 once the warm-up passed", registry=r)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)


def init_app(app: Flask, metrics: Metrics) -> None:
    """Count every request and serve GET /metrics."""

    @app.before_request
    def start_timer() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def count(response: Response) -> Response:
        # The rule, not the path, so a scan of random URLs cannot explode the label set.
        route = request.url_rule.rule if request.url_rule else "<unmatched>"
        metrics.requests.labels(route, request.method, str(response.status_code)).inc()
        if "started" in g:
            metrics.latency.labels(route).observe(time.perf_counter() - g.started)
        return response

    @app.get("/metrics")
    def export_metrics() -> Response:
        return Response(metrics.render(), content_type=CONTENT_TYPE_LATEST)
