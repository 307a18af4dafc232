"""The two Notion databases opsctl keeps: their titles, typed columns and natural keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Select colours a project manager reads at a glance; every status a gate can have is listed,
# so Notion does not invent a grey option on first write.
STATUS_COLOURS = {
    "PASS": "green",
    "WARN": "yellow",
    "FAIL": "red",
    "ERROR": "orange",
    "SKIP": "gray",
    "BLOCKED": "brown",
    "DOCUMENTED-BLOCKED": "purple",
}
VERDICT_COLOURS = {
    "PASS": "green",
    "PASS with warnings": "yellow",
    "FAIL": "red",
    "ERROR": "orange",
    "INTERRUPTED": "gray",
}


@dataclass(frozen=True)
class Column:
    """One typed column (a data source property)."""

    name: str
    type: str
    """title, rich_text, select, number, date, checkbox or url."""
    options: Mapping[str, str] | None = None
    """For selects: option name -> colour."""

    def config(self) -> dict[str, Any]:
        """The property's configuration as `databases.create` and `data_sources.update` take it."""
        if self.type == "select":
            options = [{"name": n, "color": c} for n, c in (self.options or {}).items()]
            return {"select": {"options": options}}
        if self.type == "number":
            return {"number": {"format": "number"}}
        return {self.type: {}}


@dataclass(frozen=True)
class Table:
    """A database opsctl owns: its title, columns, and the column holding each row's key."""

    name: str
    """Our name for it ('gates', 'runs'), also its key in opsctl.toml's [notion] table."""
    title: str
    """The database's title in Notion, which `notion init` looks for under the parent page."""
    key: str
    columns: tuple[Column, ...]
    newer_guard: str = ""
    """A date column: a row whose date is later than the update's is left alone (stale update)."""
    refreshed_with_change: tuple[str, ...] = ()
    """Columns that differ on every run (date, duration, link): written only along with a change
    to another column, so a run that confirms a gate's status costs no write."""

    def column(self, name: str) -> Column:
        """The named column."""
        return next(c for c in self.columns if c.name == name)

    def properties(self) -> dict[str, Any]:
        """The whole schema, for `databases.create(initial_data_source=...)`."""
        return {c.name: c.config() for c in self.columns}


GATES = Table(
    name="gates",
    title="opsctl gates",
    key="Gate ID",
    newer_guard="Last run",
    refreshed_with_change=("Last run", "Duration", "Evidence"),
    columns=(
        Column("Gate", "title"),
        Column("Gate ID", "rich_text"),  # <env>/<gate>: the natural key
        Column("Environment", "select"),
        Column("Status", "select", STATUS_COLOURS),
        Column("Last run", "date"),
        Column("Duration", "number"),
        Column("Blocking", "checkbox"),
        Column("Reason", "rich_text"),
        Column("Evidence", "url"),
    ),
)
RUNS = Table(
    name="runs",
    title="opsctl runs",
    key="Run ID",
    columns=(
        Column("Run ID", "title"),  # the evidence bundle's name: the natural key
        Column("Environment", "select"),
        Column("Verdict", "select", VERDICT_COLOURS),
        Column("Summary", "rich_text"),
        Column("Started", "date"),
        Column("Duration", "number"),
        Column("Exit code", "number"),
        Column("Passed", "number"),
        Column("Warnings", "number"),
        Column("Failed", "number"),
        Column("Errors", "number"),
        Column("Skipped", "number"),
        Column("Blocked", "number"),
        Column("Git commit", "rich_text"),
        Column("Target", "rich_text"),
        Column("Evidence", "url"),
    ),
)
TABLES = {table.name: table for table in (GATES, RUNS)}


@dataclass(frozen=True)
class Drift:
    """How a data source's schema differs from ours."""

    missing: tuple[Column, ...]
    wrong_type: tuple[tuple[Column, str], ...]
    """(expected column, the type it has in Notion)."""


def drift(table: Table, properties: Mapping[str, Any]) -> Drift:
    """Compare a data source's `properties` (as Notion returns them) with the table's columns."""
    missing, wrong = [], []
    for column in table.columns:
        found = properties.get(column.name)
        if found is None:
            missing.append(column)
        elif found.get("type") != column.type:
            wrong.append((column, str(found.get("type"))))
    return Drift(tuple(missing), tuple(wrong))
