"""Run gates concurrently: checks in parallel on one HTTP client, needs respected, retries kept.

Every result leaves the runner redacted (no value of a secret the run knows, nor of one derived
from it), so no output format has to remember to redact; and a check whose request the bot
answered with a known secret FAILs, naming the variable and where it was seen.
"""

from __future__ import annotations

import asyncio
import math
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TypeGuard

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status, worst
from checks.target import WakeReport, explain_error
from evidence.redact import Redactor, is_secret_like
from evidence.signoffs import Signoff, signed_items, waiver_of
from evidence.transcripts import Exposure, Watch, current_check, current_watch
from opsctl.config import Gate
from opsctl.results import GateAttempt, GateResult, RunResult

if TYPE_CHECKING:
    import httpx

# Called when a check starts (result None) and when it ends; the live table listens.
EventHandler = Callable[[str, str, CheckResult | None], None]


def _ignore(gate_id: str, check_id: str, result: CheckResult | None) -> None:
    pass


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


# What a shared check leaves: its result and the tool reports it wrote.
SharedRun = tuple[CheckResult, dict[str, str]]


class SharedChecks:
    """Checks whose result does not depend on the environment (the repository's), run once for
    every environment of a run: the first runner to reach one runs it, the others await it (the
    suite would otherwise run once per environment)."""

    def __init__(self, check_ids: Collection[str]) -> None:
        self.check_ids = frozenset(check_ids)
        self._runs: dict[tuple[str, str, int], asyncio.Future[SharedRun]] = {}

    async def once(
        self, key: tuple[str, str, int], run: Callable[[], Awaitable[SharedRun]]
    ) -> SharedRun:
        """The run of `key` (gate, check, attempt), started by the first caller."""
        if key not in self._runs:
            self._runs[key] = asyncio.ensure_future(run())
        # One environment's run cancelled must not cancel the check the others await.
        return await asyncio.shield(self._runs[key])


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
        shared: SharedChecks | None = None,
    ) -> None:
        self._signoffs = list(signoffs)
        self._shared = shared
        self._asked: Counter[tuple[str, str]] = Counter()
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

    def deadline_s(self, gates: Sequence[Gate], ctx: CheckContext) -> float:
        """The longest a run of these gates can take, whatever the target does: the one wake
        (when a check talks to the bot), then the longest chain of gates that need each other,
        each gate bounded by its retry budget or else by its slowest check's budget."""
        by_id = {g.id: g for g in gates}
        ends: dict[str, float] = {}

        def end_of(gate: Gate) -> float:
            if gate.id not in ends:
                budgets = [self._checks[c].budget_s(ctx) for c in gate.checks]
                own = gate.retry.budget_s if gate.retry.attempts > 1 else max(budgets, default=0)
                ends[gate.id] = own + max(
                    (end_of(by_id[n]) for n in gate.needs if n in by_id), default=0.0
                )
            return ends[gate.id]

        talks = any(self._checks[c].needs_target for g in gates for c in g.checks)
        wake = ctx.expect.wake_timeout_s if talks else 0.0
        return wake + max((end_of(g) for g in gates), default=0.0)

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
        if any(self._checks[c].needs_target for c in gate.checks):
            for check_id in gate.checks:  # shown as running while the target wakes
                self._on_event(gate.id, check_id, None)
            await self._awake(ctx)  # the wake's time is the run's, not the gate's deadline
        started = self._clock()
        # A gate that may retry has a deadline for all its attempts; its checks' budgets are cut
        # to what is left of it, so the deadline holds whatever the server does.
        deadline = started + gate.retry.budget_s if gate.retry.attempts > 1 else math.inf
        attempts: list[GateAttempt] = []
        manual = [redacted(r, redactor_for(ctx)) for r in self._manual_results(gate)]
        while True:
            ran = await asyncio.gather(
                *(self.run_check(gate.id, c, ctx, deadline) for c in gate.checks)
            )
            results = [*ran, *manual]
            status = worst([r.status for r in results])
            attempts.append(GateAttempt(len(attempts) + 1, status, tuple(results)))
            if status.passed or not self._worth_another(gate, attempts, started):
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

    def _worth_another(self, gate: Gate, attempts: Sequence[GateAttempt], started: float) -> bool:
        """Retry only while attempts and time are left, and only when a failing check met
        something another attempt may not meet (a timeout, a reset, a 5xx, 408 or 429)."""
        failing = [r for r in attempts[-1].checks if not r.status.passed]
        elapsed = self._clock() - started
        return (
            len(attempts) < gate.retry.attempts
            and elapsed + gate.retry.delay_s < gate.retry.budget_s
            and any(r.transient for r in failing)
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

    async def run_check(
        self, gate_id: str, check_id: str, ctx: CheckContext, deadline: float = math.inf
    ) -> CheckResult:
        """One check within its time budget (and what is left of its gate's deadline); anything
        that stops it becomes an ERROR. A check that talks to the bot first waits for the run's
        one wake of the target, whose time is not the check's.

        The result leaves here redacted (every renderer gets it so), and a FAIL when the bot
        answered one of its requests with a secret. A check shared by several environments'
        runs (`shared`) runs once; each run gets its result and its reports.
        """
        self._on_event(gate_id, check_id, None)
        # Its own reports dict, merged after: checks run at once, and each result names the
        # reports that check wrote, not those another one wrote meanwhile (and a shared check's
        # go to every run, not only one).
        own = replace(ctx, reports={})
        if self._shared is None or check_id not in self._shared.check_ids:
            result = await self._checked(gate_id, check_id, own, deadline)
            ctx.reports.update(own.reports)
        else:
            self._asked[(gate_id, check_id)] += 1
            key = (gate_id, check_id, self._asked[(gate_id, check_id)])

            async def run() -> SharedRun:
                return await self._checked(gate_id, check_id, own, deadline), own.reports

            result, reports = await self._shared.once(key, run)
            redactor = redactor_for(ctx)  # this run's secrets too, not only the first run's
            result = redacted(result, redactor)
            ctx.reports.update({name: redactor.redact(text) for name, text in reports.items()})
        self._on_event(gate_id, check_id, result)
        return result

    async def _checked(
        self, gate_id: str, check_id: str, ctx: CheckContext, deadline: float
    ) -> CheckResult:
        """run_check's work, without its events."""
        check = self._checks[check_id]
        started = self._clock()
        # The task wait_for starts copies this context: the transcript knows whose request it is,
        # what to keep out of it, and which secrets the bot's answers must not hold.
        watch = Watch(known_secrets(ctx), lambda: redactor_for(ctx))
        woke = await self._awake(ctx) if check.needs_target else None
        token = current_check.set(f"{gate_id}/{check_id}")
        watching = current_watch.set(watch)
        own_budget = check.budget_s(ctx)
        budget = max(min(own_budget, deadline - self._clock()), 0.0)
        try:
            if woke is not None and not woke.awake:
                raise CheckError(woke.reason, woke.hint)
            result = await asyncio.wait_for(check.run(ctx), budget)
        except CheckError as exc:
            result = check.result(Status.ERROR, exc.reason, exc.hint)
        except TimeoutError:  # the check's own budget, not one request's timeout
            waited = self._clock() - started
            limit = f"its budget {own_budget:g}s" if budget == own_budget else "the gate's deadline"
            result = check.result(
                Status.ERROR,
                f"did not finish: stopped after {waited:.1f}s ({limit})",
                "is the service up and awake? raise timeout_s in opsctl.toml if it is just slow",
            )
        except Exception as exc:
            if _is_http_error(exc):  # a request that failed: its cause, as the transport saw it
                cause = explain_error(exc, self._clock() - started)
                result = check.result(Status.ERROR, cause.what, cause.hint)
            elif self._debug:
                raise
            else:
                result = check.result(
                    Status.ERROR,
                    f"check crashed: {type(exc).__name__}: {exc}",
                    "run with --debug for the traceback",
                )
        finally:
            current_watch.reset(watching)
            current_check.reset(token)
        result = replace(
            result,
            duration_s=round(self._clock() - started, 3),
            transient=(*result.transient, *watch.transient),
        )
        if watch.exposures:
            result = exposed(result, watch.exposures)
        redactor = redactor_for(ctx)
        result = redacted(result, redactor)
        for name, text in list(ctx.reports.items()):  # tool reports, kept as evidence
            ctx.reports[name] = redactor.redact(text)
        return replace(result, reports=tuple(sorted(ctx.reports))) if ctx.reports else result

    @staticmethod
    async def _awake(ctx: CheckContext) -> WakeReport:
        """The run's one wake; its requests are the wake's in the transcript, no check's."""
        token = current_check.set("wake")
        watching = current_watch.set(None)
        try:
            return await ctx.waker.wait(ctx)
        finally:
            current_watch.reset(watching)
            current_check.reset(token)


def _is_http_error(exc: Exception) -> TypeGuard[httpx.HTTPError]:
    """An httpx error? httpx not imported means no request was made (repository checks only)."""
    httpx = sys.modules.get("httpx")
    return httpx is not None and isinstance(exc, httpx.HTTPError)


def _gate_reason(attempt: GateAttempt) -> str:
    """The gate's one-line reason: the first check with the gate's status, or a summary."""
    for result in attempt.checks:
        if result.status is attempt.status and attempt.status is not Status.PASS:
            return f"{result.check_id}: {result.reason}"
    passed = sum(r.status.passed for r in attempt.checks)
    skipped = len(attempt.checks) - passed
    summary = f"{passed} check{'s' if passed != 1 else ''} passed"
    return summary + (f", {skipped} skipped" if skipped else "")
