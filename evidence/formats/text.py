"""Plain text: the verdict line first, then one line per gate and check (no colour, no layout)."""

from __future__ import annotations

from opsctl.results import RunResult


def render_text(run: RunResult) -> str:
    """The whole run as plain lines, for logs, pipes and NO_COLOR terminals."""
    lines = [run.verdict, f"env {run.env} at {run.target or '-'}, {run.duration_s:.1f}s"]
    for gate in run.gates:
        kind = "" if gate.blocking else " (advisory)"
        tries = f" after {len(gate.attempts)} attempts" if len(gate.attempts) > 1 else ""
        lines.append(
            f"{gate.status.value:<7} {gate.gate_id} {gate.title}{kind}{tries}: {gate.reason}"
        )
        for check in gate.checks:
            timing = f"({check.duration_s:.2f}s)"
            lines.append(f"  {check.status.value:<7} {check.check_id} {timing}: {check.reason}")
            if check.hint and check.status.meaning.shows_hint:
                lines.append(f"          hint: {check.hint}")
    return "\n".join(lines) + "\n"
