"""Plain text: the verdict line first, then one line per gate and check (no colour, no layout)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from checks.interface import CheckResult
from checks.statuses import Status
from evidence.formats.shared import repeats_a_check
from opsctl.results import GateResult, RunResult

# Which checks a listing shows; the whole run by default.
CheckFilter = Callable[[GateResult, CheckResult], bool]


class Line(NamedTuple):
    """One line of text: its indent, the status word it leads with, the rest. Whoever prints it
    may colour `lead` with `status`'s style (a NamedTuple so it serialises like the text)."""

    indent: str
    lead: str
    """The status word, padded (or the whole verdict line); empty when the line has none."""
    status: Status | None
    rest: str

    def __str__(self) -> str:
        return f"{self.indent}{self.lead}{self.rest}"


def render_text(run: RunResult) -> str:
    """The whole run as plain lines, for logs, pipes and `--progress none`."""
    return "\n".join(str(line) for line in text_lines(run)) + "\n"


def _every_check(gate: GateResult, check: CheckResult) -> bool:
    return True


def text_lines(run: RunResult, shows: CheckFilter = _every_check) -> list[Line]:
    """The verdict, where the run went, each gate, and each check that `shows` keeps."""
    lines = [
        Line("", run.verdict, run.judgement.status, ""),
        Line("", "", None, f"env {run.env} at {run.target or '-'}, {run.duration_s:.1f}s"),
    ]
    for gate in run.gates:
        kind = "" if gate.blocking else " (advisory)"
        tries = f" after {len(gate.attempts)} attempts" if len(gate.attempts) > 1 else ""
        shown = [check for check in gate.checks if shows(gate, check)]
        # Said once: not on the gate's line when a check's line below says the same.
        reason = "" if repeats_a_check(gate, shown) else f": {gate.reason}"
        lines.append(
            Line(
                "",
                f"{gate.status.value:<7} ",
                gate.status,
                f"{gate.gate_id} {gate.title}{kind}{tries}{reason}",
            )
        )
        for check in shown:
            lines.append(check_line(check, indent="  "))
            hint = hint_line(check, indent="  ")
            if hint is not None:
                lines.append(hint)
    return lines


def check_line(check: CheckResult, indent: str = "", gate_id: str = "", attempt: int = 1) -> Line:
    """A check's line: `gate_id` before its id when given (and not the check's own, as with
    `opsctl check`), the attempt when not the first."""
    where = check.check_id if gate_id in ("", check.check_id) else f"{gate_id} {check.check_id}"
    again = f", attempt {attempt}" if attempt > 1 else ""
    return Line(
        indent,
        f"{check.status.value:<7} ",
        check.status,
        f"{where} ({check.duration_s:.2f}s{again}): {check.reason}",
    )


def hint_line(check: CheckResult, indent: str = "") -> Line | None:
    """What to do, under the check's line, when its status calls for it."""
    if not (check.hint and check.status.meaning.shows_hint):
        return None
    return Line(indent + " " * 8, "", None, f"hint: {check.hint}")
