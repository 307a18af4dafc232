"""Notion sync against a fake Notion API via notion-client unchanged: no duplicate, no loss."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest
import tomlkit

from checks.interface import Status
from checks.registry import CHECKS
from evidence.bundle import BundleInputs, EvidenceWriter
from evidence.store import list_bundles
from opsctl.cli import main
from opsctl.config import Config, load_config
from opsctl.notion.gateway import NotionGateway, NotionSetupError, Pacer, notion_client
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.notion.schema import GATES, RUNS
from opsctl.notion.service import evidence_link, init, push, run_changes
from opsctl.notion.sync import NotionSync, SyncReport
from opsctl.notion.values import from_property
from opsctl.results import GateResult, RunResult
from tests.conftest import config_copy
from tests.fakes.notion_api import FakeNotion

GATE_TITLES = {
    "P2.1": "Twilio pipeline",
    "P2.2": "Render deploy",
    "P2.3": "Keep-alive",
    "P2.4": "Notion",
    "P2.5": "QA",
    "P2.6": "Security",
}
ENVS = ("local", "render", "staging")


def make_run(
    env: str, started: str, status: dict[str, Status] | None = None, **reasons: str
) -> RunResult:
    gates = tuple(
        GateResult(
            gate_id,
            title,
            True,
            (status or {}).get(gate_id, Status.PASS),
            reasons.get(gate_id.replace(".", "_"), f"{title}: all good"),
            duration_s=1.25,
        )
        for gate_id, title in GATE_TITLES.items()
    )
    return RunResult(env, f"https://{env}.example.org", started, 12.5, gates)


def write_bundle(root: Path, run: RunResult) -> Path:
    when = datetime.fromisoformat(run.started_at)
    inputs = BundleInputs(run, "0.1.0", "abc1234", ended_at=run.started_at)
    return EvidenceWriter(root, now=lambda: when).write(inputs, secrets=[])


@pytest.fixture
def project(tmp_path: Path, fake_notion: FakeNotion) -> Path:
    """A copy of opsctl.toml whose [notion] table allows a fast pace; bundles of three envs."""
    path = config_copy(tmp_path)
    document = tomlkit.parse(path.read_text())
    document["notion"]["requests_per_second"] = 100  # type: ignore[index]
    document["notion"]["timeout_s"] = 2  # type: ignore[index]
    path.write_text(tomlkit.dumps(document))
    for env in ENVS:
        write_bundle(tmp_path / "evidence-out", make_run(env, "2026-11-20T10:00:00+00:00"))
    return path


def load(path: Path) -> Config:
    return load_config(path, CHECKS)


def connect(config: Config, fake: FakeNotion, token: str | None = None) -> NotionSync:
    """The sync as `connect` builds it, with a fast pacer and backoff so faults cost no time."""
    client = notion_client(token or fake.token, fake.url, config.notion.timeout_s)
    gateway = NotionGateway(client, Pacer(rate=1000), backoff_s=0.01)
    return NotionSync(gateway, Outbox(config.notion.outbox))


def initialised(project: Path, fake: FakeNotion) -> Config:
    parent = fake.add_page("Clara ops")
    init(connect(load(project), fake), load(project), parent)
    return load(project)


def sync_all(config: Config, fake: FakeNotion, sync: NotionSync | None = None) -> SyncReport:
    changes = [
        change
        for bundle in list_bundles(config.evidence.dir)
        for change in run_changes(bundle.data, bundle.name, evidence_link(config, bundle.path), [])
    ]
    return push(config, changes, sync or connect(config, fake))


def data_source(fake: FakeNotion, config: Config, database_id: str) -> str:
    """The data source (where rows live) of one of our databases."""
    found = [d for d in fake.databases_under(config.notion.parent) if d["id"] == database_id]
    return str(found[0]["data_sources"][0]["id"])


def values(fake: FakeNotion, config: Config, table: str = "gates") -> dict[str, dict[str, object]]:
    """Rows by key, as plain values."""
    spec = GATES if table == "gates" else RUNS
    database_id = config.notion.database_id(table)
    rows = fake.rows(data_source(fake, config, database_id))
    found: dict[str, dict[str, object]] = {}
    for row in rows:
        plain = {c.name: from_property(c, row["properties"].get(c.name)) for c in spec.columns}
        key = str(plain[spec.key])
        assert key not in found, f"duplicate row for {key}"
        found[key] = plain
    return found


# --- init -----------------------------------------------------------------------------------


def test_init_creates_two_typed_databases_and_stores_their_ids(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    assert config.notion.gates_database and config.notion.runs_database
    text = project.read_text()
    assert "# Notion: where the PMO reads gate status" in text  # comments kept
    # Filled in where the keys were, not appended after the next section's comments.
    assert f'gates_database = "{config.notion.gates_database}"\nruns_database = "' in text
    assert text.index("gates_database") < text.index('outbox = ".opsctl/')
    schema = fake_notion.schema(data_source(fake_notion, config, config.notion.gates_database))
    assert {name: p["type"] for name, p in schema.items()} == {
        c.name: c.type for c in GATES.columns
    }
    colours = {o["name"]: o["color"] for o in schema["Status"]["select"]["options"]}
    assert colours["PASS"] == "green" and colours["FAIL"] == "red"
    assert colours["DOCUMENTED-BLOCKED"] == "purple"
    runs = fake_notion.schema(data_source(fake_notion, config, config.notion.runs_database))
    assert runs["Run ID"]["type"] == "title" and runs["Started"]["type"] == "date"


def test_init_again_reuses_the_databases(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    before = fake_notion.count("POST", "/v1/databases")
    lines = init(connect(config, fake_notion), config, config.notion.parent)
    assert fake_notion.count("POST", "/v1/databases") == before == 3  # gates, runs, phase
    assert any("reused" in line for line in lines)


def test_init_finds_its_databases_under_the_parent_when_the_ids_were_lost(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    ids = (config.notion.gates_database, config.notion.runs_database)
    document = tomlkit.parse(project.read_text())
    document["notion"]["gates_database"] = ""  # type: ignore[index]
    document["notion"]["runs_database"] = ""  # type: ignore[index]
    project.write_text(tomlkit.dumps(document))
    lines = init(connect(load(project), fake_notion), load(project), config.notion.parent)
    assert fake_notion.count("POST", "/v1/databases") == 3
    assert (load(project).notion.gates_database, load(project).notion.runs_database) == ids
    assert sum("found under the parent page" in line for line in lines) == 2


def test_init_adds_missing_columns(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    source = data_source(fake_notion, config, config.notion.gates_database)
    fake_notion.drop_property(source, "Reason")
    fake_notion.drop_property(source, "Evidence")
    lines = init(connect(config, fake_notion), config, config.notion.parent)
    assert "repaired: added Reason, Evidence" in "\n".join(lines)
    assert fake_notion.schema(source)["Reason"]["type"] == "rich_text"


def test_a_column_of_the_wrong_type_is_named(
    project: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.retype_property(
        data_source(fake_notion, config, config.notion.gates_database), "Duration", "rich_text"
    )
    with pytest.raises(NotionSetupError, match="column 'Duration' is rich_text, expected number"):
        init(connect(config, fake_notion), config, config.notion.parent)
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    code = main(["notion", "sync", "--config", str(project), "--env-file", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2
    assert "column 'Duration' is rich_text, expected number" in err and "Traceback" not in err


# --- sync -----------------------------------------------------------------------------------


def test_sync_then_sync_again_sends_no_write(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    fake_notion.clear_requests()
    first = sync_all(config, fake_notion)
    assert (first.created, first.error, first.pending) == (21, "", 0)
    # Each run row links its gates once they exist: one patch per run on a first sync.
    assert len(fake_notion.writes()) == 21 + 3
    rows = values(fake_notion, config)
    assert len(rows) == 18
    render = rows["render/P2.2"]
    assert render["Gate"] == "P2.2 Render deploy" and render["Status"] == "PASS"
    assert render["Environment"] == "render" and render["Blocking"] is True
    assert render["Reason"] == "Render deploy: all good" and render["Duration"] == 1.25
    assert render["Evidence"] is None  # no evidence_url: nothing published, no file:// link
    runs = values(fake_notion, config, "runs")
    assert runs["20261120T100000Z_staging"]["Verdict"] == "PASS"
    assert runs["20261120T100000Z_staging"]["Passed"] == 6
    assert runs["20261120T100000Z_staging"]["Git commit"] == "abc1234"

    fake_notion.clear_requests()
    again = sync_all(config, fake_notion)
    assert (again.unchanged, again.created, again.updated) == (21, 0, 0)
    assert fake_notion.writes() == []
    assert values(fake_notion, config) == rows  # and nothing moved


def test_a_changed_gate_is_one_patch_of_the_changed_columns(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    newer = make_run(
        "render", "2026-11-21T09:00:00+00:00", {"P2.3": Status.FAIL}, P2_3="a gap of 41 min"
    )
    bundle = write_bundle(config.evidence.dir, newer)
    fake_notion.clear_requests()
    changes = run_changes(json.loads((bundle / "run.json").read_text()), bundle.name, "", [])
    report = push(config, changes, connect(config, fake_notion))
    patches = [r for r in fake_notion.writes() if r.method == "PATCH"]
    creates = [r for r in fake_notion.writes() if r.method == "POST"]
    # One write for the gate that changed; the five that only got a newer run are left alone.
    assert report.error == "" and len(creates) == 1  # the new run's Runs row
    assert len(patches) == 1
    # Written by property id (a rename in Notion cannot break it): named here for reading.
    schema = fake_notion.schema(data_source(fake_notion, config, config.notion.gates_database))
    name_of = {p["id"]: name for name, p in schema.items()}
    assert {name_of[i] for i in patches[0].body["properties"]} == {  # type: ignore[index]
        "Status",
        "Reason",
        "Since",
    }
    row = values(fake_notion, config)["render/P2.3"]
    assert (row["Status"], row["Reason"]) == ("FAIL", "a gap of 41 min")
    assert str(row["Since"]).startswith("2026-11-21T09:00:00")
    confirmed = values(fake_notion, config)["render/P2.1"]
    assert str(confirmed["Since"]).startswith("2026-11-20")  # its status is a day old...
    assert str(confirmed["Last run"]).startswith("2026-11-21T09:00:00")  # ...and fresh


def test_an_older_run_does_not_overwrite_a_newer_row(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    newer = make_run("render", "2026-11-21T09:00:00+00:00", {"P2.1": Status.FAIL})
    write_bundle(config.evidence.dir, newer)
    sync_all(config, fake_notion)  # both render bundles: the newer one is queued last... and wins
    assert values(fake_notion, config)["render/P2.1"]["Status"] == "FAIL"
    older = make_run("render", "2026-11-19T09:00:00+00:00")
    changes = run_changes(json.loads(json.dumps(_data(older))), "20261119T090000Z_render", "", [])
    report = push(config, changes, connect(config, fake_notion))
    assert report.stale == 6
    assert values(fake_notion, config)["render/P2.1"]["Status"] == "FAIL"


def _data(run: RunResult) -> dict[str, object]:
    from evidence.formats.json_format import as_data

    return as_data(run)


def test_seeded_duplicates_are_collapsed_to_the_oldest(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    source = data_source(fake_notion, config, config.notion.gates_database)
    seeded = [
        fake_notion.seed_row(
            source,
            {
                "Gate": {"title": [{"text": {"content": "P2.2 by hand"}}]},
                "Gate ID": {"rich_text": [{"text": {"content": "render/P2.2"}}]},
            },
            created_time=f"2026-11-0{day}T08:00:00.000Z",
        )
        for day in (3, 1, 2)
    ]
    report = sync_all(config, fake_notion)
    assert report.archived == 2
    assert any("3 rows had key render/P2.2" in note for note in report.notes)
    kept = [
        r
        for r in fake_notion.rows(source)
        if from_property(GATES.column("Gate ID"), r["properties"]["Gate ID"]) == "render/P2.2"
    ]
    assert [r["id"] for r in kept] == [seeded[1]["id"]]  # the oldest one
    assert len(fake_notion.rows(source, in_trash=True)) == 2
    assert values(fake_notion, config)["render/P2.2"]["Gate"] == "P2.2 Render deploy"


def test_text_over_notions_limits_is_split_and_cut_with_a_marker(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    huge = "x" * 250_000
    write_bundle(config.evidence.dir, make_run("render", "2026-11-21T09:00:00+00:00", P2_6=huge))
    report = sync_all(config, fake_notion)
    assert report.error == ""
    reason = str(values(fake_notion, config)["render/P2.6"]["Reason"])
    assert 199_900 < len(reason) <= 200_000 and reason.startswith("x" * 199_900)
    assert reason.endswith(
        f"[... {250_000 - len(reason.split(' [...')[0])} more characters cut by opsctl]"
    )
    fake_notion.clear_requests()
    assert sync_all(config, fake_notion).writes == 0 and fake_notion.writes() == []


def test_secrets_never_reach_notion(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    token = "ab12" * 8  # pragma: allowlist secret
    leaky = make_run("render", "2026-11-21T09:00:00+00:00", P2_1=f"signed with {token}")
    changes = run_changes(_data(leaky), "20261121T090000Z_render", "", [token])
    assert push(config, changes, connect(config, fake_notion)).error == ""
    sent = json.dumps([r.body for r in fake_notion.requests])
    assert token not in sent and "[REDACTED]" in sent
    assert token not in config.notion.outbox.read_text()


# --- faults ---------------------------------------------------------------------------------


def assert_each_key_once(fake: FakeNotion, config: Config) -> None:
    assert len(values(fake, config)) == 18  # values() fails on a duplicate
    assert len(values(fake, config, "runs")) == 3


def test_a_429_storm_is_waited_out(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(429, "rate_limited", times=3, retry_after=0.02)
    fake_notion.inject(
        429, "rate_limited", times=12, retry_after=0.02, method="POST", path=r"^/v1/pages$"
    )
    report = sync_all(config, fake_notion)
    assert (report.error, report.created) == ("", 21)
    assert sum(r.status == 429 for r in fake_notion.requests) == 15
    assert_each_key_once(fake_notion, config)


def test_a_429_storm_past_the_bound_keeps_the_changes(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    client = notion_client(fake_notion.token, fake_notion.url, 1.0)
    gateway = NotionGateway(client, Pacer(rate=1000), backoff_s=0.01, max_wait_s=0.2)
    fake_notion.inject(429, "rate_limited", times=1000, retry_after=0.05, path=r"^/v1/pages$")
    report = sync_all(config, fake_notion, NotionSync(gateway, Outbox(config.notion.outbox)))
    assert report.pending == 21 and "kept answering 429 rate_limited" in report.error
    assert values(fake_notion, config) == {}


@pytest.mark.parametrize(
    "status,code",
    [
        (500, "internal_server_error"),
        (502, "bad_gateway"),
        (504, "gateway_timeout"),
        (529, "service_overload"),
    ],
)
def test_a_create_that_happened_but_answered_5xx_is_not_made_twice(
    project: Path, fake_notion: FakeNotion, status: int, code: str
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(status, code, times=3, method="POST", path=r"^/v1/pages$", apply_first=True)
    report = sync_all(config, fake_notion)
    assert (report.error, report.pending, report.created) == ("", 0, 21)
    assert_each_key_once(fake_notion, config)


def test_a_create_that_failed_before_happening_is_made_again(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.inject(503, "service_unavailable", times=2, method="POST", path=r"^/v1/pages$")
    report = sync_all(config, fake_notion)
    assert (report.error, report.created) == ("", 21)
    assert_each_key_once(fake_notion, config)


def test_a_create_that_timed_out_is_checked_before_creating_again(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    # The row is made at once and its answer held 3 s; the client gives up after 1 s, then looks.
    # The second must be ample on a loaded machine: with 0.3 s, a starved fake had not made the
    # row yet when the look came, and the create was (rightly) kept queued, not counted.
    fake_notion.inject(
        0, times=2, method="POST", path=r"^/v1/pages$", delay_s=3.0, apply_first=True
    )
    client = notion_client(fake_notion.token, fake_notion.url, 1.0)
    impatient = NotionSync(
        NotionGateway(client, Pacer(rate=1000), backoff_s=0.01), Outbox(config.notion.outbox)
    )
    report = sync_all(config, fake_notion, impatient)
    assert (report.error, report.created) == ("", 21)
    assert_each_key_once(fake_notion, config)


@pytest.mark.parametrize(
    "method,path,status,code,raw",
    [
        ("POST", r"/query$", 502, None, "<html><body>502 Bad Gateway</body></html>"),
        ("GET", r"^/v1/data_sources/", 503, "service_unavailable", None),
        ("POST", r"/query$", 529, "service_overload", None),
    ],
)
def test_reads_are_retried_through_5xx(
    project: Path,
    fake_notion: FakeNotion,
    method: str,
    path: str,
    status: int,
    code: str | None,
    raw: str | None,
) -> None:
    config = initialised(project, fake_notion)
    if method == "GET":  # a sync reads the schemas only when none is kept (issue 17)
        Outbox(config.notion.outbox).schema_path.unlink()
    fake_notion.clear_requests()
    fake_notion.inject(status, code, times=2, method=method, path=path, raw_body=raw)
    report = sync_all(config, fake_notion)
    assert (report.error, report.created) == ("", 21)
    assert sum(r.status == status for r in fake_notion.requests) == 2
    assert_each_key_once(fake_notion, config)


def test_a_patch_that_got_a_5xx_is_sent_again(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    write_bundle(
        config.evidence.dir, make_run("local", "2026-11-21T09:00:00+00:00", {"P2.5": Status.FAIL})
    )
    fake_notion.inject(
        504, "gateway_timeout", method="PATCH", path=r"^/v1/pages/", apply_first=True
    )
    report = sync_all(config, fake_notion)
    assert (report.error, report.updated) == ("", 1)
    assert values(fake_notion, config)["local/P2.5"]["Status"] == "FAIL"


def test_a_conflict_redoes_the_read_modify_write(project: Path, fake_notion: FakeNotion) -> None:
    config = initialised(project, fake_notion)
    sync_all(config, fake_notion)
    write_bundle(
        config.evidence.dir, make_run("render", "2026-11-21T09:00:00+00:00", {"P2.2": Status.WARN})
    )
    fake_notion.inject(409, "conflict_error", method="PATCH", path=r"^/v1/pages/")
    report = sync_all(config, fake_notion)
    assert report.error == "" and report.pending == 0
    assert values(fake_notion, config)["render/P2.2"]["Status"] == "WARN"
    assert any(r.status == 409 for r in fake_notion.requests)


def test_notion_down_then_back_loses_nothing_and_sends_nothing_twice(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.clear_requests()
    down = FakeNotion(token=fake_notion.token).start()
    down_url = down.url
    down.stop()  # a port nobody answers on
    client = notion_client(fake_notion.token, down_url, 1.0)
    offline = NotionSync(
        NotionGateway(client, Pacer(rate=1000), backoff_s=0.01), Outbox(config.notion.outbox)
    )
    report = sync_all(config, fake_notion, offline)
    assert report.pending == 21 and "could not be reached" in report.error
    assert len(json.loads(config.notion.outbox.read_text())) == 21
    assert fake_notion.writes() == []

    back = sync_all(config, fake_notion)
    assert (back.error, back.pending, back.created) == ("", 0, 21)
    assert json.loads(config.notion.outbox.read_text()) == []
    assert_each_key_once(fake_notion, config)


def test_an_outage_midway_keeps_the_rest_for_the_next_sync(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    sync = connect(config, fake_notion)
    changes = [
        c for b in list_bundles(config.evidence.dir) for c in run_changes(b.data, b.name, "", [])
    ]
    sync.outbox.add(changes)
    # Five creates go through, then Notion fails every create for a while.
    for _ in range(5):
        fake_notion.inject(0, method="POST", path=r"^/v1/pages$")
    fake_notion.inject(503, "service_unavailable", times=3, method="POST", path=r"^/v1/pages$")
    first = push(config, [], sync)
    # 16 not sent, and the first run's row: made, but its gates (not made yet) not linked.
    assert first.error and first.created == 5 and first.pending == 17
    second = sync_all(config, fake_notion)
    assert (second.error, second.pending, second.created) == ("", 0, 16)
    assert_each_key_once(fake_notion, config)


def test_the_pacer_keeps_a_rate_limited_notion_from_answering_429(
    project: Path, fake_notion: FakeNotion
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.rate_limit(per_second=20, burst=3)
    fake_notion.clear_requests()
    client = notion_client(fake_notion.token, fake_notion.url, 2.0)
    paced = NotionSync(NotionGateway(client, Pacer(rate=15)), Outbox(config.notion.outbox))
    report = sync_all(config, fake_notion, paced)
    assert report.error == "" and report.created == 21
    assert all(r.status != 429 for r in fake_notion.requests)


# --- the command line -------------------------------------------------------------------------


@pytest.fixture
def notion_env(fake_notion: FakeNotion, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)


def test_cli_init_sync_sync(
    project: Path, fake_notion: FakeNotion, notion_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    parent = fake_notion.add_page()
    args = ["--config", str(project), "--env-file", "/dev/null"]
    assert main(["notion", "init", "--parent", parent, *args]) == 0
    out = capsys.readouterr().out
    assert "opsctl gates:" in out and "(created)" in out
    assert main(["notion", "sync", *args]) == 0
    # 18 gates, 3 runs, 3 phase rows; each run row then links its gates.
    out = capsys.readouterr().out
    assert out.startswith("notion: synced: 24 created, 0 updated, 0 unchanged, 3 linked to rows")
    assert main(["notion", "sync", "--env", "render", *args]) == 0
    out = capsys.readouterr().out
    assert "0 created, 0 updated, 7 unchanged" in out and ": 0 writes" in out


def test_cli_bad_token_is_one_line(
    project: Path,
    fake_notion: FakeNotion,
    notion_env: None,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTION_TOKEN", "ntn_" + "0" * 46)  # pragma: allowlist secret
    code = main(
        [
            "notion",
            "init",
            "--parent",
            fake_notion.add_page(),
            "--config",
            str(project),
            "--env-file",
            "/dev/null",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert err == "opsctl: Notion rejected the token: check NOTION_TOKEN\n"


def test_cli_a_database_not_shared_is_named(
    project: Path, fake_notion: FakeNotion, notion_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    fake_notion.unshare(config.notion.gates_database)
    code = main(["notion", "sync", "--config", str(project), "--env-file", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2 and "not shared with the integration" in err and "Traceback" not in err
    assert len(json.loads(config.notion.outbox.read_text())) == 24  # kept until it can be sent


def test_cli_no_token(
    project: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOTION_TOKEN", raising=False)
    code = main(["notion", "sync", "--config", str(project), "--env-file", "/dev/null"])
    assert code == 2
    assert capsys.readouterr().err.startswith(
        "opsctl: NOTION_TOKEN is not set; fix: export NOTION_TOKEN="
    )


def test_the_p24_check_looks_at_notion_without_writing(
    project: Path, fake_notion: FakeNotion, notion_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    config = initialised(project, fake_notion)
    assert main(["notion", "sync", "--config", str(project), "--env-file", "/dev/null"]) == 0
    capsys.readouterr()
    args = ["check", "notion", "--env", "render", "--json", "--config", str(project)]

    def check() -> tuple[int, dict[str, str]]:
        code = main([*args, "--env-file", "/dev/null"])
        return code, json.loads(capsys.readouterr().out)["gates"][0]["checks"][0]

    fake_notion.clear_requests()
    code, result = check()
    assert (code, result["status"]) == (0, "PASS")
    assert "(20261120T100000Z_render), 6 gate row(s) and the phase row" in result["reason"]
    assert fake_notion.writes() == []

    Outbox(config.notion.outbox).add(
        [RowChange("gates", "render/P2.1", {"Status": "FAIL"}, "2026-11-22T00:00:00Z")]
    )
    code, result = check()
    assert (code, result["status"]) == (0, "WARN")
    assert result["reason"].startswith("1 change(s) waiting in")

    source = data_source(fake_notion, config, config.notion.runs_database)
    fake_notion.retype_property(source, "Exit code", "rich_text")
    code, result = check()
    assert (code, result["status"]) == (1, "FAIL")
    assert result["reason"] == "'opsctl runs' column 'Exit code' is rich_text, expected number"


def test_cli_a_parent_that_is_not_an_id_is_one_line(
    project: Path, notion_env: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--config", str(project), "--env-file", "/dev/null"]
    assert main(["notion", "init", "--parent", "my-ops-page", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("opsctl: listing the parent page my-ops-page: Notion refused it (")
    assert err.count("\n") == 1
