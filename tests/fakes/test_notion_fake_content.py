"""The fake's page content, relations and rollups answer notion-client 3.1.0 as Notion does
(https://developers.notion.com/reference/patch-block-children, .../request-limits,
.../property-object#relation, .../page-property-values)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from notion_client import APIResponseError, Client

from tests.fakes.notion_api import FakeNotion
from tests.loopback import TLS


@pytest.fixture
def notion(fake_notion: FakeNotion) -> Iterator[Client]:
    client = Client(
        auth=fake_notion.token, base_url=fake_notion.url, client=httpx.Client(verify=TLS)
    )
    yield client
    client.close()


def para(text: str, children: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"rich_text": [{"text": {"content": text}}]}
    if children is not None:
        body["children"] = children
    return {"type": "paragraph", "paragraph": body}


def two_sources(fake: FakeNotion, notion: Client) -> tuple[str, str]:
    """Data sources 'runs' (Started: date) and 'gates' (Gate ID), under one page."""
    parent = fake.add_page()
    ids = []
    for title, extra in (("runs", {"Started": {"date": {}}}), ("gates", {})):
        made = notion.databases.create(
            parent={"type": "page_id", "page_id": parent},
            title=[{"text": {"content": title}}],
            initial_data_source={"properties": {"Name": {"title": {}}, **extra}},
        )
        ids.append(str(made["data_sources"][0]["id"]))
    return ids[0], ids[1]


def row(notion: Client, source: str, name: str, **props: Any) -> str:
    page = notion.pages.create(
        parent={"type": "data_source_id", "data_source_id": source},
        properties={"Name": {"title": [{"text": {"content": name}}]}, **props},
    )
    return str(page["id"])


def test_a_page_is_made_with_its_blocks_then_appended_to_and_trimmed(
    fake_notion: FakeNotion, notion: Client
) -> None:
    runs, _ = two_sources(fake_notion, notion)
    page = notion.pages.create(
        parent={"type": "data_source_id", "data_source_id": runs},
        properties={"Name": {"title": [{"text": {"content": "r1"}}]}},
        children=[para("verdict", [para("a detail")])],
    )
    notion.blocks.children.append(block_id=page["id"], children=[para("later")])
    listed = notion.blocks.children.list(block_id=page["id"])["results"]
    assert [b["paragraph"]["rich_text"][0]["plain_text"] for b in listed] == ["verdict", "later"]
    assert listed[0]["has_children"] and not listed[1]["has_children"]
    nested = notion.blocks.children.list(block_id=listed[0]["id"])["results"]
    assert nested[0]["parent"] == {"type": "block_id", "block_id": listed[0]["id"]}
    notion.blocks.delete(block_id=listed[1]["id"])
    assert len(notion.blocks.children.list(block_id=page["id"])["results"]) == 1


@pytest.mark.parametrize(
    ("children", "message"),
    [
        ([para(str(i)) for i in range(101)], "body.children.length should be ≤ `100`"),
        (
            [para("1", [para("2", [para("3", [para("4")])])])],
            "body.children[0].paragraph.children[0].paragraph.children[0].paragraph.children "
            "should be not present",
        ),
        (
            [{"type": "heading_2", "heading_2": {"rich_text": [], "children": [para("x")]}}],
            "should be not present",
        ),
        ([para("x" * 2001)], "text.content.length should be ≤ `2000`"),
    ],
)
def test_blocks_beyond_notions_limits_are_refused(
    fake_notion: FakeNotion, notion: Client, children: list[dict[str, Any]], message: str
) -> None:
    runs, _ = two_sources(fake_notion, notion)
    page = row(notion, runs, "r1")
    with pytest.raises(APIResponseError) as refused:
        notion.blocks.children.append(block_id=page, children=children)
    assert refused.value.status == 400 and refused.value.code == "validation_error"
    assert message in str(refused.value)
    assert notion.blocks.children.list(block_id=page)["results"] == []  # nothing made


def test_a_dual_relation_shows_on_both_sides_and_a_rollup_computes_from_it(
    fake_notion: FakeNotion, notion: Client
) -> None:
    runs, gates = two_sources(fake_notion, notion)
    dual = {"data_source_id": gates, "dual_property": {"synced_property_name": "Verified by"}}
    notion.data_sources.update(data_source_id=runs, properties={"Gates": {"relation": dual}})
    rollup = {
        "relation_property_name": "Verified by",
        "rollup_property_name": "Started",
        "function": "latest_date",
    }
    notion.data_sources.update(data_source_id=gates, properties={"Last run": {"rollup": rollup}})
    schema = fake_notion.schema(gates)
    assert schema["Verified by"]["relation"]["data_source_id"] == runs
    assert schema["Verified by"]["relation"]["dual_property"]["synced_property_name"] == "Gates"
    gate = row(notion, gates, "P2.1")
    for day in ("20", "22", "21"):
        row(
            notion,
            runs,
            f"run {day}",
            Started={"date": {"start": f"2026-11-{day}T10:00:00Z"}},
            Gates={"relation": [{"id": gate}]},
        )
    seen = notion.pages.retrieve(page_id=gate)["properties"]
    assert len(seen["Verified by"]["relation"]) == 3 and seen["Verified by"]["has_more"] is False
    assert seen["Last run"]["rollup"]["type"] == "date"
    assert seen["Last run"]["rollup"]["date"]["start"].startswith("2026-11-22T10:00:00")
    with pytest.raises(APIResponseError, match="rollup"):
        notion.pages.update(page_id=gate, properties={"Last run": {"rollup": {}}})


def test_a_page_lists_25_related_pages_and_says_there_are_more(
    fake_notion: FakeNotion, notion: Client
) -> None:
    runs, gates = two_sources(fake_notion, notion)
    single = {"data_source_id": runs, "single_property": {}}
    notion.data_sources.update(data_source_id=gates, properties={"Runs": {"relation": single}})
    related = [{"id": row(notion, runs, f"r{i}")} for i in range(30)]
    gate = row(notion, gates, "P2.1", Runs={"relation": related})
    seen = notion.pages.retrieve(page_id=gate)["properties"]["Runs"]
    assert len(seen["relation"]) == 25 and seen["has_more"] is True
    with pytest.raises(APIResponseError, match="should be ≤ `100`"):
        notion.pages.update(page_id=gate, properties={"Runs": {"relation": related * 4}})
