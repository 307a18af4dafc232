"""Evidence in Notion: each run row's page holds the run's summary, within Notion's limits, and
links the published evidence (or says plainly that it is not published)."""

from __future__ import annotations

import json
from pathlib import Path

from checks.interface import CheckResult, Status
from tests.fakes.notion_api import FakeNotion
from tests.opsctl.notion_world import RUNS, world

FAILING = {
    "P2.3": [
        CheckResult(
            "keepalive",
            "keep-alive effective",
            Status.FAIL,
            "a gap of 41 min at 03:10",
            hint="run opsctl warmup as a service (README: keep-alive)",
        )
    ],
    "P2.2": [CheckResult("health", "/health ok", Status.PASS, "5 samples ok")],
}


def test_the_run_page_holds_the_summary_a_pm_needs(tmp_path: Path, fake_notion: FakeNotion) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    w.sign("P2.5", "demo rehearsed", "Ana", "2026-11-19T16:00:00Z", "video in Drive")
    name = w.run(
        "render",
        "2026-11-20T10:00:00+00:00",
        {"P2.3": Status.FAIL},
        FAILING,
        P2_3="a gap of 41 min",
    )
    assert w.sync().error == ""
    page = w.page(RUNS, name)
    assert page.splitlines()[0] == "FAIL: gate P2.3 Keep-alive: a gap of 41 min (5 PASS, 1 FAIL)"
    assert "opsctl 0.1.0 at commit abc1234; target https://render.example.org" in page
    assert "- P2.3 Keep-alive: FAIL - a gap of 41 min" in page
    # The failing check under its gate, with what to do; a passing one is not listed.
    assert (
        "  - keep-alive effective: FAIL - a gap of 41 min at 03:10. "
        "Fix: run opsctl warmup as a service (README: keep-alive)"
    ) in page
    assert "5 samples ok" not in page
    assert "- P2.5 demo rehearsed: signed by Ana on 2026-11-19T16:00:00Z (video in Drive)" in page


def test_without_published_bundles_the_page_says_so_and_no_file_path_is_sent(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    name = w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    page = w.page(RUNS, name)
    assert f"Evidence: not published. The bundle {name} stays on the machine" in page
    assert "set [notion] evidence_url in opsctl.toml" in page
    assert w.rows(RUNS)[name]["Evidence"]["url"] is None
    assert "file://" not in json.dumps([r.body for r in fake_notion.requests])


def test_with_published_bundles_the_page_and_rows_link_the_report(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.edit({"notion.evidence_url": "https://ci.example.org/evidence/"})
    w.init()
    name = w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    report = f"https://ci.example.org/evidence/{name}/report.html"
    assert f"Evidence: {name}/report.html <{report}>" in w.page(RUNS, name)
    assert w.rows(RUNS)[name]["Evidence"]["url"] == report
    gate = w.rows("opsctl gates")["P2.1 Twilio pipeline"]
    assert gate["Evidence"]["url"] == report  # the run that set the gate's status


def test_a_page_over_notions_limits_is_cut_to_fit_and_says_so(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    """https://developers.notion.com/reference/request-limits: 100 blocks per children array,
    2000 characters per rich text object, 100 objects per rich text array. The fake refuses
    more, as Notion does; the page is made in its one create request anyway."""
    w = world(tmp_path, fake_notion)
    w.init()
    many = {
        "P2.2": [
            CheckResult(f"c{i}", f"check {i}", Status.FAIL, "slow", hint="look") for i in range(150)
        ]
    }
    name = w.run(
        "render", "2026-11-20T10:00:00+00:00", {"P2.2": Status.FAIL}, many, P2_2="y" * 250_000
    )
    report = w.sync()
    assert report.error == "" and report.refused == 0
    page = w.page(RUNS, name)
    assert "  - check 98: FAIL - slow. Fix: look" in page
    assert "check 99:" not in page
    assert "  [... 51 more not shown: see the evidence bundle]" in page
    gate_line = next(line for line in page.splitlines() if line.startswith("- P2.2"))
    assert gate_line.endswith(" more characters cut by opsctl]")
    create = next(
        r for r in fake_notion.requests if r.path == "/v1/pages" and r.body and r.body["children"]
    )
    assert create.status == 200


def test_secrets_never_reach_a_page(tmp_path: Path, fake_notion: FakeNotion) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    token = "cd34" * 8  # pragma: allowlist secret
    leaky = {"P2.1": [CheckResult("webhook", "webhook", Status.FAIL, f"signed with {token}")]}
    name = w.run("render", "2026-11-20T10:00:00+00:00", {"P2.1": Status.FAIL}, leaky)
    assert w.sync(secrets=[token]).error == ""
    assert token not in json.dumps([r.body for r in fake_notion.requests])
    assert "signed with [REDACTED]" in w.page(RUNS, name)
