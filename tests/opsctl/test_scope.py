"""Partial, waived and interrupted runs as users script them: never a PASS they did not earn,
never a closed phase, never a rewritten page they did not ask for (issue 12)."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import jsonschema

from checks.interface import Status
from evidence.bundle import BundleInputs, EvidenceWriter
from evidence.phase_status import NOT_RUN
from evidence.store import phase_rows
from opsctl.results import GateResult, RunResult, Scope
from tests.conftest import OPSCTL, REPO_ROOT, config_copy
from tests.conftest import run_opsctl as opsctl
from tests.terminal import read_terminal

SCHEMA = json.loads((REPO_ROOT / "evidence" / "schemas" / "verify-v1.json").read_text())


def test_a_blocking_gate_that_never_ran_is_not_a_pass() -> None:
    """`--only P2.6 --skip P2.1` said `PASS: every blocking gate passed` and exited 0."""
    done = opsctl(
        "verify", "--env", "local", "--only", "P2.6", "--skip", "P2.1", "--no-evidence",
        "--progress", "none",  # the final text alone: its first line is the verdict
    )  # fmt: skip
    verdict = done.stdout.splitlines()[0]
    assert done.returncode == 1, done.stdout + done.stderr
    assert verdict.startswith("BLOCKED: gate P2.6 Security: needs P2.1 (SKIP) ("), verdict
    assert verdict.endswith(
        "; partial: --only P2.6 --skip P2.1; 4 gates not run (P2.1, P2.3, P2.4, P2.5)"
    )


def test_gates_left_out_by_skip_start_nothing_for_their_checks() -> None:
    """With every gate that talks to the bot skipped, `verify --env local` started the bot (and
    an HTTP client) all the same: a skipped gate's checks decided what the run prepared."""
    done = opsctl(
        "verify", "--env", "local", "--only", "P2.6", "--skip", "P2.1", "--skip", "P2.2",
        "--no-evidence", "--json",
    )  # fmt: skip
    run = json.loads(done.stdout)
    assert done.returncode == 1, done.stdout + done.stderr  # BLOCKED: it needs what was skipped
    assert run["target"] == "", "no bot was started for the skipped gates"
    assert [(g["id"], g["status"]) for g in run["gates"]] == [
        ("P2.1", "SKIP"),
        ("P2.2", "SKIP"),
        ("P2.6", "BLOCKED"),
    ]


def test_a_waived_gate_and_what_it_blocks_in_every_format(tmp_path: Path) -> None:
    """A waived P2.1 crashed the terminal table and was missing from the JSON schema; the gate it
    blocks said `PASS with warnings`, exit 0."""
    config = str(config_copy(tmp_path))
    assert (
        opsctl(
            "gate",
            "waive",
            "P2.1",
            "--reason",
            "Twilio number pending",
            "--by",
            "PM",
            "--config",
            config,
        ).returncode
        == 0
    )
    junit = tmp_path / "verify.xml"
    as_json = opsctl(
        "verify",
        "--env",
        "local",
        "--only",
        "P2.6",
        "--skip",
        "P2.5",
        "--config",
        config,
        "--json",
        "--junit",
        str(junit),
    )
    assert as_json.returncode == 1, as_json.stderr
    run = json.loads(as_json.stdout)
    jsonschema.validate(run, SCHEMA)
    status = {g["id"]: (g["status"], g["reason"]) for g in run["gates"]}
    assert status["P2.1"][0] == "DOCUMENTED-BLOCKED"
    assert status["P2.6"] == ("BLOCKED", "needs P2.1 (DOCUMENTED-BLOCKED)")
    assert run["verdict"]["exit_code"] == 1 and run["scope"]["partial"] is True
    assert 'message="BLOCKED: needs P2.1 (DOCUMENTED-BLOCKED)"' in junit.read_text()
    from xml.etree import ElementTree

    suites = ElementTree.parse(junit).getroot()
    partial = "partial: --only P2.6 --skip P2.5; 3 gates not run (P2.3, P2.4, P2.5)"
    assert suites.get("name") == f"opsctl verify local ({partial})"
    names = [s.get("name") for s in suites.iter("testsuite")]
    assert names[-3:] == ["P2.3", "P2.4", "P2.5"]  # left out, still shown: skipped
    assert suites.find("testsuite[@name='P2.4']/testcase/skipped").get("message") == (  # type: ignore[union-attr]
        f"not run: {partial}"
    )
    text = opsctl(
        "verify", "--env", "local", "--only", "P2.6", "--config", config, "--no-evidence",
        "--progress", "none",
    )  # fmt: skip
    assert text.returncode == 1 and "Traceback" not in text.stderr
    assert text.stdout.startswith("BLOCKED: gate P2.6 Security: needs P2.1 (DOCUMENTED-BLOCKED)")


