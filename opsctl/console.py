"""Terminal output: a live rich table with a spinner per running check, then the verdict first."""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from checks.interface import CheckResult
from opsctl.config import Gate
from opsctl.results import RunResult


class LiveTable:
    """Shows every check of the gates being run, a spinner while it runs, its status when done."""

    def __init__(self, gates: Sequence[Gate], console: Console) -> None:
        self._rows = {(g.id, c): "waiting" for g in gates for c in g.checks}
        self._results: dict[tuple[str, str], CheckResult] = {}
        self._spinners: dict[tuple[str, str], Spinner] = {}
        self._live = Live(self._table(), console=console, transient=True, refresh_per_second=12)

    def __enter__(self) -> LiveTable:
        self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._live.__exit__(kind, exc, tb)

    def on_event(self, gate_id: str, check_id: str, result: CheckResult | None) -> None:
        """Runner callback: a check started (result None) or finished."""
        key = (gate_id, check_id)
        if result is None:
            self._rows[key] = "running"
            self._spinners[key] = Spinner("dots", text=" running")
        else:
            self._rows[key] = "done"
            self._results[key] = result
        self._live.update(self._table())

    def _table(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        for column in ("gate", "check", "status", "time", "reason"):
            table.add_column(column)
        for (gate_id, check_id), state in self._rows.items():
            result = self._results.get((gate_id, check_id))
            status: Text | Spinner
            if result is not None:
                status = Text(result.status.value, style=result.status.meaning.style)
            elif state == "running":
                status = self._spinners[(gate_id, check_id)]
            else:
                status = Text("waiting", style="dim")
            table.add_row(
                gate_id,
                check_id,
                status,
                f"{result.duration_s:.2f}s" if result else "",
                result.reason if result else "",
            )
        return table


def print_run(run: RunResult, console: Console) -> None:
    """The verdict line, then a table of gates and checks with reasons and hints."""
    code_style = run.judgement.status.meaning.style
    console.print(Text(run.verdict, style=code_style))
    table = Table(box=None, header_style="bold")
    for column in ("status", "gate / check", "time", "reason"):
        table.add_column(column, overflow="fold")
    for gate in run.gates:
        tries = f" ({len(gate.attempts)} attempts)" if len(gate.attempts) > 1 else ""
        advisory = " [advisory]" if not gate.blocking else ""
        table.add_row(
            Text(gate.status.value, style=gate.status.meaning.style),
            Text(f"{gate.gate_id} {gate.title}{advisory}{tries}", style="bold"),
            f"{gate.duration_s:.2f}s" if gate.checks else "",
            gate.reason,
        )
        for check in gate.checks:
            reason = Text(check.reason)
            if check.hint and check.status.meaning.shows_hint:
                reason.append(f"\nhint: {check.hint}", style="italic")
            table.add_row(
                Text(check.status.value, style=check.status.meaning.style),
                f"  {check.check_id}",
                f"{check.duration_s:.2f}s",
                reason,
            )
    console.print(Group(table))
    console.print(f"env {run.env} at {run.target or '-'}, {run.duration_s:.1f}s", style="dim")
