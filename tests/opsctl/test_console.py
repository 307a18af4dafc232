"""The terminal view: verdict first, then the table; the live table shows running checks."""

from __future__ import annotations

import io

from rich.console import Console

from checks.interface import CheckResult, Status
from opsctl.config import Gate
from opsctl.console import LiveTable, print_run
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
