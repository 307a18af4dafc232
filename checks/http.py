"""Deploy checks over HTTP: https, /health (cold start, warm latency), /status/warmup, /metrics."""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from checks.interface import Check, CheckContext, CheckResult, Status
from checks.target import Cause, WakeReport, explain, explain_error, platform_of, render_502

if TYPE_CHECKING:  # httpx is imported only when checks run
    import httpx


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
    needs_target = False  # it reads the configured URLs: nothing to wake or start
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


@dataclass(frozen=True)
class Sample:
    """One warm GET /health: how long it took, and what was wrong with it ('' when fine)."""

    ms: float
    problem: str = ""
    cause: Cause | None = None
    body: Mapping[str, Any] | None = None


class HealthCheck(Check):
    """The run's wake is the cold start; then every warm sample of /health is judged."""

    id = "health"
    title = "/health ok, components as expected, warm latency"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "every warm sample ok, components as expected, version reported; warm p95 under the "
        "latency limit; a cold start (the instance was asleep) is a WARN"
    )

    def budget_s(self, ctx: CheckContext) -> float:
        # The wake is not the check's: the runner waits for it before the check starts.
        return (ctx.expect.warm_samples + 1) * ctx.timeout_s

    async def run(self, ctx: CheckContext) -> CheckResult:
        expect = ctx.expect
        woke = await ctx.waker.wait(ctx)
        samples = [await _sample(ctx, expect.health_status) for _ in range(expect.warm_samples)]
        times = [s.ms for s in samples]
        p50, p95, worst_ms = statistics.median(times), _p95(times), max(times)
        failed = [s for s in samples if s.problem]
        details: dict[str, Any] = {
            "cold_start_s": round(woke.waited_s, 3),
            "before_awake": list(woke.seen),
            "warm_samples_ms": [round(t, 1) for t in times],
            "failed_samples": [s.problem for s in failed],
            "p50_ms": round(p50, 1),
            "p95_ms": round(p95, 1),
            "max_ms": round(worst_ms, 1),
            # The limits judged against, so the evidence (the report's chart) can draw them.
            "latency_warn_ms": expect.latency_warn_ms,
            "latency_fail_ms": expect.latency_fail_ms,
            "cold_start_budget_s": expect.cold_start_budget_s,
        }
        if len(failed) * 2 > len(samples):
            return self.result(
                Status.FAIL,
                _failed_summary(failed, len(samples)),
                await _hint_for(ctx, failed),
                details=details,
            )
        body = next(s.body for s in reversed(samples) if s.body is not None)
        details["version"] = body.get("version")
        mismatches = _component_mismatches(body.get("components"), expect.components)
        if mismatches:
            return self.result(
                Status.FAIL,
                "components differ: " + "; ".join(mismatches),
                "fix the service's environment variables, or the expectation in opsctl.toml",
                details=details,
            )
        if not body.get("version"):
            return self.result(
                Status.FAIL,
                "/health reports no version",
                "the bot must report its commit",
                details=details,
            )
        timing = f"warm p50 {p50:.0f} ms, p95 {p95:.0f} ms, max {worst_ms:.0f} ms"
        if p95 > expect.latency_fail_ms:
            return self.result(
                Status.FAIL,
                f"warm /health p95 {p95:.0f} ms is over the {expect.latency_fail_ms:g} ms limit"
                f" ({timing})",
                "the service is overloaded or under-provisioned: check its plan and its load",
                details=details,
            )
        notes = await _notes(ctx, woke, failed, len(samples), p50, body)
        checked = (
            f"{len(samples)} warm samples, {len(expect.components)} components as expected; "
            f"cold start {woke.waited_s:.2f}s, {timing}"
        )
        if notes:
            return self.result(
                Status.WARN,
                "; ".join(text for text, _ in notes) + f"; {checked}",
                "; ".join(hint for _, hint in notes),
                details=details,
            )
        status = body.get("status")
        return self.result(
            Status.PASS, f"status {status!r}, version {body['version']}, {checked}", details=details
        )


