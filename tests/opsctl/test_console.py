"""What people read: verdict first, the live table of running checks, the plain lines."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from checks.interface import CheckResult, Status
from evidence.formats.text import check_line, render_text
from opsctl.config import Gate
from opsctl.console import (
    LiveTable,
    PlainProgress,
    make_console,
    print_lines,
    print_run,
    print_summary,
)
from opsctl.output import Output
from tests.evidence.test_formats import sample_run


def test_print_run_puts_the_verdict_first() -> None:
    buffer = io.StringIO()
    print_run(sample_run(), Console(file=buffer, width=200, color_system=None))
    lines = buffer.getvalue().splitlines()
    assert lines[0] == sample_run().verdict
    assert any("P2.2 Render deploy (2 attempts)" in line for line in lines)
    assert any("hint: the webhook must check signatures" in line for line in lines)


def test_live_table_tracks_checks() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=120, force_terminal=True, color_system=None)
    with LiveTable([Gate("P2.1", "Twilio", ("webhook",))], console) as table:
        table.on_event("P2.1", "webhook", None)
        assert table._rows[("P2.1", "webhook")] == "running"
        done = CheckResult("webhook", "w", Status.PASS, "4 cases as expected")
        table.on_event("P2.1", "webhook", done)
        assert table._results[("P2.1", "webhook")] is done
    assert "webhook" in buffer.getvalue()


def test_plain_progress_prints_each_finished_check_once_with_its_attempt() -> None:
    buffer = io.StringIO()
    output = Output("plain", color=False, terminal=False, to_stderr=False, final="summary")
    progress = PlainProgress(make_console(output, buffer), {"health"}.__contains__, 120)
    progress.on_event("P2.6", "secrets", None)  # a repository check: nothing to wake
    progress.on_event("P2.2", "health", None)
    progress.on_event("P2.2", "health", None)  # the runner announces it again: one wake line
    failed = CheckResult("health", "h", Status.ERROR, "timed out", "is it up?", duration_s=2.5)
    progress.on_event("P2.2", "health", failed)
    progress.on_event("P2.2", "health", CheckResult("health", "h", Status.PASS, "ok", "is it up?"))
    assert buffer.getvalue() == (
        "waking the target: GET /health until the bot answers (up to 120s)\n"
        "ERROR   P2.2 health (2.50s): timed out\n"
        "PASS    P2.2 health (0.00s, attempt 2): ok\n"
    )


def test_the_summary_after_plain_lines_repeats_only_what_needs_doing() -> None:
    """Every check of the sample is shown as a line, then the summary: the verdict, every gate,
    and again only the checks whose status comes with something to do (with their hint)."""
    buffer = io.StringIO()
    output = Output("plain", color=False, terminal=False, to_stderr=False, final="summary")
    console = make_console(output, buffer)
    run = sample_run()
    progress = PlainProgress(console, lambda check_id: False, 10)
    for gate in run.gates:
        for check in gate.checks:
            progress.on_event(gate.gate_id, check.check_id, check)
    streamed = buffer.getvalue()
    print_summary(run, console, progress)
    summary = buffer.getvalue()[len(streamed) :]
    assert summary.startswith("\n" + run.verdict + "\n")
    repeated = [line.split()[:2] for line in summary.splitlines() if line.startswith("  ")]
    expected = [
        [c.status.value, c.check_id]
        for g in run.gates
        for c in g.checks
        if c.status.meaning.shows_hint
    ]
    assert expected and [r for r in repeated if r[0] != "hint:"] == expected
    assert all(line in summary for line in render_text(run).splitlines() if "hint:" in line)
    assert len(summary.splitlines()) < len(render_text(run).splitlines())


def test_plain_lines_are_never_wrapped_and_coloured_only_when_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rich assumes 80 columns in a pipe and reads FORCE_COLOR itself: neither may decide."""
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TTY_COMPATIBLE", "1")
    long = CheckResult("webhook", "w", Status.FAIL, "x" * 300)
    for colour in (False, True):
        buffer = io.StringIO()
        output = Output("plain", color=colour, terminal=False, to_stderr=False, final="summary")
        console = make_console(output, buffer)
        assert not console.is_terminal and not console.is_interactive
        print_lines([check_line(long, gate_id="P2.1")], console)
        (line,) = buffer.getvalue().splitlines()
        assert line.endswith("x" * 300)
        assert line.startswith("\x1b[1;31mFAIL\x1b[0m    P2.1" if colour else "FAIL    P2.1")
