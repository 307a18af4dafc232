"""What a person reading only Notion sees, as text: the databases under a page, their rows with
relations shown by the related rows' titles, and a row's page content. Reads the fake's state
only (no opsctl code), so it shows what reached Notion, not what opsctl meant to send."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tests.fakes.notion_api import FakeNotion

JSON = dict[str, Any]


def plain(items: Sequence[Mapping[str, Any]] | None) -> str:
    """The text of a rich text array."""
    return "".join(str(item.get("plain_text", "")) for item in items or [])


def title_of(row: Mapping[str, Any]) -> str:
    """A row's title (its title property's text)."""
    return next((plain(p["title"]) for p in row["properties"].values() if p["type"] == "title"), "")


def shown(prop: Mapping[str, Any], titles: Mapping[str, str]) -> str:
    """One property value as Notion's table shows it; a relation by the related rows' titles."""
    kind = prop["type"]
    value = prop.get(kind)
    if kind in ("title", "rich_text"):
        return plain(value)
    if kind == "select":
        return str(value["name"]) if value else ""
    if kind == "date":
        return str(value["start"]) if value else ""
    if kind == "checkbox":
        return "yes" if value else "no"
    if kind == "relation":
        return ", ".join(titles.get(item["id"], item["id"]) for item in value or [])
    if kind == "rollup":
        inner = value.get(value["type"]) if value else None
        return str(inner.get("start", "")) if isinstance(inner, dict) else str(inner or "")
    return "" if value is None else str(value)


def databases(fake: FakeNotion, parent: str) -> dict[str, list[JSON]]:
    """Database title -> its rows (oldest first), for every database under `parent`."""
    found = {}
    for database in fake.databases_under(parent):
        name = plain(database["title"])
        found[name] = fake.rows(database["data_sources"][0]["id"])
    return found


def render_rows(fake: FakeNotion, parent: str, columns: Mapping[str, Sequence[str]]) -> str:
    """Each database's rows, one block of 'column: value' lines per row (the columns listed in
    `columns` per database title; all when none is listed)."""
    tables = databases(fake, parent)
    titles = {row["id"]: title_of(row) for rows in tables.values() for row in rows}
    lines = []
    order = [*[n for n in columns if n in tables], *[n for n in tables if n not in columns]]
    for name, rows in ((n, tables[n]) for n in order):
        lines.append(f"== {name} ({len(rows)} rows)")
        for row in rows:
            wanted = columns.get(name) or list(row["properties"])
            props = row["properties"]
            cells = [f"{c}: {shown(props[c], titles)}" for c in wanted if c in props]
            lines.append("  - " + " | ".join(cells))
    return "\n".join(lines)


def render_page(fake: FakeNotion, page_id: str) -> str:
    """A page's blocks as indented text (headings marked with ##, list items with -)."""
    lines: list[str] = []

    def walk(blocks: Sequence[JSON], depth: int) -> None:
        for block in blocks:
            kind = block["type"]
            text = plain(block[kind].get("rich_text"))
            links = [item["href"] for item in block[kind].get("rich_text", []) if item.get("href")]
            text += "".join(f" <{href}>" for href in links)
            mark = {"heading_2": "## ", "bulleted_list_item": "- "}.get(kind, "")
            lines.append("  " * depth + mark + text)
            walk(block.get("children", []), depth + 1)

    walk(fake.content(page_id), 0)
    return "\n".join(lines)
