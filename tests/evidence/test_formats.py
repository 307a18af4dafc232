"""Formats render a fixed run exactly as the golden files say; JSON follows its schema."""

from __future__ import annotations

import json
import os
from functools import partial
from pathlib import Path

import jsonschema
import pytest

from checks.interface import CheckResult, Status
from evidence.formats.json_format import render_json
from evidence.formats.junit import render_junit
from evidence.formats.text import render_text
from opsctl.results import GateAttempt, GateResult, RunResult
from tests.conftest import REPO_ROOT

GOLDEN = Path(__file__).parent / "golden"
SCHEMA = REPO_ROOT / "evidence" / "schemas" / "verify-v1.json"


def sample_run() -> RunResult:
    """Every status (a test checks), a retried gate, a blocked, a waived and an advisory gate."""
    webhook = CheckResult(
        "webhook",
        "/webhook 403 unsigned, 200 signed",
        Status.FAIL,
        "unsigned got 200, expected 403",
        "the webhook must check signatures",
        0.412,
        {"cases": {"unsigned": {"status": 200, "body": "hola"}}},
    )
    health_err = CheckResult(
        "health",
        "/health ok",
        Status.ERROR,
        "no answer from https://clara.example/health within 10s",
        "is the service up?",
        10.0,
    )
    health = CheckResult(
        "health",
        "/health ok",
        Status.PASS,
        "status 'ok', version abc1234, 4 components as expected",
        "",
        1.25,
        {"p50_ms": 81.0, "cold_start_s": 0.9, "warm_samples_ms": [80.0, 81.0, 95.5]},
    )
    audio = CheckResult(
        "audio",
        "audio files reachable as MP3",
        Status.WARN,
        '6 MP3 files <ok> & "fine"',
        "none",
        0.3,
    )
    https = CheckResult("https", "served over https", Status.SKIP, "local allows http", "", 0.0)
    suite = CheckResult(
        "tests",
        "the test suite passes with coverage",
        Status.ERROR,
        "the test suite did not finish within 1800s (stopped)",
        "find the test that hangs",
        1800.0,
    )
    return RunResult(
        env="render",
        target="https://clara.example",
        started_at="2026-11-22T10:00:00Z",
        duration_s=12.5,
        gates=(
            GateResult(
                "P2.1",
                "Twilio pipeline",
                True,
                Status.FAIL,
                "webhook: unsigned got 200, expected 403",
                (webhook,),
                (GateAttempt(1, Status.FAIL, (webhook,)),),
                0.412,
            ),
            GateResult(
                "P2.2",
                "Render deploy",
                True,
                Status.WARN,
                "passed on attempt 2; 2 checks passed, 1 skipped",
                (health, audio, https),
                (
                    GateAttempt(1, Status.ERROR, (health_err, audio, https)),
                    GateAttempt(2, Status.WARN, (health, audio, https)),
                ),
                11.6,
            ),
            GateResult(
                "P2.3",
                "Keep-alive",
                True,
                Status.DOCUMENTED_BLOCKED,
                "waived by PM at 2026-11-21T08:00:00Z: lands with issue 6",
            ),
            GateResult("P2.4", "Notion", False, Status.SKIP, "no checks yet"),
            GateResult(
                "P2.5",
                "QA",
                True,
                Status.ERROR,
                "tests: the test suite did not finish within 1800s (stopped)",
                (suite,),
                (GateAttempt(1, Status.ERROR, (suite,)),),
                1800.0,
            ),
            GateResult("P2.6", "Security", True, Status.BLOCKED, "needs P2.1 (FAIL)"),
        ),
    )


@pytest.mark.parametrize(
    ("name", "render"),
    [
        ("verify.json", render_json),
        ("verify.junit.xml", partial(render_junit, hostname="ci-runner")),  # not this machine's
        ("verify.txt", render_text),
    ],
)
def test_golden(name: str, render: object) -> None:
    output = render(sample_run())  # type: ignore[operator]
    golden = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):  # UPDATE_GOLDEN=1 pytest ... after a deliberate change
        golden.write_text(output)
    assert output == golden.read_text()


def test_json_follows_the_published_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    data = json.loads(render_json(sample_run()))
    jsonschema.validate(data, schema, format_checker=jsonschema.FormatChecker())
    assert data["verdict"] == {
        "line": "FAIL: gate P2.1 Twilio pipeline: webhook: unsigned got 200, expected 403 "
        "(1 WARN, 1 FAIL, 1 ERROR, 1 SKIP, 1 BLOCKED, 1 DOCUMENTED-BLOCKED)",
        "exit_code": 1,
    }


def test_the_sample_holds_every_status() -> None:
    """So a status added to the enum is rendered by every golden test below, or this fails."""
    run = sample_run()
    seen = {g.status for g in run.gates} | {c.status for g in run.gates for c in g.checks}
    assert seen == set(Status)


def test_terminal_golden_renders_every_status_in_its_colour() -> None:
    from io import StringIO

    from rich.console import Console

    from opsctl.console import print_run

    out = StringIO()
    console = Console(file=out, force_terminal=True, color_system="standard", width=120)
    print_run(sample_run(), console)
    golden = GOLDEN / "verify.terminal"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(out.getvalue())
    assert out.getvalue() == golden.read_text()
    for status in Status:  # each status's own style, from checks/statuses.py
        styled = Console(file=StringIO(), force_terminal=True, color_system="standard")
        styled.print(status.value, style=status.meaning.style, end="")
        start = styled.file.getvalue().removesuffix("\x1b[0m")  # type: ignore[attr-defined]
        assert start in out.getvalue(), status


def test_junit_is_parseable_and_counts(tmp_path: Path) -> None:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(render_junit(sample_run()))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["P2.1 Twilio pipeline"].get("failures") == "1"
    assert suites["P2.2 Render deploy"].get("skipped") == "1"
    # A blocked blocking gate makes the run fail: a CI dashboard must show it red, not skipped.
    assert suites["P2.6 Security"].find("testcase/failure").get("message") == (  # type: ignore[union-attr]
        "BLOCKED: needs P2.1 (FAIL)"
    )
    assert suites["P2.3 Keep-alive"].get("skipped") == "1"
    assert suites["P2.5 QA"].get("errors") == "1"
