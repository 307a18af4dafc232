"""Formats render a fixed run exactly as the golden files say; JSON follows its schema."""

from __future__ import annotations

import json
import os
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
    """Every status, a retried gate, a blocked gate and an advisory one."""
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
            GateResult("P2.4", "Notion", False, Status.SKIP, "no checks yet"),
            GateResult("P2.6", "Security", True, Status.BLOCKED, "needs P2.1 (FAIL)"),
        ),
    )


@pytest.mark.parametrize(
    ("name", "render"),
    [("verify.json", render_json), ("verify.junit.xml", render_junit), ("verify.txt", render_text)],
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
        "(1 WARN, 1 FAIL, 1 SKIP, 1 BLOCKED)",
        "exit_code": 1,
    }


def test_junit_is_parseable_and_counts(tmp_path: Path) -> None:
    from xml.etree import ElementTree

    root = ElementTree.fromstring(render_junit(sample_run()))
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert suites["P2.1 Twilio pipeline"].get("failures") == "1"
    assert suites["P2.2 Render deploy"].get("skipped") == "1"
    assert suites["P2.6 Security"].find("testcase/skipped").get("message") == (  # type: ignore[union-attr]
        "BLOCKED: needs P2.1 (FAIL)"
    )
