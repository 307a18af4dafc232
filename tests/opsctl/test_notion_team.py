"""The team's own databases: [notion] points at them with a column mapping, `init` checks them
(one line naming a missing or mistyped column), the sync writes only the mapped columns, and the
P2.4 check judges the databases configured, never 0 rows as a PASS."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from notion_client import Client

from opsctl.cli import main
from opsctl.config import ConfigError
from opsctl.notion.gateway import NotionSetupError
from tests.fakes.notion_api import FakeNotion
from tests.loopback import TLS
from tests.opsctl.notion_world import GATES, World, text, world

DEMO = "Demo & Testing"
MAPPING = {
    "Run ID": "Name",
    "Started": "Date",
    "Verdict": "Result",
    "Summary": "Notes",
    "Evidence": "Report",
}


def team_database(fake: FakeNotion, parent: str, **retyped: str) -> str:
    """The team's "Demo & Testing" database, made in Notion by a person (their own columns too)."""
    columns: dict[str, Any] = {
        "Name": {"title": {}},
        "Date": {"date": {}},
        "Result": {"select": {"options": [{"name": "PASS", "color": "green"}]}},
        "Notes": {"rich_text": {}},
        "Report": {"url": {}},
        "Tester": {"rich_text": {}},
    }
    columns.update({name: {kind: {}} for name, kind in retyped.items()})
    columns = {name: kind for name, kind in columns.items() if kind != {"gone": {}}}
    client = Client(auth=fake.token, base_url=fake.url, client=httpx.Client(verify=TLS))
    made = client.databases.create(
        parent={"type": "page_id", "page_id": parent},
        title=[{"type": "text", "text": {"content": DEMO}}],
        initial_data_source={"properties": columns},
    )
    return str(made["id"])


def with_team_runs(tmp_path: Path, fake: FakeNotion, **retyped: str) -> World:
    w = world(tmp_path, fake)
    w.parent = fake.add_page("Clara ops")
    w.edit({"notion.runs_database": team_database(fake, w.parent, **retyped)})
    w.edit({"notion.columns": {"runs": MAPPING}})
    return w


def test_runs_go_into_the_teams_demo_and_testing_database(
    tmp_path: Path, fake_notion: FakeNotion
) -> None:
    w = with_team_runs(tmp_path, fake_notion)
    lines = w.init()
    assert any(line.endswith("(the team's, 5 columns mapped)") for line in lines)
    source = next(
        d for d in fake_notion.databases_under(w.parent) if d["title"][0]["plain_text"] == DEMO
    )["data_sources"][0]["id"]
    before = fake_notion.schema(source)
    name = w.run("render", "2026-11-20T10:00:00+00:00")
    assert w.sync().error == ""
    assert fake_notion.schema(source) == before  # no column added to the team's database
    [row] = w.rows(DEMO).values()
    assert text(row["Name"]) == name and text(row["Result"]) == "PASS"
    assert text(row["Date"]).startswith("2026-11-20T10:00:00")
    assert text(row["Notes"]).startswith("PASS: every blocking gate passed")
    assert text(row["Tester"]) == ""  # the team's own column is theirs
    assert "## Gates" in w.page(DEMO, name)
    gate = w.rows(GATES)["P2.1 Twilio pipeline"]
    assert text(gate["Set by"]) == row["id"]  # our gates link the team's run row


@pytest.mark.parametrize(
    ("retyped", "line"),
    [
        (
            {"Result": "gone"},
            "Notion database 'Demo & Testing' ([notion] runs_database): no column 'Result' "
            "(for our 'Verdict'); fix: add it in Notion as select, or map it to another column "
            "in [notion.columns.runs]",
        ),
        (
            {"Result": "rich_text"},
            "Notion database 'Demo & Testing' ([notion] runs_database): column 'Result' (for our "
            "'Verdict') is rich_text, expected select; fix: change its type in Notion, or map it "
            "to another column in [notion.columns.runs]",
        ),
    ],
)
def test_init_names_a_missing_or_mistyped_column_in_one_line(
    tmp_path: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    retyped: dict[str, str],
    line: str,
) -> None:
    w = with_team_runs(tmp_path, fake_notion, **retyped)
    with pytest.raises(NotionSetupError) as raised:
        w.init()
    assert str(raised.value) == line
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    args = ["--config", str(w.path), "--env-file", "/dev/null"]
    assert main(["notion", "init", "--parent", w.parent, *args]) == 2
    assert capsys.readouterr().err == f"opsctl: {line}\n"
    assert not [d for d in fake_notion.databases_under(w.parent) if "runs" in str(d["title"])]


@pytest.mark.parametrize(
    ("columns", "error"),
    [
        ({"runs": {"Run ID": "Name", "Verdit": "Result"}}, "'Verdit' is not one of our columns"),
        ({"runs": {"Verdict": "Result"}}, "the key column 'Run ID' is not mapped"),
        ({"backlog": {"Run ID": "Name"}}, "no database 'backlog'; fix: use one of: gates, runs"),
    ],
)
def test_a_wrong_mapping_is_one_line(
    tmp_path: Path, fake_notion: FakeNotion, columns: dict[str, Any], error: str
) -> None:
    w = world(tmp_path, fake_notion)
    w.edit({"notion.runs_database": "1" * 32, "notion.columns": columns})
    with pytest.raises(ConfigError, match=r"notion\.columns") as raised:
        w.config()
    assert error in str(raised.value) and "\n" not in str(raised.value)


def check(w: World, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    """`opsctl check notion --env render --json`: the notion check's result."""
    args = ["check", "notion", "--env", "render", "--json", "--config", str(w.path)]
    main([*args, "--env-file", "/dev/null"])
    return dict(json.loads(capsys.readouterr().out)["gates"][0]["checks"][0])


def test_the_p24_check_judges_the_configured_databases_and_never_passes_on_0_rows(
    tmp_path: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    w = with_team_runs(tmp_path, fake_notion)
    w.init()
    nothing = check(w, capsys)
    assert (nothing["status"], nothing["reason"]) == (
        "WARN",
        "no completed run of render to look for in Notion yet",
    )
    name = w.run("render", "2026-11-20T10:00:00+00:00")
    unsynced = check(w, capsys)
    assert unsynced["status"] == "FAIL"
    assert unsynced["reason"] == (
        f"Notion lacks the row of the newest run of render ({name}), gate rows for render "
        "(0 found), the phase row of render"
    )
    w.sync()
    synced = check(w, capsys)
    assert synced["status"] == "PASS", synced["reason"]
    assert (
        f"({name}), 6 gate row(s) and the phase row (6 of 6 gates done: closed)"
        in (synced["reason"])
    )
    # A person deletes the run's row in the team's database: the check sees it.
    fake_notion.writes()
    row = w.rows(DEMO)[name]["id"]
    Client(
        auth=fake_notion.token, base_url=fake_notion.url, client=httpx.Client(verify=TLS)
    ).pages.update(page_id=row, in_trash=True)
    gone = check(w, capsys)
    assert gone["status"] == "FAIL" and "the row of the newest run of render" in gone["reason"]
