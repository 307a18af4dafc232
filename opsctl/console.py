"""What people read while a run goes and after it: the live table, the plain lines, the verdict
first; rich does the styling, opsctl/output.py decides how much of it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import TextIO

from rich.console import Console, Group
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from checks.interface import CheckResult
from evidence.formats.shared import repeats_a_check
from evidence.formats.text import Line, check_line, text_lines
from opsctl.config import Gate
from opsctl.output import Output
from opsctl.results import GateResult, RunResult


def make_console(output: Output, file: TextIO) -> Console:
    """A rich console that does what `output` decided, whatever rich would guess from the
    environment: it reads NO_COLOR, FORCE_COLOR and TTY_* itself, and FORCE_COLOR would make it
    animate the live table into a CI log."""
    live = output.progress == "live"
    system = ("auto" if output.terminal else "standard") if output.color else None
    return Console(
        file=file,
        force_terminal=output.terminal or live,  # cursor moves: the live table needs them
        force_interactive=live,
        color_system=system,  # type: ignore[arg-type]  # rich's Literal, or None
        no_color=False,  # colour is already decided: NO_COLOR is in `system`
        highlight=False,
        emoji=False,
    )


def print_lines(lines: Iterable[Line], console: Console, prefix: str = "") -> None:
    """Each line as it is, its status word in the status's style; never wrapped (a log's line
    is one line, whatever the width rich assumes for a pipe). `prefix` leads every line (an
    environment's name when a run has several)."""
    for line in lines:
        word = line.lead.rstrip()  # the padding after it stays unstyled
        text = Text(prefix + line.indent)
        text.append(word, style=line.status.meaning.style if line.status else "")
        text.append(line.lead[len(word) :] + line.rest)
        console.print(text, soft_wrap=True)


class PlainProgress:
    """One line per finished check, written and flushed as it finishes (pipes, CI logs), and a
    line when the first check that talks to the bot starts waiting for the target to wake."""

    def __init__(
        self,
        console: Console,
        talks_to_bot: Callable[[str], bool],
        wake_timeout_s: float,
        prefix: str = "",
    ) -> None:
        self.prefix = prefix
        """What leads each of its lines: the environment's name when a run has several."""
        self._console = console
        self._talks_to_bot = talks_to_bot
        self._wake_timeout_s = wake_timeout_s
        self._woken = False
        self._finished: Counter[tuple[str, str]] = Counter()

    def on_event(self, gate_id: str, check_id: str, result: CheckResult | None) -> None:
        """Runner callback: a check started (result None) or finished."""
        if result is None:
            # The runner announces a gate's checks before the run's one wake of the target.
            if not self._woken and self._talks_to_bot(check_id):
                self._woken = True
                wait = f"GET /health until the bot answers (up to {self._wake_timeout_s:g}s)"
                line = Line("", "", None, f"waking the target: {wait}")
                print_lines([line], self._console, self.prefix)
            return
        self._finished[(gate_id, check_id)] += 1
        attempt = self._finished[(gate_id, check_id)]
        line = check_line(result, gate_id=gate_id, attempt=attempt)
        print_lines([line], self._console, self.prefix)

    @property
    def printed(self) -> bool:
        """Did a check's line go out (so the summary is set apart from the lines)?"""
        return bool(self._finished)

    def unsettled(self, gate: GateResult, check: CheckResult) -> bool:
        """For the summary after the lines: a check no line showed (a manual criterion), or one
        whose status comes with something to do (again, now with its hint, as pytest's short
        summary repeats the failures); a PASS or a SKIP already shown is not repeated."""
        shown = self._finished[(gate.gate_id, check.check_id)] > 0
        return not shown or check.status.meaning.shows_hint


def print_summary(run: RunResult, console: Console, progress: PlainProgress) -> None:
    """After the plain lines: the verdict, the gates, and the checks still to look at."""
    if progress.printed:
        console.print()
    print_lines(text_lines(run, progress.unsettled), console, progress.prefix)


# A row of the live table, by its first cells: (gate, check), or (environment, gate, check)
# when the run has several environments.
Row = tuple[str, ...]


class LiveTable:
    """Shows every check of the gates being run, a spinner while it runs, its status when done;
    with several environments (`envs`), a row per environment and check, named."""

    def __init__(self, gates: Sequence[Gate], console: Console, envs: Sequence[str] = ()) -> None:
        self._envs = list(envs)
        self._rows: dict[Row, str] = {
            _row(e, g.id, c): "waiting" for e in self._envs or [""] for g in gates for c in g.checks
        }
        self._results: dict[Row, CheckResult] = {}
        self._spinners: dict[Row, Spinner] = {}
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
        self.event("", gate_id, check_id, result)

    def listener(self, env: str) -> EnvironmentRows:
        """What hears one environment's checks, when a run has several."""
        return EnvironmentRows(self, env)

    def event(self, env: str, gate_id: str, check_id: str, result: CheckResult | None) -> None:
        key = _row(env, gate_id, check_id)
        if result is None:
            self._rows[key] = "running"
            self._spinners[key] = Spinner("dots", text=" running")
        else:
            self._rows[key] = "done"
            self._results[key] = result
        self._live.update(self._table())

    def _table(self) -> Table:
        table = Table(box=None, show_header=True, header_style="bold")
        named = bool(self._envs)
        for column in ("env", "gate", "check", "status", "time", "reason")[0 if named else 1 :]:
            table.add_column(column)
        for key, state in self._rows.items():
            result = self._results.get(key)
            status: Text | Spinner
            if result is not None:
                status = Text(result.status.value, style=result.status.meaning.style)
            elif state == "running":
                status = self._spinners[key]
            else:
                status = Text("waiting", style="dim")
            table.add_row(
                *key,
                status,
                f"{result.duration_s:.2f}s" if result else "",
                result.reason if result else "",
            )
        return table


def _row(env: str, gate_id: str, check_id: str) -> Row:
    """A live table row's key, its first cells: the environment's name only with several."""
    return (env, gate_id, check_id) if env else (gate_id, check_id)


class EnvironmentRows:
    """One environment's rows of a LiveTable shared by several: hears that run's checks."""

    def __init__(self, table: LiveTable, env: str) -> None:
        self._table = table
        self._env = env

    def on_event(self, gate_id: str, check_id: str, result: CheckResult | None) -> None:
        """Runner callback: a check of this environment started (result None) or finished."""
        self._table.event(self._env, gate_id, check_id, result)


def print_run(run: RunResult, console: Console, label: str = "") -> None:
    """The verdict line (after `label`: the environment's name when a run has several), then a
    table of gates and checks with reasons and hints."""
    code_style = run.judgement.status.meaning.style
    console.print(Text(label + run.verdict, style=code_style))
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
            "" if repeats_a_check(gate, gate.checks) else gate.reason,  # said once, below
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
