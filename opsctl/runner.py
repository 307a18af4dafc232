"""Run gates concurrently: checks in parallel on one HTTP client, needs respected, retries kept.

Every result leaves the runner redacted (no value of a secret the run knows, nor of one derived
from it), so no output format has to remember to redact; and a check whose request the bot
answered with a known secret FAILs, naming the variable and where it was seen.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime

import httpx

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status, worst
from evidence.redact import Redactor, is_secret_like
from evidence.signoffs import Signoff, signed_items, waiver_of
from evidence.transcripts import Exposure, Watch, current_check, current_watch
from opsctl.config import Gate
from opsctl.results import GateAttempt, GateResult, RunResult

# Called when a check starts (result None) and when it ends; the live table listens.
EventHandler = Callable[[str, str, CheckResult | None], None]


def _ignore(gate_id: str, check_id: str, result: CheckResult | None) -> None:
    pass


def describe_http_error(exc: httpx.HTTPError, timeout_s: float) -> tuple[str, str]:
    """(reason, hint) for an HTTP failure: refused, DNS, timeout, TLS, protocol."""
    url = str(exc.request.url) if _has_request(exc) else "the target"
    if isinstance(exc, httpx.TimeoutException):
        return (
            f"no answer from {url} within {timeout_s:g}s ({type(exc).__name__})",
            "is the service up and awake? a sleeping free instance needs a longer wake",
        )
    # httpx says "All connection attempts failed"; the cause underneath says which.
    causes = list(_causes(exc))
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return (f"connection refused at {url}", "is the service running on that port?")
    if any(isinstance(c, socket.gaierror) for c in causes):
        return (f"DNS lookup failed for {url}", "check base_url in opsctl.toml")
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return (f"TLS failed for {url}: {exc}", "check the certificate and the URL")
    if isinstance(exc, httpx.ConnectError):
        return (f"could not connect to {url}: {exc}", "check base_url and the network")
    return (
        f"HTTP error talking to {url}: {type(exc).__name__}: {exc}",
        "the service broke the connection: look at its logs",
    )


def known_secrets(ctx: CheckContext) -> frozenset[tuple[str, str]]:
    """(variable, value) of every secret the run knows: the context's, and the target's token."""
    pairs = set(ctx.known_secrets)
    token = ctx.secrets.get(ctx.token_env, "")
    if token:
        pairs.add((ctx.token_env, token))
    return frozenset((name, value) for name, value in pairs if is_secret_like(value))


def hidden_values(ctx: CheckContext) -> set[str]:
    """Every value no output may show: known secrets and what checks derived from them so far."""
    return {value for _, value in known_secrets(ctx)} | set(ctx.derived_secrets)


def redactor_for(ctx: CheckContext) -> Redactor:
    """A redactor for everything hidden right now (checks add derived values as they run)."""
    return Redactor(hidden_values(ctx))


def redacted(result: CheckResult, redactor: Redactor) -> CheckResult:
    """The result with every secret out of its reason, hint and details (keys and values)."""
    return replace(
        result,
        check_id=redactor.redact(result.check_id),
        title=redactor.redact(result.title),
        reason=redactor.redact(result.reason),
        hint=redactor.redact(result.hint),
        details=redactor.redact_data(dict(result.details)),
    )


def exposed(result: CheckResult, exposures: Sequence[Exposure]) -> CheckResult:
    """A FAIL naming each secret the bot sent back and where (the value stays unsaid); what the
    check found otherwise is kept in details."""
    names = ", ".join(dict.fromkeys(e.secret for e in exposures))
    return replace(
        result,
        status=Status.FAIL,
        reason="the bot exposes " + "; ".join(dict.fromkeys(str(e) for e in exposures)),
        hint=f"rotate {names} now (whoever asked has it), then remove it from the bot's responses",
        details={
            **result.details,
            "exposures": [str(e) for e in exposures],
            "without_exposure": {
                "status": result.status.value,
                "reason": result.reason,
                "hint": result.hint,
            },
        },
    )


def _has_request(exc: httpx.HTTPError) -> bool:
    try:
        exc.request  # noqa: B018 - raises RuntimeError when the error carries no request
    except RuntimeError:
        return False
    return True


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            for inner in current.exceptions:
                yield from _causes(inner)
        current = current.__cause__ or current.__context__


class Runner:
    """Runs gates against one target; everything it needs is passed in."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        on_event: EventHandler = _ignore,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        debug: bool = False,
        signoffs: Sequence[Signoff] = (),
    ) -> None:
        self._signoffs = list(signoffs)
        self._checks = checks
        self._on_event = on_event
        self._sleep = sleep
        self._clock = clock
        self._debug = debug

    async def run(
        self, gates: Sequence[Gate], ctx: CheckContext, skipped: Mapping[str, str] | None = None
    ) -> RunResult:
        """Run every gate once its needs are done; `skipped` maps gate id -> reason."""
        skipped = skipped or {}
        started_at = datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        started = self._clock()
        done: dict[str, asyncio.Future[GateResult]] = {
            g.id: asyncio.get_running_loop().create_future() for g in gates
        }

        async def run_gate(gate: Gate) -> None:
            needs = [await done[need] for need in gate.needs if need in done]
            result = self._settled_without_running(gate, needs, skipped)
            if result is None:
                result = await self._run_gate(gate, ctx)
            else:  # a waiver's note is free text
                result = replace(result, reason=redactor_for(ctx).redact(result.reason))
            done[gate.id].set_result(result)

        await asyncio.gather(*(run_gate(g) for g in gates))
        return RunResult(
            env=ctx.env_name,
            target=redactor_for(ctx).redact(ctx.base_url),
            started_at=started_at,
            duration_s=round(self._clock() - started, 3),
            gates=tuple(done[g.id].result() for g in gates),
        )

    def _settled_without_running(
        self, gate: Gate, needs: list[GateResult], skipped: Mapping[str, str]
    ) -> GateResult | None:
        """SKIP, DOCUMENTED-BLOCKED or BLOCKED when the gate's checks must not run; else None."""

        def settled(status: Status, reason: str) -> GateResult:
            return GateResult(gate.id, gate.title, gate.blocking, status, reason)

        waiver = waiver_of(self._signoffs, gate.id)
        unmet = [n for n in needs if not n.status.passed]
        if gate.id in skipped:
            return settled(Status.SKIP, skipped[gate.id])
        if waiver is not None:
            return settled(
                Status.DOCUMENTED_BLOCKED, f"waived by {waiver.by} at {waiver.at}: {waiver.note}"
            )
        if unmet:
            return settled(
                Status.BLOCKED,
                "needs " + ", ".join(f"{n.gate_id} ({n.status.value})" for n in unmet),
            )
        if not gate.checks and not gate.manual:
            return settled(Status.SKIP, gate.skip_reason or "no checks configured")
        return None

    async def _run_gate(self, gate: Gate, ctx: CheckContext) -> GateResult:
        started = self._clock()
        attempts: list[GateAttempt] = []
        manual = [redacted(r, redactor_for(ctx)) for r in self._manual_results(gate)]
        while True:
            ran = await asyncio.gather(*(self.run_check(gate.id, c, ctx) for c in gate.checks))
            results = [*ran, *manual]
            status = worst([r.status for r in results])
            attempts.append(GateAttempt(len(attempts) + 1, status, tuple(results)))
            elapsed = self._clock() - started
            more = len(attempts) < gate.retry.attempts
            in_budget = elapsed + gate.retry.delay_s < gate.retry.budget_s
            if status.passed or not (more and in_budget):
                break
            await self._sleep(gate.retry.delay_s)
        last = attempts[-1]
        reason = _gate_reason(last)
        if last.status.passed and len(attempts) > 1:
            status, reason = Status.WARN, f"passed on attempt {len(attempts)}; " + reason
        else:
            status = last.status
        return GateResult(
            gate.id,
            gate.title,
            gate.blocking,
            status,
            reason,
            last.checks,
            tuple(attempts),
            round(self._clock() - started, 3),
        )

    def _manual_results(self, gate: Gate) -> list[CheckResult]:
        """One result per manual criterion: PASS once signed off, WARN until then."""
        signed = signed_items(self._signoffs, gate.id)
        results = []
        for item in gate.manual:
            entry = signed.get(item)
            if entry is None:
                results.append(
                    CheckResult(
                        f"manual: {item}",
                        item,
                        Status.WARN,
                        "not signed off yet",
                        f"opsctl gate sign {gate.id} --item {item!r} --by NAME",
                    )
                )
            else:
                note = f": {entry.note}" if entry.note else ""
                results.append(
                    CheckResult(
                        f"manual: {item}",
                        item,
                        Status.PASS,
                        f"signed off by {entry.by} at {entry.at}{note}",
                    )
                )
        return results

    async def run_check(self, gate_id: str, check_id: str, ctx: CheckContext) -> CheckResult:
        """One check within its time budget; anything that stops it becomes an ERROR.

        The result leaves here redacted (every renderer gets it so), and a FAIL when the bot
        answered one of its requests with a secret.
        """
        check = self._checks[check_id]
        self._on_event(gate_id, check_id, None)
        started = self._clock()
        budget = check.budget_s(ctx)
        # The task wait_for starts copies this context: the transcript knows whose request it is,
        # what to keep out of it, and which secrets the bot's answers must not hold.
        watch = Watch(known_secrets(ctx), lambda: redactor_for(ctx))
        token = current_check.set(f"{gate_id}/{check_id}")
        watching = current_watch.set(watch)
        try:
            result = await asyncio.wait_for(check.run(ctx), budget)
        except CheckError as exc:
            result = check.result(Status.ERROR, exc.reason, exc.hint)
        except TimeoutError:  # the check's own budget, not one request's timeout
            result = check.result(
                Status.ERROR,
                f"did not finish within {budget:g}s",
                "is the service up and awake? raise timeout_s in opsctl.toml if it is just slow",
            )
        except httpx.HTTPError as exc:
            result = check.result(Status.ERROR, *describe_http_error(exc, ctx.timeout_s))
        except Exception as exc:
            if self._debug:
                raise
            result = check.result(
                Status.ERROR,
                f"check crashed: {type(exc).__name__}: {exc}",
                "run with --debug for the traceback",
            )
        finally:
            current_watch.reset(watching)
            current_check.reset(token)
        result = replace(result, duration_s=round(self._clock() - started, 3))
        if watch.exposures:
            result = exposed(result, watch.exposures)
        redactor = redactor_for(ctx)
        result = redacted(result, redactor)
        for name, text in list(ctx.reports.items()):  # tool reports, kept as evidence
            ctx.reports[name] = redactor.redact(text)
        self._on_event(gate_id, check_id, result)
        return result


def _gate_reason(attempt: GateAttempt) -> str:
    """The gate's one-line reason: the first check with the gate's status, or a summary."""
    for result in attempt.checks:
        if result.status is attempt.status and attempt.status is not Status.PASS:
            return f"{result.check_id}: {result.reason}"
    passed = sum(r.status.passed for r in attempt.checks)
    skipped = len(attempt.checks) - passed
    summary = f"{passed} check{'s' if passed != 1 else ''} passed"
    return summary + (f", {skipped} skipped" if skipped else "")