async def _sample(ctx: CheckContext, accepted: tuple[str, ...]) -> Sample:
    """One GET /health, judged: an error, a platform page, invalid JSON or a bad status."""
    import httpx

    sent = ctx.clock()
    try:
        response = await ctx.client.get(ctx.url("/health"), timeout=ctx.timeout_s)
    except httpx.HTTPError as exc:
        cause = explain_error(exc, ctx.clock() - sent)
        return Sample((ctx.clock() - sent) * 1000, cause.what, cause)
    ms = (ctx.clock() - sent) * 1000
    if platform_of(response):
        cause = explain(response)
        return Sample(ms, cause.what, cause)
    try:
        body = _json_body(response, "/health")
    except ValueError as exc:
        not_json = Cause("", "/health must answer JSON: look at the service's logs", False)
        return Sample(ms, str(exc), explain(response) if response.status_code >= 300 else not_json)
    status = body.get("status")
    if response.status_code != 200 or status not in accepted:
        # The bot says why it is degraded (no token, no knowledge base, audio missing): fixed
        # words of its own, the same that Render's health check reads.
        reason = body.get("reason")
        why = f": {reason}" if isinstance(reason, str) and reason else ""
        return Sample(
            ms,
            f"/health answered {response.status_code} with status {status!r}{why}"
            f" (accepted: {', '.join(accepted)})",
            Cause("", "read /status/warmup for the failing start-up check", transient=True),
        )
    return Sample(ms, body=body)


def _p95(times: list[float]) -> float:
    """The 95th percentile (the largest sample when there are few)."""
    if len(times) < 2:
        return max(times)
    return statistics.quantiles(times, n=20, method="inclusive")[18]


def _failed_summary(failed: list[Sample], total: int) -> str:
    """'2 of 5 warm samples failed: 502: Render's page ... (x2)'."""
    counts = Counter(s.problem for s in failed)
    problems = "; ".join(f"{p} (x{n})" if n > 1 else p for p, n in counts.most_common())
    return f"{len(failed)} of {total} warm /health samples failed: {problems}"


async def _hint_for(ctx: CheckContext, failed: list[Sample]) -> str:
    """The most common failure's hint; a Render 502's names the bot's memory when known."""
    first = Counter(s.problem for s in failed).most_common(1)[0][0]
    cause = next(s.cause for s in failed if s.problem == first)
    if cause is None:
        return "look at the service's logs"
    if cause == render_502():
        memory = await resident_memory_mb(ctx)
        if memory is not None:
            return render_502(f"{memory:.0f} MB of the plan's {ctx.expect.memory_mb:g} MB").hint
    return cause.hint


async def _notes(
    ctx: CheckContext,
    woke: WakeReport,
    failed: list[Sample],
    total: int,
    p50: float,
    body: Mapping[str, Any],
) -> list[tuple[str, str]]:
    """(what was seen, what to do) for each thing short of a FAIL that is still not right."""
    expect = ctx.expect
    notes: list[tuple[str, str]] = []
    if failed:
        notes.append((_failed_summary(failed, total), await _hint_for(ctx, failed)))
    if p50 > expect.latency_warn_ms:
        notes.append(
            (
                f"slow: warm p50 {p50:.0f} ms (warn at {expect.latency_warn_ms:g} ms)",
                "the service is short of CPU or busy: check its plan and its load",
            )
        )
    if woke.waited_s > expect.cold_start_budget_s:
        notes.append(
            (
                f"cold start {woke.waited_s:.1f}s: the instance was asleep (over the "
                f"{expect.cold_start_budget_s:g}s budget){woke.while_waiting()}",
                "run `opsctl warmup` to keep the free instance awake: Twilio waits 15 s, so a "
                "message that wakes it is lost",
            )
        )
    if body.get("version") == "unknown":
        notes.append(
            (
                "version is 'unknown'",
                "deploy through Render, which sets RENDER_GIT_COMMIT, so the commit is known",
            )
        )
    return notes


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


RESIDENT_MEMORY = "process_resident_memory_bytes"  # prometheus-client's process collector
# The bot's count of webhooks Twilio signed with a SharedKey it has no secret for, each answered
# 500 (bot/metrics.py, Refusal.NO_SHARED_KEY; tests/checks/test_every_status.py reads them
# from a real bot).
SHARED_KEY_REFUSALS = ("clara_webhook_signature_rejections_total", "no_shared_key")


def _families(text: str) -> list[Any]:
    """The metric families of a Prometheus text body (ValueError when it is not one)."""
    from prometheus_client.parser import text_string_to_metric_families

    return list(text_string_to_metric_families(text))


def _sample_values(families: list[Any], name: str, **labels: str) -> list[float]:
    """The values of every sample called `name` that carries these label values."""
    return [
        float(sample.value)
        for family in families
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    ]


