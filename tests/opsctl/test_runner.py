"""The runner: concurrency, needs, retries, budgets and crashes, with small checks of our own."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import replace

import httpx
import pytest

from checks.interface import Check, CheckContext, CheckResult, Expectations, Status
from opsctl.config import Gate, Retry
from opsctl.exitcodes import ExitCode
from opsctl.results import RunResult
from opsctl.runner import Runner
from tests.loopback import TLS


class Scripted(Check):
    """Returns the given statuses one call after another (the last one repeats); each result
    says it met a 502 (another attempt may help) unless `transient` is False."""

    needs_target = False  # scripted: no bot to wake

    def __init__(self, check_id: str, *statuses: Status, transient: bool = True) -> None:
        self.id, self.title, self.calls = check_id, check_id, 0
        self._statuses = statuses
        self._transient = ("502",) if transient else ()

    async def run(self, ctx: CheckContext) -> CheckResult:
        self.calls += 1
        status = self._statuses[min(self.calls, len(self._statuses)) - 1]
        return replace(self.result(status, f"call {self.calls}"), transient=self._transient)


class Rendezvous(Check):
    """Passes only if its partner is running at the same time (deadlocks if run one by one)."""

    needs_target = False

    def __init__(self, check_id: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        self.id = self.title = check_id
        self._mine, self._theirs = mine, theirs

    async def run(self, ctx: CheckContext) -> CheckResult:
        self._mine.set()
        await self._theirs.wait()
        return self.result(Status.PASS, "met")

    def budget_s(self, ctx: CheckContext) -> float:
        return 2.0


class Crashing(Check):
    id = title = "crashing"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        raise KeyError("components")


def run_gates(checks: dict[str, Check], gates: list[Gate], **skipped: str) -> RunResult:
    async def go() -> RunResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "test", "http://127.0.0.1:9", "http://127.0.0.1:9", Expectations(), client, {}
            )
            slept: list[float] = []

            async def no_sleep(seconds: float) -> None:
                slept.append(seconds)

            return await Runner(checks, sleep=no_sleep).run(gates, ctx, skipped)

    return asyncio.run(go())


def gate(gate_id: str, *checks: str, **options: object) -> Gate:
    return Gate(id=gate_id, title=gate_id, checks=checks, **options)  # type: ignore[arg-type]


def test_checks_of_a_gate_and_separate_gates_run_concurrently() -> None:
    async def go() -> RunResult:
        a, b, c = asyncio.Event(), asyncio.Event(), asyncio.Event()
        checks: dict[str, Check] = {
            "a": Rendezvous("a", a, b),
            "b": Rendezvous("b", b, a),
            "c": Rendezvous("c", c, a),
        }
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext("t", "http://x", "http://x", Expectations(), client, {})
            return await Runner(checks).run([gate("G1", "a", "b"), gate("G2", "c")], ctx)

    run = asyncio.run(go())
    assert [g.status for g in run.gates] == [Status.PASS, Status.PASS]


def test_a_failed_need_blocks_and_fails_the_run() -> None:
    checks: dict[str, Check] = {
        "ok": Scripted("ok", Status.PASS),
        "bad": Scripted("bad", Status.FAIL),
    }
    run = run_gates(checks, [gate("A", "bad"), gate("B", "ok"), gate("C", "ok", needs=("A", "B"))])
    assert [g.status for g in run.gates] == [Status.FAIL, Status.PASS, Status.BLOCKED]
    assert run.gates[2].reason == "needs A (FAIL)"
    assert run.exit_code is ExitCode.GATE_FAILED
    assert run.verdict == "FAIL: gate A A: bad: call 1 (1 PASS, 1 FAIL, 1 BLOCKED)"


def test_a_pass_after_a_retry_is_a_warning_with_every_attempt_kept() -> None:
    flaky = Scripted("flaky", Status.ERROR, Status.FAIL, Status.PASS)
    retry = Retry(attempts=5, budget_s=100, delay_s=1)
    run = run_gates({"flaky": flaky}, [gate("G", "flaky", retry=retry)])
    (result,) = run.gates
    assert result.status is Status.WARN
    assert result.reason == "passed on attempt 3; 1 check passed"
    assert [a.status for a in result.attempts] == [Status.ERROR, Status.FAIL, Status.PASS]
    assert run.exit_code is ExitCode.OK


def test_retries_stop_at_the_attempt_limit() -> None:
    broken = Scripted("broken", Status.FAIL)
    run = run_gates({"broken": broken}, [gate("G", "broken", retry=Retry(3, 100, 1))])
    assert broken.calls == 3
    assert run.gates[0].status is Status.FAIL and len(run.gates[0].attempts) == 3


def test_no_retry_when_nothing_met_could_change() -> None:
    # A DNS failure, a TLS error, a 404 or wrong content: asking again gets the same answer.
    broken = Scripted("broken", Status.FAIL, transient=False)
    run = run_gates({"broken": broken}, [gate("G", "broken", retry=Retry(3, 100, 1))])
    assert broken.calls == 1 and len(run.gates[0].attempts) == 1


def test_no_retry_without_budget() -> None:
    broken = Scripted("broken", Status.FAIL)
    run_gates({"broken": broken}, [gate("G", "broken", retry=Retry(3, 0.5, 1))])
    assert broken.calls == 1


def test_a_check_over_its_budget_is_an_error() -> None:
    never = asyncio.Event()
    stuck = Rendezvous("stuck", asyncio.Event(), never)
    run = run_gates({"stuck": stuck}, [gate("G", "stuck")])
    check = run.gates[0].checks[0]
    assert check.status is Status.ERROR
    assert re.fullmatch(r"did not finish: stopped after 2\.\ds \(its budget 2s\)", check.reason)
    assert run.exit_code is ExitCode.UNREACHABLE


def test_a_crashing_check_is_an_error_not_a_traceback() -> None:
    run = run_gates({"crashing": Crashing()}, [gate("G", "crashing")])
    check = run.gates[0].checks[0]
    assert check.status is Status.ERROR
    assert check.reason == "check crashed: KeyError: 'components'"
    assert check.hint == "run with --debug for the traceback"


@pytest.mark.parametrize(
    ("make", "status", "code"),
    [
        (lambda: [gate("A", skip_reason="later")], Status.SKIP, ExitCode.UNREACHABLE),
        (lambda: [gate("A", "w")], Status.WARN, ExitCode.OK),
    ],
)
def test_nothing_but_skips_is_not_a_pass(
    make: Callable[[], list[Gate]], status: Status, code: ExitCode
) -> None:
    run = run_gates({"w": Scripted("w", Status.WARN)}, make())
    assert run.gates[0].status is status
    assert run.exit_code is code


def test_advisory_failures_do_not_fail_the_run() -> None:
    checks: dict[str, Check] = {
        "ok": Scripted("ok", Status.PASS),
        "bad": Scripted("bad", Status.FAIL),
    }
    run = run_gates(checks, [gate("A", "ok"), gate("N", "bad", blocking=False)])
    assert run.exit_code is ExitCode.OK


def test_skipped_gates_block_what_needs_them() -> None:
    checks: dict[str, Check] = {"ok": Scripted("ok", Status.PASS)}
    run = run_gates(
        checks, [gate("A", "ok"), gate("B", "ok", needs=("A",))], A="skipped with --skip"
    )
    assert [(g.status, g.reason) for g in run.gates] == [
        (Status.SKIP, "skipped with --skip"),
        (Status.BLOCKED, "needs A (SKIP)"),
    ]


class Reporting(Rendezvous):
    """Writes a report of its own while its partner runs (and writes its own)."""

    async def run(self, ctx: CheckContext) -> CheckResult:
        self._mine.set()
        await self._theirs.wait()
        ctx.reports[f"{self.id}.txt"] = f"{self.id}'s findings\n"
        await asyncio.sleep(0)  # the partner writes its report meanwhile
        return self.result(Status.PASS, "reported")


def test_each_result_names_the_reports_its_check_wrote_and_no_other() -> None:
    async def go() -> tuple[RunResult, dict[str, str]]:
        a, b = asyncio.Event(), asyncio.Event()
        checks: dict[str, Check] = {
            "a": Reporting("a", a, b),
            "b": Reporting("b", b, a),
            "c": Scripted("c", Status.PASS),
        }
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext("t", "http://x", "http://x", Expectations(), client, {})
            run = await Runner(checks).run([gate("G1", "a", "b", "c")], ctx)
            return run, ctx.reports

    run, reports = asyncio.run(go())
    by_id = {c.check_id: c for c in run.gates[0].checks}
    assert by_id["a"].reports == ("a.txt",)
    assert by_id["b"].reports == ("b.txt",)
    assert by_id["c"].reports == ()
    assert reports == {"a.txt": "a's findings\n", "b.txt": "b's findings\n"}  # all kept
