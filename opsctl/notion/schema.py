"""The Notion databases opsctl keeps: their titles, typed columns and natural keys."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
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
PHASE_COLOURS = {"closed": "green", "open": "red"}
LINKED_TYPES = ("relation", "rollup")
"""Columns that point at rows of a database: added once every database exists (links.py)."""


@dataclass(frozen=True)
class Link:
    """Where a relation or rollup column points (another of our tables, by its name)."""

    table: str
    synced: str = ""
    """A relation shown on both sides: the column Notion keeps in `table` for the other side."""
    mirror: bool = False
    """This column is that other side: Notion makes it, opsctl never writes it."""
    through: str = ""
    """A rollup: the relation column it looks through..."""
    of: str = ""
    """...the column of the related rows it shows..."""
    function: str = ""
    """...and how (Notion's rollup function, e.g. latest_date)."""


@dataclass(frozen=True)
class Column:
    """One typed column (a data source property)."""

    name: str
    type: str
    """title, rich_text, select, number, date, checkbox or url."""
    options: Mapping[str, str] | None = None
    """For selects: option name -> colour."""
    link: Link | None = None
    """For relations and rollups: what they point at."""

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
    page_version: str = ""
    """A column holding the version of the row's page content: a new version replaces it."""
    names: Mapping[str, str] = field(default_factory=dict)
    """The team's own database ([notion.columns]): our column -> its name there. Only those
    columns are written, none is added, and the database is never made."""

    def column(self, name: str) -> Column:
        """The named column."""
        return next(c for c in self.columns if c.name == name)

    def properties(self) -> dict[str, Any]:
        """The schema but its relations and rollups, for `databases.create(initial_data_source=...)`
        (a relation needs the other database's id, a rollup its relation)."""
        return {c.name: c.config() for c in self.columns if c.type not in LINKED_TYPES}


GATES = Table(
    name="gates",
    title="opsctl gates",
    key="Gate ID",
    newer_guard="Since",
    # A run that only confirms a gate writes nothing: "Last run" (a rollup of the runs that
    # verified it) moves by itself. Since and Evidence are those of the run that set the status
    # (rows.py); a status that came back (PASS, FAIL, PASS) changes Set by, so they follow.
    refreshed_with_change=("Since", "Duration", "Evidence"),
    page_version="Page version",
    columns=(
        Column("Gate", "title"),
        Column("Gate ID", "rich_text"),  # <env>/<gate>: the natural key
        Column("Environment", "select"),
        Column("Status", "select", STATUS_COLOURS),
        Column("Since", "date"),
        Column("Set by", "relation", link=Link("runs")),
        Column(
            "Last run",
            "rollup",
            link=Link("runs", through="Verified by", of="Started", function="latest_date"),
        ),
        Column("Verified by", "relation", link=Link("runs", synced="Gates", mirror=True)),
        Column("Needs", "relation", link=Link("gates")),
        Column("Duration", "number"),
        Column("Blocking", "checkbox"),
        Column("Reason", "rich_text"),
        Column("Owner", "rich_text"),
        Column("Sign-offs", "rich_text"),
        Column("Signed by", "rich_text"),
        Column("Signed on", "date"),
        Column("Criteria", "rich_text"),
        Column("Page version", "rich_text"),
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
        Column("Gates", "relation", link=Link("gates", synced="Verified by")),
    ),
)
PHASE = Table(
    name="phase",
    title="opsctl phase",
    key="Phase ID",
    refreshed_with_change=("Evidence",),
    columns=(
        Column("Phase", "title"),
        Column("Phase ID", "rich_text"),  # <env>/<phase>: the natural key
        Column("Environment", "select"),
        Column("State", "select", PHASE_COLOURS),
        Column("Done", "number"),
        Column("Gates", "number"),
        Column("Progress", "rich_text"),
        Column("Blocked by", "relation", link=Link("gates")),
        Column("Why open", "rich_text"),
        Column("Last verified", "date"),
        Column("Last run", "relation", link=Link("runs")),
        Column("Evidence", "url"),
    ),
)
TABLES = {table.name: table for table in (GATES, RUNS, PHASE)}


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


@dataclass(frozen=True)
class Layout:
    """Where our columns are in one data source: found by property id, which a rename in
    Notion keeps (https://developers.notion.com/reference/property-object: a property's `id`
    stays while its name changes; filters and page writes take the id in place of the name)."""

    ids: Mapping[str, str]
    """Our column's name -> its property id in Notion (columns found only)."""
    names: Mapping[str, str]
    """Our column's name -> its name in Notion now (columns found only)."""
    missing: tuple[Column, ...] = ()
    retyped: tuple[tuple[Column, str, str], ...] = ()
    """(our column, its name in Notion, the type it has there)."""
    pinned: bool = False
    """Whether ids were known beforehand (opsctl.toml); else columns were matched by name."""

    def id_of(self, column: str) -> str:
        """The property id to filter or write `column` by (its name, if it was not found)."""
        return self.ids.get(column, column)

    def renamed(self) -> dict[str, str]:
        """Our column's name -> the other name it has in Notion now."""
        return {ours: theirs for ours, theirs in self.names.items() if ours != theirs}

    def ours(self, page: Mapping[str, Any]) -> dict[str, Any]:
        """A page as Notion returns it, its properties keyed by our column names."""
        by_id = {p.get("id"): p for p in page.get("properties", {}).values()}
        props = {ours: by_id[pid] for ours, pid in self.ids.items() if pid in by_id}
        return {**page, "properties": props}


def resolve(table: Table, properties: Mapping[str, Any], pinned: Mapping[str, str]) -> Layout:
    """Find each of the table's columns in a data source's `properties` (as Notion returns them):
    by its pinned property id first, else by its name; the title column by its type."""
    by_id = {str(p.get("id")): (name, p) for name, p in properties.items()}
    taken = {pid for ours, pid in pinned.items() if pid in by_id}
    ids, names, missing, retyped = {}, {}, [], []
    for column in table.columns:
        found = _locate(column, properties, by_id, pinned.get(column.name, ""), taken)
        if found is None:
            missing.append(column)
            continue
        name, prop = found
        if prop.get("type") != column.type:
            retyped.append((column, name, str(prop.get("type"))))
            continue
        ids[column.name], names[column.name] = str(prop.get("id") or name), name
    return Layout(ids, names, tuple(missing), tuple(retyped), pinned=bool(pinned))


def _locate(
    column: Column,
    properties: Mapping[str, Any],
    by_id: Mapping[str, tuple[str, Any]],
    pinned_id: str,
    taken: set[str],
) -> tuple[str, Any] | None:
    """(name in Notion, property) of one column, or None."""
    if column.type == "title":  # a data source has one title property; its id is 'title'
        return next(((n, p) for n, p in properties.items() if p.get("type") == "title"), None)
    if pinned_id in by_id:
        return by_id[pinned_id]
    prop = properties.get(column.name)
    if prop is not None and str(prop.get("id")) not in taken:
        return column.name, prop  # not pinned yet, or deleted and made again with a new id
    return None
