"""The phase in Notion: a phase row per environment closed by the plan's rule, gates with their
criteria, owner, sign-offs and relations, every run sent in order, and "Last run" fresh without a
write per gate per run."""

from __future__ import annotations

from pathlib import Path

from checks.interface import Status
from tests.fakes.notion_api import FakeNotion
from tests.opsctl.notion_world import GATES, PHASE, RUNS, text, world

RENDER = "Fase 2 · render"


def test_the_phase_row_says_open_which_gate_blocks_it_why_and_since_when(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    failing = {"P2.3": Status.FAIL, "P2.5": Status.WARN}
    first = w.run("render", "2026-11-20T10:00:00+00:00", failing, P2_3="a gap of 41 min")
    second = w.run("render", "2026-11-21T09:00:00+00:00", failing, P2_3="a gap of 50 min")
    assert w.sync().error == ""
    phase = w.rows(PHASE)[RENDER]
    assert (text(phase["State"]), text(phase["Done"]), text(phase["Gates"])) == ("open", "4", "6")
    assert text(phase["Progress"]) == "4 of 6 gates done: open"
    # A WARN does not close the phase (checks/statuses.py: closes_phase).
    assert text(phase["Why open"]) == (
        "P2.3 Keep-alive: FAIL since 2026-11-20T10:00:00+00:00: a gap of 41 min; "
        "P2.5 QA: WARN since 2026-11-20T10:00:00+00:00: QA: all good"
    )
    gates, runs = w.rows(GATES), w.rows(RUNS)
    blocked = {gates["P2.3 Keep-alive"]["id"], gates["P2.5 QA"]["id"]}
    assert set(text(phase["Blocked by"]).split(",")) == blocked
    assert text(phase["Last verified"]).startswith("2026-11-21T09:00:00")
    assert text(phase["Last run"]) == runs[second]["id"]
    # The failing gate: since the first run of its streak, set by that run.
    keepalive = gates["P2.3 Keep-alive"]
    assert text(keepalive["Since"]).startswith("2026-11-20T10:00:00")
    assert text(keepalive["Set by"]) == runs[first]["id"]
    assert text(keepalive["Needs"]) == gates["P2.2 Render deploy"]["id"]


def test_every_gate_pass_or_documented_blocked_closes_the_phase(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00", {"P2.3": Status.DOCUMENTED_BLOCKED})
    w.sync()
    phase = w.rows(PHASE)[RENDER]
    assert (text(phase["State"]), text(phase["Progress"])) == (
        "closed",
        "6 of 6 gates done: closed",
    )
    assert text(phase["Blocked by"]) == "" and text(phase["Why open"]) == ""


def test_a_gate_never_run_keeps_the_phase_open(tmp_path: Path, fake_notion: FakeNotion) -> None:
    w = world(tmp_path, fake_notion)
    w.edit({'gates."P2.7"': {"title": "Handover", "checks": ["lint"]}})
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    phase = w.rows(PHASE)[RENDER]
    assert text(phase["Progress"]) == "6 of 7 gates done: open"
    assert text(phase["Why open"]) == "P2.7 Handover: NOT RUN"


def test_a_gate_carries_its_criteria_owner_and_sign_offs(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.edit({'gates."P2.5".owner': "Luis (QA)"})
    w.sign("P2.5", "UAT checklist completed", "Ana", "2026-11-18T15:00:00Z", "12/12 cases")
    w.sign("P2.5", "demo rehearsed", "Luis", "2026-11-19T16:00:00Z")
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    qa = w.rows(GATES)["P2.5 QA"]
    assert text(qa["Owner"]) == "Luis (QA)"
    assert text(qa["Sign-offs"]) == (
        "UAT checklist completed: signed by Ana on 2026-11-18T15:00:00Z (12/12 cases); "
        "demo rehearsed: signed by Luis on 2026-11-19T16:00:00Z"
    )
    assert text(qa["Signed by"]) == "Ana, Luis"
    assert text(qa["Signed on"]).startswith("2026-11-19T16:00:00")
    assert text(qa["Criteria"]) == "P2.5.1, P2.5.2, P2.5.3, P2.5.4"
    page = w.page(GATES, "P2.5 QA")
    assert "- P2.5.2 The tests pass with enough coverage" in page
    assert (
        "  Definition of done: at least 93 tests, none failing, coverage at or above 80 %" in page
    )
    assert "  Evidence: check tests" in page


def test_a_criterion_changed_in_opsctl_toml_rewrites_the_gate_page(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    criteria = w.config().gates["P2.3"].criteria
    edited = [
        {"id": c.id, "criterion": c.criterion, "done": c.done, "evidence": c.evidence}
        for c in criteria
    ]
    edited[0]["done"] = "the log covers 48 h, no gap over 14 minutes"
    w.edit({'gates."P2.3".criteria': edited})
    fake_notion.clear_requests()
    assert w.sync().error == ""
    page = w.page(GATES, "P2.3 Keep-alive")
    assert "  Definition of done: the log covers 48 h, no gap over 14 minutes" in page
    assert page.count("P2.3.1 ") == 1  # replaced, not appended
    appended = [r for r in fake_notion.writes() if r.path.endswith("/children")]
    assert len(appended) == 1  # only that gate's page


def test_every_run_not_sent_becomes_its_row_in_order(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    later = [
        w.run("render", f"2026-11-2{day}T09:00:00+00:00", {"P2.1": status})
        for day, status in ((1, Status.FAIL), (2, Status.PASS), (3, Status.PASS))
    ]
    fake_notion.clear_requests()
    assert w.sync().error == ""
    made = [
        r.body["properties"]
        for r in fake_notion.requests
        if r.method == "POST" and r.path == "/v1/pages" and r.body
    ]
    titles = [
        "".join(t["text"]["content"] for t in p.get("title", []))
        for props in made
        for p in props.values()
        if "title" in p
    ]
    assert titles == later  # three runs between two syncs: three rows, oldest first
    gate = w.rows(GATES)["P2.1 Twilio pipeline"]
    assert text(gate["Status"]) == "PASS" and text(gate["Since"]).startswith("2026-11-22")
    assert text(gate["Set by"]) == w.rows(RUNS)[later[1]]["id"]


def test_a_confirming_run_freshens_last_run_without_writing_the_gates(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    w.run("render", "2026-11-20T10:00:00+00:00")
    w.sync()
    fake_notion.clear_requests()
    morning = w.run("render", "2026-11-21T07:30:00+00:00")  # confirms every gate
    assert w.sync().error == ""
    writes = [(r.method, r.path) for r in fake_notion.writes()]
    phase_id = w.rows(PHASE)[RENDER]["id"]
    assert writes == [("POST", "/v1/pages"), ("PATCH", f"/v1/pages/{phase_id}")]
    gate = w.rows(GATES)["P2.6 Security"]
    assert text(gate["Last run"]).startswith("2026-11-21T07:30:00")  # this morning
    assert text(gate["Since"]).startswith("2026-11-20T10:00:00")
    assert w.rows(RUNS)[morning]["id"] in text(gate["Verified by"])


def test_a_sync_with_nothing_new_writes_nothing(tmp_path: Path, fake_notion: FakeNotion) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    for env in ("render", "staging"):
        w.run(env, "2026-11-20T10:00:00+00:00", {"P2.3": Status.FAIL})
    first = w.sync()
    assert (first.created, first.error) == (2 + 12 + 2, "")
    fake_notion.clear_requests()
    again = w.sync()
    assert (again.created, again.updated, again.unchanged) == (0, 0, 14)
    assert fake_notion.writes() == []
