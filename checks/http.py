"""Deploy checks over HTTP: https, /health (cold start, warm latency), /status/warmup, /metrics."""

from __future__ import annotations

import asyncio
import json
import statistics
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from checks.interface import Check, CheckContext, CheckResult, Status


def _json_body(response: httpx.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        snippet = response.text[:60].replace("\n", " ")
        raise ValueError(f"{what} answered {response.status_code} with invalid JSON: {snippet!r}")
    return body


class HttpsCheck(Check):
    """Non-local environments must be served over https (Twilio signs the https URL)."""

    id = "https"
    title = "served over https"
    statuses = frozenset({Status.PASS, Status.FAIL, Status.SKIP})  # no I/O: nothing to ERROR
    done_when = "the base and public URLs are https (non-local environments)"

    async def run(self, ctx: CheckContext) -> CheckResult:
        if not ctx.expect.require_https:
            return self.result(Status.SKIP, f"{ctx.env_name} allows http")
        schemes = {urlsplit(ctx.base_url).scheme, urlsplit(ctx.public_url).scheme}
        if schemes != {"https"}:
            return self.result(
                Status.FAIL,
                f"{ctx.base_url} is not https",
                "use the https:// URL of the service in opsctl.toml",
            )
        urls = dict.fromkeys((ctx.base_url, ctx.public_url))  # the public URL is often the base
        return self.result(Status.PASS, f"{len(urls)} URL(s) served over https: {', '.join(urls)}")


class HealthCheck(Check):
    """Wake the service once (its time is the cold start), then judge warm samples of /health."""

    id = "health"
    title = "/health ok, components as expected, warm latency"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "status accepted, components as expected, version reported; warm p50 under the "
        "latency limit; cold start within budget"
    )

    def budget_s(self, ctx: CheckContext) -> float:
        return ctx.expect.wake_timeout_s + ctx.expect.warm_samples * ctx.timeout_s

    async def run(self, ctx: CheckContext) -> CheckResult:
        expect = ctx.expect
        started = ctx.clock()
        wake = await self._wake(ctx, started)
        cold_start_s = ctx.clock() - started
        samples_ms = []
        for _ in range(expect.warm_samples):
            sent = ctx.clock()
            last = await ctx.client.get(ctx.url("/health"), timeout=ctx.timeout_s)
            samples_ms.append((ctx.clock() - sent) * 1000)
        p50 = statistics.median(samples_ms) if samples_ms else 0.0
        worst_ms = max(samples_ms, default=0.0)
        details: dict[str, Any] = {
            "cold_start_s": round(cold_start_s, 3),
            "warm_samples_ms": [round(s, 1) for s in samples_ms],
            "p50_ms": round(p50, 1),
            "max_ms": round(worst_ms, 1),
        }
        response = last if samples_ms else wake
        try:
            body = _json_body(response, "/health")
        except ValueError as exc:
            return self.result(Status.FAIL, str(exc), "look at the service's logs", details=details)
        details["version"] = body.get("version")
        status = body.get("status")
        if response.status_code != 200 or status not in expect.health_status:
            return self.result(
                Status.FAIL,
                f"/health answered {response.status_code} with status {status!r}"
                f" (accepted: {', '.join(expect.health_status)})",
                "read /status/warmup for the failing start-up check",
                details=details,
            )
        mismatches = _component_mismatches(body.get("components"), expect.components)
        if mismatches:
            return self.result(
                Status.FAIL,
                "components differ: " + "; ".join(mismatches),
                "fix the service's environment variables, or the expectation in opsctl.toml",
                details=details,
            )
        timing = f"cold start {cold_start_s:.2f}s, warm p50 {p50:.0f} ms, max {worst_ms:.0f} ms"
        checked = f"{len(expect.components)} components as expected; {timing}"
        if not body.get("version"):
            return self.result(
                Status.FAIL,
                "/health reports no version",
                "the bot must report its commit",
                details=details,
            )
        if p50 > expect.latency_fail_ms:
            return self.result(
                Status.FAIL,
                f"warm /health p50 {p50:.0f} ms is over the {expect.latency_fail_ms:g} ms limit",
                "the service is overloaded or under-provisioned",
                details=details,
            )
        notes: list[tuple[str, str]] = []  # (what was seen, what to do about it)
        if p50 > expect.latency_warn_ms or worst_ms > expect.latency_fail_ms:
            notes.append(
                (
                    f"slow: p50 {p50:.0f} ms, max {worst_ms:.0f} ms "
                    f"(warn at {expect.latency_warn_ms:g} ms)",
                    "the service is short of CPU or busy: check its plan and its load",
                )
            )
        if cold_start_s > expect.cold_start_budget_s:
            notes.append(
                (
                    f"cold start {cold_start_s:.1f}s is over the "
                    f"{expect.cold_start_budget_s:g}s budget",
                    "run `opsctl warmup` to keep the free instance awake",
                )
            )
        if body.get("version") == "unknown":
            notes.append(
                (
                    "version is 'unknown'",
                    "deploy through Render, which sets RENDER_GIT_COMMIT, so the commit is known",
                )
            )
        if notes:
            return self.result(
                Status.WARN,
                "; ".join(text for text, _ in notes) + f"; {checked}",
                "; ".join(hint for _, hint in notes),
                details=details,
            )
        return self.result(
            Status.PASS, f"status {status!r}, version {body['version']}, {checked}", details=details
        )

    @staticmethod
    async def _wake(ctx: CheckContext, started: float) -> httpx.Response:
        """The first answer that is not 'starting': a waking instance may take a while."""
        while True:
            remaining = ctx.expect.wake_timeout_s - (ctx.clock() - started)
            response = await ctx.client.get(ctx.url("/health"), timeout=max(remaining, 0.1))
            try:
                starting = response.json().get("status") == "starting"
            except (ValueError, AttributeError):
                starting = False
            if not starting or remaining <= 0.5:
                return response
            await asyncio.sleep(0.25)


