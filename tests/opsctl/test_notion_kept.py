"""The schemas kept since `notion init` (issue 17): a sync with nothing new sends its queries only;
a column deleted or retyped in Notion afterwards is found by the request it breaks (or the rows
that show it), read again, repaired or named, and no change is set aside because of it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from notion_client import Client

from checks.interface import Status
from opsctl.cli import main
from opsctl.notion.outbox import Outbox
from opsctl.notion.schema import TABLES
from tests.fakes.notion_api import FakeNotion, Recorded
from tests.loopback import TLS
from tests.opsctl.notion_world import GATES, World, text, world
from tests.opsctl.test_notion_team import with_team_runs

STARTED = "2026-11-20T10:00:00+00:00"
LATER = "2026-11-21T10:00:00+00:00"


def schema_reads(requests: list[Recorded]) -> list[str]:
    """The paths of the requests that read a database or a data source's schema."""
    return [
        r.path
        for r in requests
        if r.method == "GET" and r.path.startswith(("/v1/databases/", "/v1/data_sources/"))
    ]


def synced(tmp_path: Path, fake: FakeNotion) -> World:
    """Initialised, one run of render synced, the fake's request log cleared."""
    w = world(tmp_path, fake)
    w.init()
    w.run("render", STARTED)
    assert w.sync().error == ""
    fake.clear_requests()
    return w


def gates_source(w: World) -> str:
    database = w.config().notion.database_id("gates")
    found = [d for d in w.fake.databases_under(w.parent) if d["id"] == database]
    return str(found[0]["data_sources"][0]["id"])


def outbox(w: World) -> Outbox:
    return Outbox(w.config().notion.outbox)


