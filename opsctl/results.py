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


@dataclass(frozen=True)
class RunResult:
    """Everything `opsctl verify` found, in gate order."""

    env: str
    target: str
    started_at: str
    duration_s: float
    gates: tuple[GateResult, ...]

    @property
    def exit_code(self) -> ExitCode:
        """0 all blocking gates passed (warnings allowed); 1 one failed; 3 one could not run."""
        return exit_code_for(self.gates)

    @property
    def verdict(self) -> str:
        """One line that comes before any detail."""
        return verdict_line(self.gates)


def _blocking(gates: tuple[GateResult, ...]) -> list[GateResult]:
    return [g for g in gates if g.blocking]


def exit_code_for(gates: tuple[GateResult, ...]) -> ExitCode:
    """The same code whatever the output format; a failure outranks a check that could not run."""
    statuses = {g.status for g in _blocking(gates)}
    if Status.FAIL in statuses:
        return ExitCode.GATE_FAILED
    if Status.ERROR in statuses:
        return ExitCode.UNREACHABLE
    if not any(g.status.passed for g in gates):
        # Nothing passed and nothing failed: everything was skipped. Not a pass.
        return ExitCode.UNREACHABLE
    return ExitCode.OK


def verdict_line(gates: tuple[GateResult, ...]) -> str:
    """'PASS: ...', 'FAIL: ...' or 'ERROR: ...' with counts and the first problem named."""
    code = exit_code_for(gates)
    counts = {s: sum(g.status is s for g in gates) for s in Status}
    tally = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
    if code is ExitCode.OK:
        # An advisory gate that failed or could not run is a warning too, not a clean pass.
        flawed = counts[Status.WARN] + counts[Status.FAIL] + counts[Status.ERROR]
        word = "PASS with warnings" if flawed else "PASS"
        return f"{word}: every blocking gate passed ({tally})"
    if code is ExitCode.UNREACHABLE and not any(g.status is Status.ERROR for g in gates):
        return f"ERROR: no gate ran a check ({tally})"
    wanted = Status.FAIL if code is ExitCode.GATE_FAILED else Status.ERROR
    first = next(g for g in _blocking(gates) if g.status is wanted)
    return f"{wanted.value}: gate {first.gate_id} {first.title}: {first.reason} ({tally})"
