"""Notion edited by people meanwhile: renamed and retyped columns, refused changes, dates moved,
several opsctl processes at once; and counts and messages that say what happened."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomlkit

from checks.interface import Status
from checks.registry import CHECKS
from evidence.store import list_bundles
from opsctl.cli import main
from opsctl.config import Config, load_config
from opsctl.notion.gateway import (
    NotionGateway,
    Pacer,
    SharedPacer,
    notion_client,
    pace_file,
)
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.notion.schema import GATES, RUNS, Table
from opsctl.notion.service import evidence_link, init, push, run_changes, status_lines
from opsctl.notion.sync import NotionSync, SyncReport
from opsctl.notion.values import from_property
from tests.conftest import REPO_ROOT, config_copy
from tests.fakes.notion_api import FakeNotion
from tests.opsctl.test_notion import ENVS, make_run, write_bundle

NEWER = "2026-11-21T09:00:00+00:00"


@pytest.fixture
def project(tmp_path: Path, fake_notion: FakeNotion, monkeypatch: pytest.MonkeyPatch) -> Path:
    """opsctl.toml at a fast pace, bundles of three environments, the CLI aimed at the fake, and
    a pace file of this test's own (the pacer is shared per integration on the machine)."""
    path = config_copy(tmp_path)
    document = tomlkit.parse(path.read_text())
    document["notion"]["requests_per_second"] = 100  # type: ignore[index]
    document["notion"]["timeout_s"] = 2  # type: ignore[index]
    path.write_text(tomlkit.dumps(document))
    for env in ENVS:
        write_bundle(tmp_path / "evidence-out", make_run(env, "2026-11-20T10:00:00+00:00"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    return path


def load(path: Path) -> Config:
    return load_config(path, CHECKS)


def connect(
    config: Config,
    fake: FakeNotion,
    timeout_s: float | None = None,
    now: Callable[[], datetime] | None = None,
    **gateway: Any,
) -> NotionSync:
    """The sync as service.connect builds it, with a fast pacer and backoff."""
    client = notion_client(fake.token, fake.url, timeout_s or config.notion.timeout_s)
    options = {"pacer": Pacer(rate=1000), "backoff_s": 0.01, **gateway}
    outbox = Outbox(config.notion.outbox)
    if now is None:
        return NotionSync(NotionGateway(client, **options), outbox)
    return NotionSync(NotionGateway(client, **options), outbox, now=now)


def initialised(project: Path, fake: FakeNotion) -> Config:
    config = load(project)
    init(connect(config, fake), config, fake.add_page("Clara ops"))
    return load(project)


def all_changes(config: Config) -> list[RowChange]:
    return [
        change
        for bundle in list_bundles(config.evidence.dir)
        for change in run_changes(bundle.data, bundle.name, evidence_link(config, bundle.path), [])
    ]


def sync_all(config: Config, fake: FakeNotion, sync: NotionSync | None = None) -> SyncReport:
    return push(config, all_changes(config), sync or connect(config, fake))


def source_of(fake: FakeNotion, config: Config, table: Table) -> str:
    database_id = config.notion.database_id(table.name)
    found = [d for d in fake.databases_under(config.notion.parent) if d["id"] == database_id]
    return str(found[0]["data_sources"][0]["id"])


def rows(fake: FakeNotion, config: Config, table: Table = GATES) -> dict[str, dict[str, Any]]:
    """Rows by key as plain values, columns found by the ids opsctl.toml records (as a person
    would read them whatever the columns are called now); fails on a duplicate key."""
    ids = load(Path(config.path)).notion.property_ids[table.name]
    found: dict[str, dict[str, Any]] = {}
    for row in fake.rows(source_of(fake, config, table)):
        by_id = {p["id"]: p for p in row["properties"].values()}
        plain = {c.name: from_property(c, by_id.get(ids[c.name])) for c in table.columns}
        key = str(plain[table.key])
        assert key not in found, f"duplicate row for {key}"
        found[key] = plain
    return found


def cli(project: Path, *args: str) -> int:
    return main([*args, "--config", str(project), "--env-file", "/dev/null"])


def status(project: Path) -> int:
    """`opsctl notion status`: local files only, no token, no .env."""
    return main(["notion", "status", "--config", str(project)])


# --- columns renamed, retyped, deleted -----------------------------------------------------------


def test_init_records_each_columns_property_id(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    schema = fake_notion.schema(source_of(fake_notion, config, GATES))
    pinned = config.notion.property_ids
    assert pinned["gates"] == {name: prop["id"] for name, prop in schema.items()}
    assert pinned["runs"]["Run ID"] == "title"
    text = project.read_text()
    # Inside [notion], before the comments that introduce the gates.
    assert text.index("property_ids.gates.") < text.index("# The phase plan's gates")
    assert text.index("[notion]") < text.index("property_ids.runs.")


def test_a_renamed_key_column_is_followed_not_made_again(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    source = source_of(fake_notion, config, GATES)
    fake_notion.rename_property(source, "Gate ID", "Key")
    write_bundle(config.evidence.dir, make_run("render", NEWER, {"P2.3": Status.FAIL}))
    report = sync_all(config, fake_notion)
    assert (report.error, report.created, report.updated) == ("", 1, 1)  # the new run's row
    assert "Gate ID" not in fake_notion.schema(source)  # not added again
    assert len(rows(fake_notion, config)) == 18  # no second row for any gate
    assert rows(fake_notion, config)["render/P2.3"]["Status"] == "FAIL"
    assert "'opsctl gates': column 'Gate ID' is called 'Key' in Notion" in "\n".join(report.notes)


def test_a_renamed_status_column_is_written_under_its_new_name(
    project: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    assert cli(project, "notion", "sync") == 0
    capsys.readouterr()
    source = source_of(fake_notion, config, GATES)
    fake_notion.rename_property(source, "Status", "State")
    write_bundle(config.evidence.dir, make_run("local", NEWER, {"P2.5": Status.FAIL}))
    assert cli(project, "notion", "sync", "--env", "local") == 0
    out = capsys.readouterr().out
    assert "notion: 'opsctl gates': column 'Status' is called 'State' in Notion" in out
    # The run's own row, the one gate that changed and the phase, five confirmed: 8 counted.
    assert "synced: 1 created, 2 updated, 5 unchanged;" in out
    assert "Status" not in fake_notion.schema(source)
    state = {
        from_property(GATES.column("Gate ID"), r["properties"]["Gate ID"]): r["properties"]["State"]
        for r in fake_notion.rows(source)
    }
    assert state["local/P2.5"]["select"]["name"] == "FAIL"
    assert state["local/P2.1"]["select"]["name"] == "PASS"


def test_a_retyped_column_is_named_and_not_made_again(
    project: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    source = source_of(fake_notion, config, GATES)
    fake_notion.rename_property(source, "Status", "State")
    fake_notion.retype_property(source, "State", "rich_text")
    before = fake_notion.schema(source)
    assert cli(project, "notion", "sync") == 2
    err = capsys.readouterr().err
    assert "column 'Status' (now called 'State') is rich_text, expected select" in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert fake_notion.schema(source) == before
    assert fake_notion.rows(source) == []
    assert len(json.loads(config.notion.outbox.read_text())) == 24  # kept (and 3 phase rows)


def test_a_deleted_key_column_stops_the_sync_instead_of_duplicating_every_row(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    source = source_of(fake_notion, config, GATES)
    fake_notion.drop_property(source, "Gate ID")
    fake_notion.clear_requests()
    report = sync_all(config, fake_notion)
    assert report.exit_code == 2 and "the key column 'Gate ID' is gone" in report.error
    assert fake_notion.writes() == [] and "Gate ID" not in fake_notion.schema(source)


def test_a_deleted_column_is_added_again_and_said(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    source = source_of(fake_notion, config, GATES)
    fake_notion.drop_property(source, "Reason")
    report = sync_all(config, fake_notion)
    notes = "\n".join(report.notes)
    assert report.error == "" and "'opsctl gates': repaired: added Reason" in notes
    assert "found by name, not by a recorded id: Reason; fix: run opsctl notion init" in notes
    assert rows(fake_notion, load(project))["render/P2.2"]["Gate"] == "P2.2 Render deploy"
    assert (
        load(project).notion.property_ids["gates"]["Reason"]
        != (fake_notion.schema(source)["Reason"]["id"])
    )  # until init records the new id
    init(connect(config, fake_notion), config, config.notion.parent)
    assert sync_all(load(project), fake_notion).notes == []


def test_without_recorded_ids_columns_are_found_by_name_and_it_says_so(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    document = tomlkit.parse(project.read_text())
    del document["notion"]["property_ids"]  # type: ignore[union-attr]
    project.write_text(tomlkit.dumps(document))
    report = sync_all(load(project), fake_notion)
    assert (report.error, report.created) == ("", 21)
    assert any("found by name, not by a recorded id: " in note for note in report.notes)
    assert config.notion.property_ids  # what init had recorded


# --- a change Notion refuses for good ----------------------------------------------------------


def test_a_refused_change_is_set_aside_and_the_rest_go_on(
    project: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    long_env = "e" * 101  # Notion's select options hold 100 characters at most
    bad = RowChange("gates", "odd/P2.1", {"Environment": long_env}, "2026-11-20T08:00:00Z")
    Outbox(config.notion.outbox).add([bad])
    assert cli(project, "notion", "sync") == 2
    out = capsys.readouterr().out
    assert "synced: 24 created, 0 updated, 0 unchanged, 1 refused by Notion (set aside: " in out
    assert len(rows(fake_notion, config)) == 18

    assert status(project) == 0
    out = capsys.readouterr().out
    assert out.startswith("0 change(s) waiting in ")
    assert "1 change(s) refused by Notion, set aside in " in out
    assert "gates odd/P2.1 (run of 2026-11-20T08:00:00Z): refused " in out
    assert "(validation_error): body.properties.Environment.select.name.length should be" in out
    assert "APIErrorCode" not in out

    # Retried, and refused again for the same reason: still set aside, nothing else touched.
    assert cli(project, "notion", "sync", "--retry-refused") == 2
    out = capsys.readouterr().out
    assert "queued again 1 refused change(s)" in out and "21 unchanged, 1 refused" in out
    # (the 3 runs are sent: the 18 gates and 3 phase rows are read again, unchanged)
    assert [r.change.key for r in Outbox(config.notion.outbox).refused()] == ["odd/P2.1"]


def test_a_refused_change_retried_after_the_cause_is_gone_is_sent(
    project: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(400, "validation_error", method="POST", path=r"^/v1/pages$")
    assert cli(project, "notion", "sync") == 2
    assert "synced: 23 created, 0 updated, 0 unchanged, 1 refused" in capsys.readouterr().out
    [refused] = Outbox(config.notion.outbox).refused()
    assert refused.code == "validation_error" and refused.change.table == "runs"
    assert cli(project, "notion", "sync", "--retry-refused") == 0
    # The run's row, then its environment's 6 gates and phase linked to it: "Set by", "Last run".
    assert "synced: 1 created, 7 updated, 14 unchanged;" in capsys.readouterr().out
    assert Outbox(config.notion.outbox).refused() == []
    assert len(rows(fake_notion, config)) == 18 and len(rows(fake_notion, config, RUNS)) == 3


def test_a_newer_change_sent_makes_the_refused_one_obsolete(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    fake_notion.inject(400, "validation_error", method="PATCH", path=r"^/v1/pages/")
    write_bundle(config.evidence.dir, make_run("render", NEWER, {"P2.2": Status.WARN}))
    assert sync_all(config, fake_notion).refused == 1
    write_bundle(
        config.evidence.dir, make_run("render", "2026-11-22T09:00:00+00:00", {"P2.2": Status.FAIL})
    )
    report = sync_all(config, fake_notion)
    assert (report.refused, report.updated) == (0, 1)
    assert Outbox(config.notion.outbox).refused() == []  # the row holds a newer state now
    assert rows(fake_notion, config)["render/P2.2"]["Status"] == "FAIL"


# --- a date moved by hand ------------------------------------------------------------------------


def test_a_last_run_moved_into_the_future_is_reported_not_obeyed(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    source = source_of(fake_notion, config, GATES)
    [row] = [
        r
        for r in fake_notion.rows(source)
        if from_property(GATES.column("Gate ID"), r["properties"]["Gate ID"]) == "render/P2.1"
    ]
    fake_notion.edit_row(row["id"], {"Since": {"date": {"start": "2031-01-01T00:00:00Z"}}})
    write_bundle(config.evidence.dir, make_run("render", NEWER, {"P2.1": Status.FAIL}))
    now = datetime(2026, 11, 21, 10, 0, tzinfo=UTC)
    report = sync_all(config, fake_notion, connect(config, fake_notion, now=lambda: now))
    assert report.stale == 0 and report.updated == 1
    assert any(
        "row render/P2.1: Since 2031-01-01T00:00:00.000+00:00 is in the future" in note
        for note in report.notes
    )
    fixed = rows(fake_notion, config)["render/P2.1"]
    assert fixed["Status"] == "FAIL" and str(fixed["Since"]).startswith("2026-11-21T09:00")


def test_a_future_last_run_is_put_right_even_when_the_status_is_unchanged(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    source = source_of(fake_notion, config, GATES)
    [row] = [
        r
        for r in fake_notion.rows(source)
        if from_property(GATES.column("Gate ID"), r["properties"]["Gate ID"]) == "local/P2.4"
    ]
    fake_notion.edit_row(row["id"], {"Since": {"date": {"start": "2031-01-01"}}})
    write_bundle(config.evidence.dir, make_run("local", NEWER))
    report = sync_all(config, fake_notion)
    assert report.stale == 0 and report.updated == 1
    assert str(rows(fake_notion, config)["local/P2.4"]["Since"]).startswith("2026-11-21")
    assert sync_all(config, fake_notion).notes == []  # said once, then right


# --- a create Notion makes after the client gave up ----------------------------------------------


def test_a_create_committed_after_the_timeout_and_the_recheck_is_not_made_twice(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    # The first create is answered never in time, and done by Notion 2 s later.
    fake_notion.inject(0, method="POST", path=r"^/v1/pages$", delay_s=2.0)
    impatient = connect(config, fake_notion, timeout_s=0.3)
    first = sync_all(config, fake_notion, impatient)
    assert (first.created, first.deferred, first.pending, first.error) == (20, 1, 1, "")
    assert "1 create(s) unconfirmed (kept queued)" in first.line()
    [waiting] = Outbox(config.notion.outbox).pending()
    assert waiting.unconfirmed_create
    assert "unanswered: waiting to see it land" in "\n".join(status_lines(impatient.outbox))
    source = source_of(fake_notion, config, RUNS)
    for _ in range(100):  # until the late create (a run's row) lands, 2 s after it was sent
        if len(fake_notion.rows(source)) == 3:
            break
        threading.Event().wait(0.1)
    second = sync_all(config, fake_notion)
    assert (second.created, second.deferred, second.pending) == (0, 0, 0)
    assert len(rows(fake_notion, config)) == 18  # values() fails on a duplicate


def test_an_unconfirmed_create_is_made_again_only_after_it_can_no_longer_land(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    clock = [datetime(2026, 11, 21, 10, 0, tzinfo=UTC)]
    # A gateway's 504: Notion may still be working on it, and (here) never makes it.
    fake_notion.inject(504, "gateway_timeout", method="POST", path=r"^/v1/pages$")
    first = sync_all(config, fake_notion, connect(config, fake_notion, now=lambda: clock[0]))
    assert (first.created, first.deferred) == (20, 1)
    fake_notion.clear_requests()
    clock[0] += timedelta(seconds=60)
    again = sync_all(config, fake_notion, connect(config, fake_notion, now=lambda: clock[0]))
    assert (again.created, again.deferred, again.pending) == (0, 1, 1)
    assert fake_notion.count("POST", "/v1/pages") == 0
    assert any("not created again before 2026-11-21T10:02:00" in n for n in again.notes)
    clock[0] += timedelta(seconds=61)
    last = sync_all(config, fake_notion, connect(config, fake_notion, now=lambda: clock[0]))
    assert (last.created, last.deferred, last.pending) == (1, 0, 0)
    assert len(rows(fake_notion, config)) == 18 and len(rows(fake_notion, config, RUNS)) == 3


# --- several opsctl processes at once --------------------------------------------------------


def test_the_pacer_is_shared_through_a_file(tmp_path: Path) -> None:
    """Two pacers on one file (two processes) space their starts as one would."""
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)

    path = tmp_path / "pace.json"
    first, second = (
        SharedPacer(path, rate=2.0, clock=lambda: now[0], sleep=sleep) for _ in range(2)
    )
    first.wait()
    second.wait()
    first.wait()
    assert slept == pytest.approx([0.525, 1.05])  # 1.05/rate apart, whoever asks
    second.hold(30)  # a 429's Retry-After holds every process back
    first.wait()
    assert slept[-1] == pytest.approx(30)


def test_the_pace_file_is_per_integration_and_never_holds_the_token(tmp_path: Path) -> None:
    token = "ntn_" + "s" * 46  # pragma: allowlist secret
    environ = {"XDG_RUNTIME_DIR": str(tmp_path)}
    path = pace_file(token, environ)
    assert path.parent == tmp_path / "opsctl" and token not in str(path)
    assert pace_file(token, environ) == path != pace_file(token + "x", environ)


def test_two_checkouts_syncing_at_once_stay_within_the_integrations_rate(
    tmp_path: Path, fake_notion: FakeNotion, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    projects = []
    for name in ("a", "b"):
        folder = tmp_path / name
        folder.mkdir()
        path = config_copy(folder)
        for env in ENVS:
            write_bundle(folder / "evidence-out", make_run(env, "2026-11-20T10:00:00+00:00"))
        projects.append(initialised(path, fake_notion))
    # Notion allows 12 requests a second with a burst of 3 (for arrivals bunched on the way);
    # each process alone paces at 10, so two unshared pacers would send 20.
    fake_notion.rate_limit(per_second=12, burst=3)
    fake_notion.clear_requests()
    pace = pace_file(fake_notion.token, {"XDG_RUNTIME_DIR": str(tmp_path / "run")})
    reports: list[SyncReport] = []

    def sync(config: Config) -> None:
        pacer = SharedPacer(pace, rate=10)
        reports.append(sync_all(config, fake_notion, connect(config, fake_notion, pacer=pacer)))

    threads = [threading.Thread(target=sync, args=(config,)) for config in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert [r.created for r in reports] == [21, 21]
    assert all(r.status != 429 for r in fake_notion.requests)


def test_two_inits_at_once_make_three_databases_not_six(
    project: Path, fake_notion: FakeNotion
) -> None:
    parent = fake_notion.add_page("Clara ops")
    # Slow creates: without the lock, both inits would list the parent page before either made
    # its databases.
    fake_notion.inject(0, times=6, method="POST", path=r"^/v1/databases$", delay_s=0.3)
    outputs: list[list[str]] = []

    def run_init() -> None:
        config = load(project)
        outputs.append(init(connect(config, fake_notion), config, parent))

    threads = [threading.Thread(target=run_init) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert len(outputs) == 2
    assert len(fake_notion.databases_under(parent)) == 3  # gates, runs, phase
    assert sum("(created)" in line for lines in outputs for line in lines) == 3


def test_a_sync_that_must_not_wait_long_gives_up_and_keeps_its_changes(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    said: list[str] = []
    with Outbox(config.notion.outbox).sending():  # another process is sending
        report = push(
            config,
            all_changes(config),
            connect(config, fake_notion),
            wait_s=0.3,
            on_wait=said.append,
        )
    assert said and said[0].startswith("waiting for another opsctl process (pid ")
    assert said[0].endswith("at most 0.3 s")
    assert report.exit_code == 3 and report.pending == 21
    assert "kept sending to Notion for over 0.3 s; this run's changes are queued in" in report.error
    assert fake_notion.rows(source_of(fake_notion, config, GATES)) == []
    assert sync_all(config, fake_notion).created == 21  # the next sync sends them


def test_queueing_never_waits_for_a_sync_in_progress(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    outbox = Outbox(config.notion.outbox)
    with outbox.sending():
        outbox.add(all_changes(config))  # returns at once: only the file's short lock
    assert len(outbox.pending()) == 21


# --- counts and messages -------------------------------------------------------------------------


def test_requests_add_up_to_writes_reads_and_failures(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.clear_requests()
    fake_notion.inject(
        429, "rate_limited", times=9, retry_after=0.01, method="POST", path=r"^/v1/pages$"
    )
    fake_notion.inject(503, "service_unavailable", times=2, path=r"/query$")
    report = sync_all(config, fake_notion)
    sent = fake_notion.requests
    assert report.requests == len(sent) == report.writes + report.reads + report.failed
    # 21 rows, then each run row linked to its gates once they exist: 3 patches.
    assert report.writes == 24 == sum(r.status < 300 for r in fake_notion.writes())
    assert report.failed == 11 == sum(r.status >= 400 for r in sent)
    assert report.line().endswith(
        f"; {len(sent)} requests: 24 writes, {report.reads} reads, 11 failed or refused"
    )


def test_a_long_retry_after_is_reported_as_asked_not_as_waited(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(429, "rate_limited", retry_after=120, path=r"^/v1/pages$")
    started = datetime.now(UTC)
    report = sync_all(config, fake_notion)
    assert datetime.now(UTC) - started < timedelta(seconds=30)
    assert "asked to wait 120 s (Retry-After), longer than the 60 s a sync waits" in report.error
    assert "kept answering" not in report.error and report.pending == 21


def test_errors_name_notions_own_codes(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(529, "service_overload", times=4, path=r"/query$")
    report = sync_all(config, fake_notion)
    assert "(HTTP 529 service_overload)" in report.error
    fake_notion.inject(400, "validation_error", method="POST", path=r"^/v1/pages$")
    refused = sync_all(config, fake_notion)
    assert "Notion refused it (validation_error): Request body failed validation." in "\n".join(
        refused.notes
    )
    assert "APIErrorCode" not in report.error + "\n".join(refused.notes)


def test_a_run_records_the_commit_of_the_checkout_not_of_the_current_directory(
    project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsctl.results import RunResult
    from opsctl.verify import Capture, record_evidence

    def git(folder: Path, *args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
        )
        return done.stdout.strip()

    checkout, elsewhere = tmp_path / "checkout", tmp_path / "elsewhere"
    for folder in (checkout, elsewhere):
        folder.mkdir()
        git(folder, "init", "-q")
        git(
            folder,
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@e",
            "commit",
            "-q",
            "--allow-empty",
            "-m",
            folder.name,
        )
    text = project.read_text()
    project.write_text(text.replace(f'\nroot = "{REPO_ROOT}"\n', f'\nroot = "{checkout}"\n'))
    monkeypatch.chdir(elsewhere)  # another checkout, with another commit
    run = RunResult("local", "http://127.0.0.1", "2026-11-20T10:00:00Z", 1.0, ())
    bundle = record_evidence(load(project), run, Capture(), set(), tmp_path / "bundles")
    recorded = json.loads((bundle / "run.json").read_text())["git_commit"]
    assert recorded == git(checkout, "rev-parse", "--short", "HEAD")
    assert recorded != git(elsewhere, "rev-parse", "--short", "HEAD")


def test_status_with_nothing_waiting(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert status(project) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("0 change(s) waiting in ") and out[1] == "nothing refused by Notion"


def test_a_gateway_error_never_holds_the_token(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(400, "validation_error", times=30, method="POST", path=r"^/v1/pages$")
    sync_all(config, fake_notion)
    text = Outbox(config.notion.outbox).refused_path.read_text()
    assert fake_notion.token not in text


def test_an_older_opsctls_date_column_where_a_rollup_now_is_says_how_to_upgrade(
    project: Path, fake_notion: FakeNotion, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before issue 15 "Last run" was a date opsctl wrote; now Notion rolls it up from the runs.
    config = initialised(project, fake_notion)
    source = source_of(fake_notion, config, GATES)
    fake_notion.retype_property(source, "Last run", "date")
    assert cli(project, "notion", "sync") == 2
    err = capsys.readouterr().err
    assert "column 'Last run' is date, expected rollup" in err
    assert "fix: rename or delete the old column in Notion (an older opsctl made it)" in err
    assert err.count("\n") == 1 and "Traceback" not in err