def test_another_evidence_dir_leaves_the_configured_page_alone(tmp_path: Path) -> None:
    config = config_copy(tmp_path)
    other = tmp_path / "elsewhere"
    done = opsctl(
        "verify",
        "--env",
        "local",
        "--only",
        "P2.1",
        "--config",
        str(config),
        "--evidence-dir",
        str(other),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert [p.name for p in other.iterdir() if not p.name.startswith(".")]
    assert not (tmp_path / "PHASE-STATUS.md").exists()


def gates(*pairs: tuple[str, Status]) -> tuple[GateResult, ...]:
    return tuple(GateResult(g, f"title {g}", True, s, "why") for g, s in pairs)


def bundle(root: Path, hour: int, run: RunResult, outcome: str = "completed") -> None:
    def now() -> datetime:
        return datetime(2026, 11, 28, hour, 0, 0, tzinfo=UTC)

    inputs = BundleInputs(run, "0.1.0", "abc1234", f"2026-11-28T{hour:02d}:00:05Z", outcome)
    EvidenceWriter(root, now=now).write(inputs, secrets=[])


def test_the_phase_page_takes_each_gate_from_the_newest_completed_run_that_ran_it(
    tmp_path: Path,
) -> None:
    """After a whole run with a FAIL, a partial run and an interrupted one, the FAIL stands."""
    root = tmp_path / "evidence-out"
    configured = [(g, f"title {g}") for g in ("P2.1", "P2.2", "P2.5", "P2.7")]
    whole = gates(("P2.1", Status.FAIL), ("P2.2", Status.PASS), ("P2.5", Status.FAIL))
    bundle(root, 8, RunResult("local", "", "2026-11-28T08:00:00Z", 1.0, whole))
    bundle(root, 9, RunResult("local", "", "2026-11-28T09:00:00Z", 1.0, whole))
    partial = gates(("P2.1", Status.PASS), ("P2.5", Status.SKIP))
    scope = Scope(only=("P2.1",), skip=("P2.5",), not_run=("P2.2", "P2.5", "P2.7"))
    bundle(root, 10, RunResult("local", "", "2026-11-28T10:00:00Z", 1.0, partial, scope))
    cut = gates(("P2.1", Status.ERROR), ("P2.2", Status.ERROR), ("P2.5", Status.ERROR))
    bundle(root, 11, RunResult("local", "", "2026-11-28T11:00:00Z", 1.0, cut), "interrupted")

    rows = {r.gate_id: r for r in phase_rows(root, tmp_path, configured)["local"]}

    assert (rows["P2.1"].status, rows["P2.1"].run_at) == ("PASS", "2026-11-28T10:00:00Z")
    assert (rows["P2.2"].status, rows["P2.2"].run_at) == ("PASS", "2026-11-28T09:00:00Z")
    assert (rows["P2.5"].status, rows["P2.5"].since) == ("FAIL", "2026-11-28")
    assert rows["P2.5"].link.endswith("20261128T090000Z_local/summary.md")
    assert (rows["P2.7"].status, rows["P2.7"].link) == (NOT_RUN, "")


def test_a_waived_gate_on_a_real_terminal(tmp_path: Path) -> None:
    """On a terminal (rich's live table, then the coloured table) a waived gate crashed the
    output with `internal error: KeyError: <Status.DOCUMENTED_BLOCKED ...>`, exit 3."""

    config = str(config_copy(tmp_path))
    assert (
        opsctl(
            "gate", "waive", "P2.1", "--reason", "pending", "--by", "PM", "--config", config
        ).returncode
        == 0
    )
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "CI")} | {"TERM": "xterm"}
    command = [*OPSCTL, "verify", "--env", "local", "--only", "P2.6", "--config", config]
    code, text = read_terminal([*command, "--no-evidence"], env, columns=160)
    assert code == 1, text
    assert "internal error" not in text and "Traceback" not in text
    assert "DOCUMENTED-BLOCKED" in text and "\x1b[" in text  # coloured, so it was a terminal


def test_verify_audits_against_the_advisories_it_was_given(tmp_path: Path) -> None:
    """`verify --advisories DIR` dropped DIR on the way to the core; `check deps` honoured it."""
    missing = tmp_path / "no-such-advisories"
    done = opsctl(
        "verify",
        "--env",
        "local",
        "--only",
        "P2.6",
        "--advisories",
        str(missing),
        "--json",
        "--no-evidence",
    )
    deps = next(
        c for g in json.loads(done.stdout)["gates"] for c in g["checks"] if c["id"] == "deps"
    )
    assert deps["status"] == "ERROR" and str(missing) in deps["reason"], deps
    assert done.returncode == 3


def test_notion_gets_neither_interrupted_runs_nor_gates_a_run_left_out(tmp_path: Path) -> None:
    import pytest

    from evidence.store import list_bundles
    from opsctl.notion.service import NotionSetupError, newest_bundles, run_changes

    root = tmp_path / "evidence-out"
    whole = gates(("P2.1", Status.PASS), ("P2.5", Status.FAIL))
    bundle(root, 8, RunResult("local", "", "2026-11-28T08:00:00Z", 1.0, whole))
    partial = gates(("P2.1", Status.PASS), ("P2.5", Status.SKIP))
    scope = Scope(skip=("P2.5",), not_run=("P2.5",))
    bundle(root, 9, RunResult("local", "", "2026-11-28T09:00:00Z", 1.0, partial, scope))
    cut = gates(("P2.1", Status.ERROR), ("P2.5", Status.ERROR))
    bundle(root, 10, RunResult("local", "", "2026-11-28T10:00:00Z", 1.0, cut), "interrupted")

    (newest,) = newest_bundles(root, ["local"], None)
    assert newest.name == "20261128T090000Z_local"
    rows = run_changes(newest.data, newest.name, "", secrets=[])
    assert [r.key for r in rows if r.table == "gates"] == ["local/P2.1"]  # not P2.5's SKIP
    interrupted = next(b for b in list_bundles(root) if b.outcome == "interrupted")
    with pytest.raises(NotionSetupError, match="is interrupted: it is never synced"):
        newest_bundles(root, [], interrupted.name)
