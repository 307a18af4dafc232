"""The team's own databases: `[notion.columns.<database>]` maps our columns onto theirs (e.g. the
runs into "Demo & Testing"). Such a database is checked, never made or given columns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from opsctl.config import NotionConfig
from opsctl.notion.gateway import NotionSetupError
from opsctl.notion.schema import TABLES, Table


def configured_tables(settings: NotionConfig) -> dict[str, Table]:
    """Our tables as opsctl.toml sets them: a team's database holds only the mapped columns."""
    return {name: mapped(table, settings.columns.get(name, {})) for name, table in TABLES.items()}


def mapped(table: Table, names: Mapping[str, str]) -> Table:
    """`table` restricted to the columns `names` maps (ours -> the team's), or itself."""
    if not names:
        return table
    columns = tuple(c for c in table.columns if c.name in names)
    kept = {c.name for c in columns}
    return replace(
        table,
        columns=columns,
        names=dict(names),
        newer_guard=table.newer_guard if table.newer_guard in kept else "",
        refreshed_with_change=tuple(c for c in table.refreshed_with_change if c in kept),
        page_version=table.page_version if table.page_version in kept else "",
    )


def check_team(table: Table, title: str, properties: Mapping[str, Any]) -> dict[str, str]:
    """Our column -> its property id in the team's database; NotionSetupError naming the first
    mapped column that is missing there or of another type."""
    where = f"Notion database {title!r} ([notion] {table.name}_database)"
    fix = f"or map it to another column in [notion.columns.{table.name}]"
    ids = {}
    for column in table.columns:
        theirs = table.names[column.name]
        prop = properties.get(theirs)
        if prop is None:
            raise NotionSetupError(
                f"{where}: no column {theirs!r} (for our {column.name!r}); fix: add it in "
                f"Notion as {column.type}, {fix}"
            )
        if prop.get("type") != column.type:
            raise NotionSetupError(
                f"{where}: column {theirs!r} (for our {column.name!r}) is {prop.get('type')}, "
                f"expected {column.type}; fix: change its type in Notion, {fix}"
            )
        ids[column.name] = str(prop.get("id") or theirs)
    return ids