def _component_mismatches(actual: Any, expected: Mapping[str, Any]) -> list[str]:
    if not isinstance(actual, dict):
        return ["no 'components' object in /health"]
    problems = []
    for name, value in expected.items():
        if name not in actual:
            problems.append(f"{name} missing (expected {json.dumps(value)})")
        elif actual[name] != value or type(actual[name]) is not type(value):
            problems.append(f"{name} is {json.dumps(actual[name])}, expected {json.dumps(value)}")
    return problems


class WarmupCheck(Check):
    """The bot's own start-up report: ready, no errors; warnings and a slow start are WARN."""

    id = "warmup"
    title = "/status/warmup ready"
    statuses = Check.statuses | {Status.WARN}
    done_when = "the start-up warm-up is ready with no errors, within warmup_warn_s (60 s)"

    async def run(self, ctx: CheckContext) -> CheckResult:
        response = await ctx.client.get(ctx.url("/status/warmup"), timeout=ctx.timeout_s)
        try:
            report = _json_body(response, "/status/warmup")
        except ValueError as exc:
            return self.result(Status.FAIL, str(exc), "look at the service's logs")
        checks = report.get("checks")
        errors, warnings = report.get("errors") or [], report.get("warnings") or []
        details = {"duration_sec": report.get("duration_sec"), "checks": checks}
        if not isinstance(checks, dict) or not checks:
            return self.result(
                Status.FAIL,
                "warm-up report lists no checks",
                "the bot's start-up must check something: is this the right service?",
                details=details,
            )
        if report.get("ready") is not True or errors:
            return self.result(
                Status.FAIL,
                "warm-up not ready: " + ("; ".join(map(str, errors)) or "no reason given"),
                "fix the failing start-up check, then redeploy",
                details=details,
            )
        duration, warn_s = report.get("duration_sec"), ctx.expect.warmup_warn_s
        summary = f"ready in {duration}s, {len(checks)} start-up checks passed"
        concerns: list[tuple[str, str]] = []  # (reason, hint)
        if isinstance(duration, int | float) and duration > warn_s:
            # The warm-up guide alerts on a start-up over 60 s (issue 13, point 7).
            concerns.append(
                (
                    f"slower than {warn_s:g}s",
                    f"the warm-up guide alerts above {warn_s:g}s: find the slow start-up step "
                    "in the service's logs",
                )
            )
        if warnings:
            concerns.append(
                (
                    "warnings: " + "; ".join(map(str, warnings)),
                    "read the warnings: each names the setting to change",
                )
            )
        if concerns:
            return self.result(
                Status.WARN,
                "; ".join([summary, *(reason for reason, _ in concerns)]),
                "; ".join(hint for _, hint in concerns),
                details=details,
            )
        return self.result(Status.PASS, summary, details=details)


class MetricsCheck(Check):
    """/metrics parses as Prometheus text and holds at least one metric."""

    id = "metrics"
    title = "/metrics is Prometheus text"
    done_when = "/metrics parses as Prometheus text with at least one metric"

    async def run(self, ctx: CheckContext) -> CheckResult:
        from prometheus_client.parser import text_string_to_metric_families

        response = await ctx.client.get(ctx.url("/metrics"), timeout=ctx.timeout_s)
        if response.status_code != 200:
            return self.result(
                Status.FAIL,
                f"/metrics answered {response.status_code}",
                "is prometheus-client wired into the app?",
            )
        try:
            families = list(text_string_to_metric_families(response.text))
        except ValueError as exc:
            return self.result(
                Status.FAIL,
                f"/metrics is not Prometheus text: {exc}",
                "serve prometheus_client.generate_latest() with its CONTENT_TYPE_LATEST",
            )
        samples = sum(len(f.samples) for f in families)
        if not families:
            return self.result(Status.FAIL, "/metrics is empty", "register the bot's metrics")
        return self.result(
            Status.PASS,
            f"{len(families)} metric families, {samples} samples",
            details={"families": sorted(f.name for f in families)},
        )
