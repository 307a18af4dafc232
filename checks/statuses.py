"""What each status means, in one table: severity, dependants, exit code, colours, JUnit, hint."""

from __future__ import annotations

import enum
from dataclasses import dataclass

# The exit codes live in a module of their own: `opsctl --help` prints them and needs nothing
# else of this one, whose dataclasses import costs the CLI's start ~20 ms (issue 17).
from checks.exitcodes import EXIT_MEANING as EXIT_MEANING
from checks.exitcodes import ExitCode as ExitCode


class Status(enum.StrEnum):
    """A check's or a gate's outcome."""

    PASS = "PASS"  # noqa: S105 - a status, not a password
    WARN = "WARN"
    FAIL = "FAIL"
    ERROR = "ERROR"
    SKIP = "SKIP"
    BLOCKED = "BLOCKED"
    DOCUMENTED_BLOCKED = "DOCUMENTED-BLOCKED"

    @property
    def meaning(self) -> Meaning:
        """This status's row of MEANING."""
        return MEANING[self]

    @property
    def passed(self) -> bool:
        """Does it let the gates that need this one run?"""
        return MEANING[self].lets_dependants_run


@dataclass(frozen=True)
class Meaning:
    """Everything a status implies, for every layer and format."""

    summary: str
    """One line for people (the README's table is generated from these)."""
    severity: int
    """Combining several into one (a gate's checks; the run's deciding gate): the highest wins."""
    lets_dependants_run: bool
    done: bool
    """A blocking gate with this status does not hold the run's exit code above 0."""
    closes_phase: bool
    """Counts towards a closed phase (PHASE-STATUS.md, Notion)."""
    exit_code: ExitCode
    """What a blocking gate with this status, if it decides the run, makes the exit code."""
    style: str
    """rich style on a terminal."""
    colour: str
    """CSS colour in the HTML report."""
    junit: str | None
    """JUnit element of a blocking check's testcase (None: a passed testcase)."""
    shows_hint: bool
    """Print the check's hint (what to do) under its reason."""


MEANING: dict[Status, Meaning] = {
    Status.PASS: Meaning(
        "passed; the reason says how much was looked at",
        0, True, True, True, ExitCode.OK, "bold green", "#1a7f37", None, False,
    ),
    Status.WARN: Meaning(
        "passed with something to look at (a pass after a retry, a manual item not signed off)",
        2, True, True, False, ExitCode.OK, "bold yellow", "#9a6700", None, True,
    ),
    Status.DOCUMENTED_BLOCKED: Meaning(
        "waived on the record (`opsctl gate waive`): known not done, never a PASS",
        3, False, True, True, ExitCode.OK, "bold blue", "#0969da", "skipped", True,
    ),
    Status.SKIP: Meaning(
        "nothing ran, with the reason (outside the run's scope with --only/--skip: not counted)",
        1, False, False, False, ExitCode.UNREACHABLE, "dim", "#6e7781", "skipped", False,
    ),
    Status.BLOCKED: Meaning(
        "not run: a gate it needs did not pass",
        3, False, False, False, ExitCode.GATE_FAILED, "dim red", "#bc4c00", "failure", True,
    ),
    Status.ERROR: Meaning(
        "could not run: refused, DNS, timeout, missing secret, interrupted",
        4, False, False, False, ExitCode.UNREACHABLE, "bold magenta", "#8250df", "error", True,
    ),
    Status.FAIL: Meaning(
        "ran and found the bot or the repository wrong",
        5, False, False, False, ExitCode.GATE_FAILED, "bold red", "#cf222e", "failure", True,
    ),
}  # fmt: skip
# A status or exit code added without its meaning stops every import, not just one format.
if set(MEANING) != set(Status):
    raise RuntimeError("a status has no meaning in checks/statuses.py")

# How bad each status is when several are combined into one (a gate's checks).
SEVERITY = {status: meaning.severity for status, meaning in MEANING.items()}


def worst(statuses: list[Status]) -> Status:
    """The most severe status; SKIP only when everything was skipped."""
    if not statuses:
        return Status.SKIP
    ran = [s for s in statuses if s is not Status.SKIP] or statuses
    return max(ran, key=SEVERITY.__getitem__)


def status_table() -> str:
    """The README's table of statuses, as Markdown."""
    rows = [
        "| Status | Meaning | Dependants run | Closes the phase | Exit code (blocking gate) |",
        "|---|---|---|---|---|",
    ]
    for status, m in MEANING.items():
        yes = {True: "yes", False: "no"}
        rows.append(
            f"| {status.value} | {m.summary} | {yes[m.lets_dependants_run]} "
            f"| {yes[m.closes_phase]} | {int(m.exit_code)} |"
        )
    return "\n".join(rows)


def exit_code_table() -> str:
    """The README's table of exit codes, as Markdown."""
    rows = ["| Exit code | Meaning |", "|---|---|"]
    rows += [f"| {int(code)} | {EXIT_MEANING[code]} |" for code in ExitCode]
    return "\n".join(rows)
