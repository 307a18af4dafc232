"""A verify run's results (gates of checks, every attempt) and the verdict drawn from them."""

from __future__ import annotations

from dataclasses import dataclass

from checks.interface import CheckResult, Status
from opsctl.exitcodes import ExitCode


@dataclass(frozen=True)
class GateAttempt:
    """One try at a gate: the results of all its checks."""

    number: int
    status: Status
    checks: tuple[CheckResult, ...]


@dataclass(frozen=True)
class GateResult:
    """A gate's outcome; `checks` are those of the last attempt."""

    gate_id: str
    title: str
    blocking: bool
    status: Status
    reason: str
    checks: tuple[CheckResult, ...] = ()
    attempts: tuple[GateAttempt, ...] = ()
    duration_s: float = 0.0


SKIPPED_BY_REQUEST = "skipped with --skip"
"""The reason of a gate left out with --skip (bundles from before `scope` are read by it)."""


@dataclass(frozen=True)
class Scope:
    """Which gates the run was asked to run: all, or a part (--only / --skip)."""

    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    not_run: tuple[str, ...] = ()
    """Configured gates this run did not run (left out by --only, or skipped with --skip)."""

    @property
    def partial(self) -> bool:
        """Did the run leave any configured gate out?"""
        return bool(self.not_run)

    def describe(self) -> str:
        """'partial: --only P2.1; 5 gates not run (P2.2, ...)', or '' for a whole run."""
        if not self.partial:
            return ""
        asked = " ".join([*(f"--only {g}" for g in self.only), *(f"--skip {g}" for g in self.skip)])
        count = len(self.not_run)
        gates = "gate" if count == 1 else "gates"
        return f"partial: {asked}; {count} {gates} not run ({', '.join(self.not_run)})"


@dataclass(frozen=True)
class Verdict:
    """The run's exit code and its one line, decided together (judge)."""

    exit_code: ExitCode
    line: str
    status: Status
    """The verdict's own status (its word and colour): the deciding gate's, ERROR when nothing
    ran, else PASS or WARN (a pass with warnings)."""
    deciding: GateResult | None = None
    """The blocking gate that holds the exit code above 0, if any."""


@dataclass(frozen=True)
class RunResult:
    """Everything `opsctl verify` found, in gate order."""

    env: str
    target: str
    started_at: str
    duration_s: float
    gates: tuple[GateResult, ...]
    scope: Scope = Scope()

    @property
    def judgement(self) -> Verdict:
        """The verdict: exit code and line (computed by judge, the only place that decides)."""
        return judge(self.gates, self.scope)

    @property
    def exit_code(self) -> ExitCode:
        """See checks/statuses.py: each status's exit code; the most severe blocking gate wins."""
        return self.judgement.exit_code

    @property
    def verdict(self) -> str:
        """One line that comes before any detail."""
        return self.judgement.line


def in_scope(gates: tuple[GateResult, ...], scope: Scope) -> list[GateResult]:
    """The gates the run was asked to run (a gate skipped with --skip is not one)."""
    return [g for g in gates if g.gate_id not in scope.not_run]


def judge(gates: tuple[GateResult, ...], scope: Scope = Scope()) -> Verdict:
    """The exit code and the verdict line, from the same facts: the blocking gates in scope
    that are not done (checks/statuses.py says which statuses are), the most severe first."""
    counted = in_scope(gates, scope)
    counts = {s: sum(g.status is s for g in gates) for s in Status}
    tally = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    suffix = f" ({tally})" + (f"; {scope.describe()}" if scope.partial else "")
    open_gates = [g for g in counted if g.blocking and not g.status.meaning.done]
    if open_gates:
        first = max(open_gates, key=lambda g: g.status.meaning.severity)  # the first of the worst
        line = f"{first.status.value}: gate {first.gate_id} {first.title}: {first.reason}{suffix}"
        return Verdict(first.status.meaning.exit_code, line, first.status, first)
    if not any(g.status.passed for g in counted):
        # Nothing passed and nothing is open: nothing ran (all skipped or waived). Not a pass.
        return Verdict(ExitCode.UNREACHABLE, f"ERROR: no gate ran a check{suffix}", Status.ERROR)
    clean = all(g.status is Status.PASS for g in counted)
    waived = any(g.blocking and g.status is Status.DOCUMENTED_BLOCKED for g in counted)
    word = "PASS" if clean else "PASS with warnings"
    passed = "passed or is waived" if waived else "passed"
    status = Status.PASS if clean else Status.WARN
    return Verdict(ExitCode.OK, f"{word}: every blocking gate {passed}{suffix}", status)
