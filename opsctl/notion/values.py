"""Plain values to Notion property values and back, within Notion's size limits."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from opsctl.notion.schema import Column, Table

# https://developers.notion.com/reference/request-limits: a text object's content is at most
# 2000 characters, a rich text array at most 100 objects, a URL at most 2000 characters.
TEXT_CHUNK = 2000
MAX_CHUNKS = 100
MAX_URL = 2000


def fit_text(text: str) -> str:
    """The text as Notion can hold it: whole, or cut with a marker saying how much was left out."""
    limit = TEXT_CHUNK * MAX_CHUNKS
    if len(text) <= limit:
        return text
    # The marker must fit too; leave room for any count of characters.
    keep = limit - 64
    return text[:keep] + f" [... {len(text) - keep} more characters cut by opsctl]"


def _rich_text(text: str) -> list[dict[str, Any]]:
    text = fit_text(text)
    return [
        {"type": "text", "text": {"content": text[i : i + TEXT_CHUNK]}}
        for i in range(0, len(text), TEXT_CHUNK)
    ]


def to_property(column: Column, value: Any) -> dict[str, Any]:
    """The write form of one value (None clears it)."""
    kind = column.type
    if kind in ("title", "rich_text"):
        return {kind: _rich_text(str(value or ""))}
    if kind == "select":
        # Notion refuses commas in option names.
        return {"select": {"name": str(value).replace(",", ";")} if value else None}
    if kind == "date":
        return {"date": {"start": value} if value else None}
    if kind == "number":
        return {"number": value}
    if kind == "checkbox":
        return {"checkbox": bool(value)}
    if kind == "url":
        return {"url": str(value)[:MAX_URL] if value else None}
    if kind == "relation":  # page ids (links.py turns our keys into them)
        return {"relation": [{"id": page_id} for page_id in value or []]}
    raise ValueError(f"unsupported column type {kind!r}")


def to_properties(table: Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """The write form of a row (or of the columns in `values` only, for a patch); columns the
    table does not have (a team's database maps only some of ours) are not written."""
    return {
        name: to_property(table.column(name), value)
        for name, value in values.items()
        if has_column(table, name)
    }


def has_column(table: Table, name: str) -> bool:
    """Whether the table (as configured: a team's database may map only some) has `name`."""
    return any(column.name == name for column in table.columns)


def from_property(column: Column, prop: Mapping[str, Any] | None) -> Any:
    """A page's property value (as Notion returns it) as a plain value, comparable with ours."""
    if prop is None:
        return None
    raw = prop.get(column.type)
    if column.type in ("title", "rich_text"):
        return "".join(part.get("plain_text") or part["text"]["content"] for part in raw or [])
    if column.type == "select":
        return raw["name"] if raw else None
    if column.type == "date":
        return raw["start"] if raw else None
    if column.type == "checkbox":
        return bool(raw)
    if column.type == "relation":  # the page ids, in no particular order
        return sorted(str(item["id"]) for item in raw or [])
    if column.type == "rollup":  # what Notion computed: a date's start, a number...
        shown = (raw or {}).get((raw or {}).get("type", ""))
        return shown.get("start") if isinstance(shown, dict) else shown
    return raw


def _instant(value: str) -> datetime | str:
    """A date or datetime as an aware UTC datetime, so '...Z' and '....000+00:00' compare equal."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    # A plain date ('2026-11-22') is read as midnight UTC, so every pair compares.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def same(column: Column, ours: Any, theirs: Any) -> bool:
    """Whether Notion already holds our value (as it would store it)."""
    if column.type in ("title", "rich_text"):
        return fit_text(str(ours or "")) == (theirs or "")
    if column.type == "select":
        mine = str(ours).replace(",", ";") if ours else None
        return mine == theirs
    if column.type == "date":
        if not ours or not theirs:
            return not ours and not theirs
        return _instant(str(ours)) == _instant(str(theirs))
    if column.type == "number":
        if ours is None or theirs is None:
            return ours is None and theirs is None
        return abs(float(ours) - float(theirs)) < 1e-9
    if column.type == "url":
        return (str(ours)[:MAX_URL] if ours else None) == (theirs or None)
    if column.type == "relation":
        return sorted(ours or []) == sorted(theirs or [])
    return bool(ours) == bool(theirs)


def changes(table: Table, wanted: Mapping[str, Any], page: Mapping[str, Any]) -> dict[str, Any]:
    """The columns whose value in `page` differs from `wanted` (our plain values).

    Differences only in `table.refreshed_with_change` columns do not count as a change.
    """
    props = page.get("properties", {})
    different = {
        name: value
        for name, value in wanted.items()
        if has_column(table, name)
        and not same(table.column(name), value, from_property(table.column(name), props.get(name)))
    }
    if set(different) <= set(table.refreshed_with_change):
        return {}
    return different


def later_than(page: Mapping[str, Any], column: Column, ours: Any) -> bool:
    """Whether the page's date in `column` is later than ours (our update would be stale)."""
    theirs = from_property(column, page.get("properties", {}).get(column.name))
    if not theirs or not ours:
        return False
    a, b = _instant(str(theirs)), _instant(str(ours))
    if isinstance(a, str) or isinstance(b, str):
        return False
    return a > b
