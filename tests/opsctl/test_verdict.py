"""The verdict and the exit code come from one judgement, for every mix of statuses and scopes."""

from __future__ import annotations

import itertools
import re

import pytest

from checks.statuses import EXIT_MEANING, MEANING, ExitCode, Status, exit_code_table, status_table
from opsctl.results import GateResult, RunResult, Scope, judge
from tests.conftest import REPO_ROOT


def gate(gate_id: str, status: Status, reason: str = "why", blocking: bool = True) -> GateResult:
    return GateResult(gate_id, f"gate {gate_id}", blocking, status, reason)


def test_only_p26_skip_p21_is_blocked_not_a_pass() -> None:
    """Issue 12: `--only P2.6 --skip P2.1` said PASS and exited 0; P2.6 never ran."""
    scope = Scope(only=("P2.6",), skip=("P2.1",), not_run=("P2.1", "P2.3", "P2.4", "P2.5"))
    gates = (
        gate("P2.1", Status.SKIP, "skipped with --skip"),
        gate("P2.2", Status.PASS),
        gate("P2.6", Status.BLOCKED, "needs P2.1 (SKIP)"),
    )
    verdict = judge(gates, scope)
    assert verdict.exit_code is ExitCode.GATE_FAILED
    assert verdict.line == (
        "BLOCKED: gate P2.6 gate P2.6: needs P2.1 (SKIP) (1 PASS, 1 SKIP, 1 BLOCKED); "
        "partial: --only P2.6 --skip P2.1; 4 gates not run (P2.1, P2.3, P2.4, P2.5)"
    )


def test_a_waived_gate_blocks_what_needs_it() -> None:
    gates = (
        gate("P2.1", Status.DOCUMENTED_BLOCKED, "waived by PM"),
        gate("P2.2", Status.PASS),
        gate("P2.6", Status.BLOCKED, "needs P2.1 (DOCUMENTED-BLOCKED)"),
    )
    assert judge(gates).exit_code is ExitCode.GATE_FAILED
    assert judge(gates).line.startswith("BLOCKED: gate P2.6 ")


def test_an_advisory_error_that_blocks_a_blocking_gate_is_judged_not_crashed() -> None:
    """Issue 12: this mix ended in `internal error: StopIteration` and no bundle."""
    gates = (
        gate("P2.4", Status.ERROR, "Notion is not set up", blocking=False),
        gate("P2.7", Status.BLOCKED, "needs P2.4 (ERROR)"),
    )
    verdict = judge(gates)
    assert (verdict.exit_code, verdict.status) == (ExitCode.GATE_FAILED, Status.BLOCKED)


@pytest.mark.parametrize(
    ("statuses", "code", "start"),
    [
        ((Status.PASS, Status.PASS), ExitCode.OK, "PASS: every blocking gate passed (2 PASS)"),
        ((Status.PASS, Status.WARN), ExitCode.OK, "PASS with warnings: every blocking gate passed"),
        (
            (Status.PASS, Status.DOCUMENTED_BLOCKED),
            ExitCode.OK,
            "PASS with warnings: every blocking gate passed or is waived",
        ),
        ((Status.ERROR, Status.FAIL), ExitCode.GATE_FAILED, "FAIL: gate B "),
        ((Status.BLOCKED, Status.ERROR), ExitCode.UNREACHABLE, "ERROR: gate B "),
        ((Status.PASS, Status.SKIP), ExitCode.UNREACHABLE, "SKIP: gate B "),
        ((Status.SKIP, Status.SKIP), ExitCode.UNREACHABLE, "SKIP: gate A "),
        (
            (Status.DOCUMENTED_BLOCKED, Status.DOCUMENTED_BLOCKED),
            ExitCode.UNREACHABLE,
            "ERROR: no gate ran a check (2 DOCUMENTED-BLOCKED)",
        ),
    ],
)
def test_verdicts(statuses: tuple[Status, Status], code: ExitCode, start: str) -> None:
    verdict = judge((gate("A", statuses[0]), gate("B", statuses[1])))
    assert verdict.exit_code is code
    assert verdict.line.startswith(start), verdict.line


def test_every_mix_of_statuses_and_scopes_gives_one_consistent_verdict() -> None:
    """7 statuses on two blocking gates and an advisory one, each in or out of scope: the exit
    code is 0 exactly when every blocking gate in scope is done and one passed; otherwise it is
    the most severe open gate's own code, and the line starts with that gate's status."""
    for statuses in itertools.product(Status, repeat=3):
        for left_out in itertools.product((False, True), repeat=3):
            a, b, c = statuses
            gates = (gate("A", a), gate("B", b), gate("C", c, blocking=False))
            chosen = list(zip(gates, left_out, strict=True))
            scope = Scope(not_run=tuple(g.gate_id for g, out in chosen if out))
            verdict = RunResult("e", "", "", 0.0, gates, scope).judgement
            counted = [g for g, out in chosen if not out]
            open_gates = [g for g in counted if g.blocking and not MEANING[g.status].done]
            word = "PASS" if verdict.status is Status.WARN else verdict.status.value
            assert verdict.line.startswith(word)
            if open_gates:
                worst = max(open_gates, key=lambda g: MEANING[g.status].severity)
                assert verdict.exit_code == MEANING[worst.status].exit_code != ExitCode.OK
                assert verdict.deciding is worst
            elif any(MEANING[g.status].lets_dependants_run for g in counted):
                assert verdict.exit_code is ExitCode.OK
            else:
                assert verdict.exit_code is ExitCode.UNREACHABLE
            assert ("partial:" in verdict.line) == any(left_out)


def test_the_readme_tables_are_the_ones_in_checks_statuses() -> None:
    readme = (REPO_ROOT / "README.md").read_text()
    assert status_table() in readme, "README: paste checks.statuses.status_table()"
    assert exit_code_table() in readme, "README: paste checks.statuses.exit_code_table()"


def test_every_status_and_exit_code_has_a_meaning_and_a_json_name() -> None:
    import json

    schema = json.loads((REPO_ROOT / "evidence/schemas/verify-v1.json").read_text())
    assert schema["$defs"]["status"]["enum"] == [s.value for s in Status]
    assert set(MEANING) == set(Status) and set(EXIT_MEANING) == set(ExitCode)
    assert set(schema["properties"]["verdict"]["properties"]["exit_code"]["enum"]) == {
        int(m.exit_code) for m in MEANING.values()
    } | {0}
    assert all(re.fullmatch(r"[A-Z-]+", s.value) for s in Status)