def _resident_samples(families: list[Any]) -> list[float]:
    """Resident memory in bytes, one value per process the bot reports.

    One worker reports one sample; several (PROMETHEUS_MULTIPROC_DIR) one per live worker,
    labelled pid (bot/metrics.py), and the instance is killed on their sum."""
    return _sample_values(families, RESIDENT_MEMORY)


def _shared_key_refusals(families: list[Any]) -> int:
    """Webhooks the bot answered 500 since it started: signed with a SharedKey, no secret."""
    name, reason = SHARED_KEY_REFUSALS
    return int(sum(_sample_values(families, name, reason=reason)))


def _resident_mb(families: list[Any]) -> float | None:
    """The bot's resident memory in MB, summed over its processes, when it reports it."""
    found = _resident_samples(families)
    return sum(found) / 1e6 if found else None


async def resident_memory_mb(ctx: CheckContext) -> float | None:
    """What the bot's /metrics says of its resident memory (None when it cannot be read)."""
    import httpx

    try:
        response = await ctx.client.get(ctx.url("/metrics"), timeout=ctx.timeout_s)
        return _resident_mb(_families(response.text)) if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None


class MetricsCheck(Check):
    """/metrics parses as Prometheus text; the bot's memory is judged against the plan's."""

    id = "metrics"
    title = "/metrics is Prometheus text"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "/metrics parses as Prometheus text with at least one metric; resident memory under "
        "memory_warn_share of the plan's memory; no webhook signed with a Twilio SharedKey "
        "refused for want of its secret"
    )

    async def run(self, ctx: CheckContext) -> CheckResult:
        response = await ctx.client.get(ctx.url("/metrics"), timeout=ctx.timeout_s)
        if response.status_code != 200:
            cause = explain(response)
            return self.result(
                Status.FAIL,
                f"/metrics answered {cause.what}",
                "is prometheus-client wired into the app?"
                if response.status_code == 404
                else cause.hint,
            )
        try:
            families = _families(response.text)
        except ValueError as exc:
            return self.result(
                Status.FAIL,
                f"/metrics is not Prometheus text: {exc}",
                "serve prometheus_client.generate_latest() with its CONTENT_TYPE_LATEST",
            )
        samples = sum(len(f.samples) for f in families)
        if not families:
            return self.result(Status.FAIL, "/metrics is empty", "register the bot's metrics")
        memory = _resident_mb(families)
        processes = len(_resident_samples(families))
        details: dict[str, Any] = {
            "families": sorted(f.name for f in families),
            "resident_memory_mb": None if memory is None else round(memory, 1),
            "resident_memory_processes": processes,
        }
        seen = f"{len(families)} metric families, {samples} samples"
        plan, share = ctx.expect.memory_mb, ctx.expect.memory_warn_share
        summed = f" ({processes} workers together)" if processes > 1 else ""
        warnings: list[tuple[str, str]] = []  # (reason, hint)
        if memory is not None and memory > share * plan:
            warnings.append(
                (
                    f"the bot's resident memory is {memory:.0f} MB{summed}, {memory / plan:.0%} "
                    f"of the plan's {plan:g} MB (warn above {share:.0%})",
                    f"over {plan:g} MB Render kills the instance and answers 502: keep one "
                    "gunicorn worker and Whisper off, or move to a plan with more memory",
                )
            )
        # A WARN, not a FAIL: anyone can send the header, so the count alone does not prove
        # that Twilio's messages are the ones refused.
        refused = details["shared_key_refusals"] = _shared_key_refusals(families)
        if refused:
            warnings.append(
                (
                    f"{refused} webhook{'s' if refused != 1 else ''} signed with a Twilio "
                    "SharedKey got 500: the bot has no TWILIO_SHARED_KEY_SECRET",
                    "set TWILIO_SHARED_KEY_SECRET on the service to the SharedKey's secret "
                    '(README "Security"), or take the Webhook Rule off this URL',
                )
            )
        if warnings:
            return self.result(
                Status.WARN,
                "; ".join(reason for reason, _ in warnings) + f"; {seen}",
                "; ".join(hint for _, hint in warnings),
                details=details,
            )
        used = ""
        if memory is not None:
            used = f", resident memory {memory:.0f} MB{summed} of {plan:g} MB"
        return self.result(Status.PASS, seen + used, details=details)
