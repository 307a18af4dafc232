"""Sign-offs and waivers: appended to the ledger, shown in every output, never a PASS."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from evidence.signoffs import Ledger
from opsctl.cli import main
from tests.conftest import config_copy


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return config_copy(tmp_path)


def test_sign_appends_and_turns_the_item_pass(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ledger = config.parent / "signoffs.jsonl"
    assert (
        main(
            [
                "gate",
                "sign",
                "P2.5",
                "--item",
                "demo rehearsed",
                "--by",
                "Ana",
                "--note",
                "rehearsed on 21 Nov",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "gate",
                "sign",
                "P2.5",
                "--item",
                "UAT checklist completed",
                "--by",
                "Luis",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    lines = ledger.read_text().splitlines()
    assert [json.loads(line)["by"] for line in lines] == ["Ana", "Luis"]
    capsys.readouterr()
    assert (
        main(
            [
                "verify",
                "--env",
                "local",
                "--config",
                str(config),
                "--only",
                "P2.5",
                "--json",
                "--no-evidence",
            ]
        )
        == 0
    )
    run = json.loads(capsys.readouterr().out)
    (gate,) = run["gates"]
    assert gate["status"] == "PASS"
    reasons = {c["id"]: c["reason"] for c in gate["checks"]}
    assert reasons["manual: demo rehearsed"].startswith("signed off by Ana at ")
    assert reasons["manual: demo rehearsed"].endswith(": rehearsed on 21 Nov")


def test_unsigned_items_are_warnings_with_the_command_to_sign(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "verify",
                "--env",
                "local",
                "--config",
                str(config),
                "--only",
                "P2.5",
                "--json",
                "--no-evidence",
            ]
        )
        == 0
    )
    (gate,) = json.loads(capsys.readouterr().out)["gates"]
    assert gate["status"] == "WARN"
    manual = {c["id"]: c for c in gate["checks"]}["manual: UAT checklist completed"]
    assert manual["hint"] == ("opsctl gate sign P2.5 --item 'UAT checklist completed' --by NAME")


def test_a_waived_gate_is_documented_blocked_everywhere(
    config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "gate",
                "waive",
                "P2.3",
                "--reason",
                "lands with issue 6",
                "--by",
                "PM",
                "--config",
                str(config),
            ]
        )
        == 0
    )
    capsys.readouterr()
    # P2.3 needs P2.2: skipping it keeps this a run in which nothing runs.
    args = ["verify", "--env", "local", "--config", str(config), "--only", "P2.3", "--skip", "P2.2"]
    code = main(args)
    out = capsys.readouterr().out
    assert code == 3  # nothing ran: a waiver is never a pass
    assert "DOCUMENTED-BLOCKED P2.3 Keep-alive: waived by PM at " in out
    verdict = out.splitlines()[0]
    assert verdict.startswith("ERROR: no gate ran a check (") and "1 DOCUMENTED-BLOCKED)" in verdict
    assert verdict.endswith(
        "; partial: --only P2.3 --skip P2.2; 5 gates not run (P2.1, P2.2, P2.4, P2.5, P2.6)"
    )
    bundle = next(p for p in (config.parent / "evidence-out").iterdir())
    assert "| P2.3 | waived (DOCUMENTED-BLOCKED) | PM |" in (bundle / "summary.md").read_text()
    status = (config.parent / "PHASE-STATUS.md").read_text()
    assert "| P2.3 Keep-alive | DOCUMENTED-BLOCKED |" in status
    assert "| P2.3 | waived (DOCUMENTED-BLOCKED) | PM |" in status


def test_bad_sign_offs_are_refused(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(["gate", "sign", "P2.5", "--item", "nope", "--by", "Ana", "--config", str(config)])
        == 2
    )
    assert "gate P2.5 has no manual item 'nope'; fix: use one of: 'UAT checklist completed'" in (
        capsys.readouterr().err
    )
    assert main(["gate", "sign", "P9", "--item", "x", "--by", "Ana", "--config", str(config)]) == 2
    assert (
        main(["gate", "waive", "P2.3", "--reason", " ", "--by", "PM", "--config", str(config)]) == 2
    )
    assert not (config.parent / "signoffs.jsonl").exists()


def test_ledger_is_append_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "s.jsonl", now=lambda: "2026-11-22T10:00:00Z")
    ledger.append("sign", "P2.5", "Ana", "demo rehearsed")
    first = (tmp_path / "s.jsonl").read_bytes()
    ledger.append("waive", "P2.3", "PM", note="later")
    assert (tmp_path / "s.jsonl").read_bytes().startswith(first)
    assert [e.kind for e in ledger.entries()] == ["sign", "waive"]
