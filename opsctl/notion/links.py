"""Relations and rollups between our databases: their column configurations, and the rows' keys
in them turned into the page ids Notion wants.

A relation names the related data source (https://developers.notion.com/reference/property-object
#relation, API 2025-09-03: `data_source_id`, with `single_property` or `dual_property`); a rollup
names a relation of its own data source and a column of the related rows. So relations are added
once every database exists, rollups once their relation does (sync.NotionSync.link).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from opsctl.notion.outbox import RowChange
from opsctl.notion.schema import Column, Table
from opsctl.notion.values import has_column


def relation_config(column: Column, sources: Mapping[str, str]) -> dict[str, Any]:
    """A relation column as data_sources.update takes it; `sources`: table -> data source id."""
    assert column.link is not None
    target = sources[column.link.table]
    if column.link.synced:  # shown on both sides: Notion adds the other side's column
        side = {
            "type": "dual_property",
            "dual_property": {"synced_property_name": column.link.synced},
        }
    else:
        side = {"type": "single_property", "single_property": {}}
    return {"relation": {"data_source_id": target, **side}}


def rollup_config(column: Column) -> dict[str, Any]:
    """A rollup column as data_sources.update takes it."""
    assert column.link is not None
    return {
        "rollup": {
            "relation_property_name": column.link.through,
            "rollup_property_name": column.link.of,
            "function": column.link.function,
        }
    }


def link_config(column: Column, sources: Mapping[str, str]) -> dict[str, Any]:
    """A relation or rollup column as data_sources.update takes it."""
    return relation_config(column, sources) if column.type == "relation" else rollup_config(column)


def to_add(
    table: Table, found: Iterable[str], kind: str, sources: Mapping[str, str]
) -> list[Column]:
    """The table's `kind` columns ('relation' or 'rollup') that are not among `found` (our
    column names found in Notion) and can be added now: their target database is known, a
    rollup's relation is there, and Notion does not make them itself (a relation's other side)."""
    present = set(found)
    wanted = []
    for column in table.columns:
        link = column.link
        if column.type != kind or link is None or column.name in present or link.mirror:
            continue
        if link.table not in sources or (kind == "rollup" and link.through not in present):
            continue
        wanted.append(column)
    return wanted


def can_exist(table: Table, column: Column, tables: Mapping[str, Table]) -> bool:
    """Whether opsctl can have `column` in `table`: a relation's other side only while the
    relation it mirrors is one of the other table's columns (a team's database may not map it),
    a rollup only while its relation can."""
    link = column.link
    if link is None:
        return True
    if link.mirror:
        return has_column(tables[link.table], link.synced)
    if column.type == "rollup":
        return can_exist(table, table.column(link.through), tables)
    return True


def referenced(queue: Sequence[RowChange], table: Table, tables: Mapping[str, Table]) -> set[str]:
    """The keys of `table`'s rows that the queued changes' relations point at (read along with
    the queued rows, so that their page ids are known)."""
    keys: set[str] = set()
    for change in queue:
        for column in _relations(tables[change.table], change.values):
            if column.link is not None and column.link.table == table.name:
                keys |= set(_keys(change.values[column.name]))
    return keys


def resolve(
    table: Table,
    values: Mapping[str, Any],
    page_id: Callable[[str, str], str | None],
    queued: set[tuple[str, str]],
) -> tuple[dict[str, Any], bool]:
    """`values` with each relation's keys as page ids (`page_id(table, key)`, None if there is no
    such row yet); and whether a key left out is a row queued in this sync, to be made later
    (the change is then applied once more after it). A key whose row is nowhere is left out."""
    resolved, later = dict(values), False
    for column in _relations(table, values):
        assert column.link is not None
        target, ids = column.link.table, []
        for key in _keys(values[column.name]):
            found = page_id(target, key)
            if found is not None:
                ids.append(found)
            elif (target, key) in queued:
                later = True
        resolved[column.name] = ids
    return resolved, later


def _relations(table: Table, values: Mapping[str, Any]) -> list[Column]:
    return [
        table.column(name)
        for name in values
        if has_column(table, name) and table.column(name).type == "relation"
    ]


def _keys(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(key) for key in value or []]