def test_a_sync_with_nothing_new_sends_exactly_its_queries(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    report = w.sync()
    assert (report.error, report.created, report.updated) == ("", 0, 0)
    sent = [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake_notion.requests]
    # One query per database of the default config (gates, runs, phase), nothing else.
    assert sent == [("POST", "query")] * 3
    assert report.traffic() == "3 requests: 0 writes, 3 reads, 0 failed or refused"


def test_init_keeps_the_schemas_beside_the_outbox(tmp_path: Path, fake_notion: FakeNotion) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    kept = json.loads(outbox(w).schema_path.read_text())
    assert outbox(w).schema_path.name == "notion-outbox.schema.json"
    assert sorted(kept) == ["gates", "phase", "runs"]
    assert kept["gates"]["ids"] == dict(w.config().notion.property_ids["gates"])
    assert kept["gates"]["missing"] == []


def test_a_column_deleted_after_init_is_read_again_repaired_and_the_change_lands(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    fake_notion.drop_property(gates_source(w), "Reason")
    w.run("render", LATER, {"P2.3": Status.FAIL}, P2_3="a gap of 41 min")
    report = w.sync()
    assert (report.error, report.exit_code, report.refused, report.pending) == ("", 0, 0, 0)
    gate = w.rows(GATES)["P2.3 Keep-alive"]
    assert (text(gate["Status"]), text(gate["Reason"])) == ("FAIL", "a gap of 41 min")
    assert outbox(w).refused() == []
    notes = "\n".join(report.notes)
    assert "'opsctl gates': its schema, kept from an earlier read, was read again" in notes
    assert "'opsctl gates': repaired: added Reason" in notes
    # Read once (the database, its data source), and kept again: the next sync reads nothing.
    assert len(schema_reads(fake_notion.requests)) == 2
    fake_notion.clear_requests()
    assert w.sync().error == "" and schema_reads(fake_notion.requests) == []


def test_a_create_refused_on_a_deleted_column_is_redone_after_the_read_not_set_aside(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = world(tmp_path, fake_notion)
    w.init()
    fake_notion.drop_property(gates_source(w), "Reason")  # no row yet: only a write can tell
    w.run("render", STARTED)
    fake_notion.clear_requests()
    report = w.sync()
    assert (report.error, report.refused, report.pending, report.failed) == ("", 0, 0, 1)
    [refused] = [r for r in fake_notion.requests if r.status >= 400]
    assert (refused.method, refused.path, refused.status) == ("POST", "/v1/pages", 400)
    assert len(w.rows(GATES)) == 6 and outbox(w).refused() == []
    assert text(w.rows(GATES)["P2.2 Render deploy"]["Reason"]) == "Render deploy: all good"


def test_a_column_retyped_after_init_is_named_once_and_the_change_kept_queued(
    tmp_path: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = synced(tmp_path, fake_notion)
    fake_notion.retype_property(gates_source(w), "Reason", "number")
    w.run("render", LATER, {"P2.3": Status.FAIL}, P2_3="a gap of 41 min")
    report = w.sync()
    assert report.exit_code == 2 and report.refused == 0
    assert report.error == (
        "Notion database 'opsctl gates': column 'Reason' is number, expected rich_text; fix: "
        "change its type back in Notion, or rename it and run opsctl notion init to add the "
        "column again"
    )
    queued = {(c.table, c.key) for c in outbox(w).pending()}
    assert ("gates", "render/P2.3") in queued and outbox(w).refused() == []
    assert text(w.rows(GATES)["P2.3 Keep-alive"]["Status"]) == "PASS"
    # The kept copy is gone: the next sync reads the schema and stops before any write.
    fake_notion.clear_requests()
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))  # a pace file of its own
    args = ["--config", str(w.path), "--env-file", "/dev/null"]
    assert main(["notion", "sync", *args]) == 2
    err = capsys.readouterr().err
    assert "column 'Reason' is number, expected rich_text" in err and err.count("\n") == 1
    assert fake_notion.writes() == [] and schema_reads(fake_notion.requests)


def test_other_database_ids_in_opsctl_toml_are_read_not_taken_from_the_kept_copy(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    (tmp_path / "other").mkdir()
    other = world(tmp_path / "other", fake_notion)  # databases made under another page
    other.init()
    moved = {f"notion.{n}_database": other.config().notion.database_id(n) for n in TABLES}
    w.edit(moved)
    w.run("render", LATER, {"P2.3": Status.FAIL})
    fake_notion.clear_requests()
    assert w.sync().error == ""
    databases = [p for p in schema_reads(fake_notion.requests) if p.startswith("/v1/databases/")]
    assert databases == [f"/v1/databases/{moved[f'notion.{n}_database']}" for n in TABLES]
    assert text(other.rows(GATES)["P2.3 Keep-alive"]["Status"]) == "FAIL"
    assert text(w.rows(GATES)["P2.3 Keep-alive"]["Status"]) == "PASS"  # the old one, untouched


def test_a_kept_file_that_is_not_json_is_read_again_from_notion(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    outbox(w).schema_path.write_text("{not json")
    report = w.sync()
    assert report.error == "" and len(schema_reads(fake_notion.requests)) == 6
    assert sorted(json.loads(outbox(w).schema_path.read_text())) == ["gates", "phase", "runs"]


def test_status_says_when_the_schemas_were_last_read(
    tmp_path: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    w = world(tmp_path, fake_notion)
    assert main(["notion", "status", "--config", str(w.path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "no Notion schema kept: the next sync reads them"
    )
    w.init()
    assert main(["notion", "status", "--config", str(w.path)]) == 0
    last = capsys.readouterr().out.splitlines()[-1]
    assert last.startswith("Notion schemas last read: gates 20") and ", runs 20" in last
    assert "read again by opsctl notion init, or by a sync when Notion refuses" in last


def test_a_renamed_column_is_followed_by_its_id_without_reading_the_schema(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    fake_notion.rename_property(gates_source(w), "Status", "State")
    w.run("render", LATER, {"P2.3": Status.FAIL})
    report = w.sync()
    assert (report.error, report.updated) == ("", 2)  # the gate and the phase row
    assert schema_reads(fake_notion.requests) == []
    assert text(w.rows(GATES)["P2.3 Keep-alive"]["State"]) == "FAIL"
    # Said as a read of the schema says it: the rows Notion returned show the new name.
    assert "'opsctl gates': column 'Status' is called 'State' in Notion: followed by its id" in (
        report.notes
    )


def test_a_column_no_sync_writes_deleted_in_notion_is_seen_in_the_rows_and_made_again(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    fake_notion.drop_property(gates_source(w), "Last run")  # a rollup: Notion computes it
    report = w.sync()  # nothing new: no write could fail on it
    assert (report.error, report.created, report.updated) == ("", 0, 0)
    assert fake_notion.schema(gates_source(w))["Last run"]["type"] == "rollup"
    assert text(w.rows(GATES)["P2.1 Twilio pipeline"]["Last run"]).startswith("2026-11-20T10:00")
    assert any("column 'Last run' is gone in the rows Notion returned" in n for n in report.notes)


def test_a_column_of_the_teams_database_renamed_since_init_is_named_as_init_names_it(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = with_team_runs(tmp_path, fake_notion)
    w.init()
    w.run("render", STARTED)
    assert w.sync().error == ""
    demo = w.config().notion.database_id("runs")
    [found] = [d for d in fake_notion.databases_under(w.parent) if d["id"] == demo]
    fake_notion.rename_property(found["data_sources"][0]["id"], "Result", "Outcome")
    w.run("render", LATER)
    report = w.sync()  # the mapping names the column: a rename there is the team's to settle
    assert report.exit_code == 2 and report.error.startswith(
        "Notion database 'Demo & Testing' ([notion] runs_database): no column 'Result' "
        "(for our 'Verdict'); fix: add it in Notion as select"
    )
    assert any(c.table == "runs" for c in outbox(w).pending()) and outbox(w).refused() == []


def test_a_database_trashed_since_init_stops_the_sync_that_writes_to_it_as_before(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = synced(tmp_path, fake_notion)
    database = w.config().notion.database_id("gates")
    Client(
        auth=fake_notion.token, base_url=fake_notion.url, client=httpx.Client(verify=TLS)
    ).databases.update(database_id=database, in_trash=True)
    w.run("render", LATER, {"P2.3": Status.FAIL})
    report = w.sync()
    assert report.exit_code == 2 and report.error == (
        f"the 'opsctl gates' database {database} is in Notion's trash; fix: restore it, or run "
        "opsctl notion init to make a new one"
    )
    assert any(c.key == "render/P2.3" for c in outbox(w).pending()) and outbox(w).refused() == []
