"""Upsert rows by key into the two databases, without duplicates, whatever Notion does meanwhile."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from notion_client.helpers import collect_paginated_api

from opsctl.exitcodes import ExitCode
from opsctl.notion.gateway import (
    NotionConflict,
    NotionError,
    NotionGateway,
    NotionMaybeDone,
    NotionSetupError,
)
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.notion.schema import Drift, Table, drift
from opsctl.notion.values import changes, from_property, later_than, to_properties

# A compound filter of this many `equals` fits well within Notion's filter limits.
KEYS_PER_QUERY = 50
REDO_CONFLICT = 3
"""Read-modify-write rounds after a 409 before giving up (the change stays queued)."""
RECHECK_CREATE = 3
"""Creates that may or may not have happened, each followed by a query, before giving up."""


@dataclass(frozen=True)
class Database:
    """A database we found or made, and the data source its rows live in."""

    table: Table
    database_id: str
    data_source_id: str


@dataclass
class SyncReport:
    """What a sync did, in counts and one line per notable thing."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    archived: int = 0
    pending: int = 0
    requests: int = 0
    writes: int = 0
    notes: list[str] = field(default_factory=list)
    error: str = ""
    """Why the sync stopped early (the rest is in the outbox); empty when all was sent."""
    exit_code: ExitCode = ExitCode.OK

    def line(self) -> str:
        """One line for the terminal."""
        parts = [
            f"{self.created} created",
            f"{self.updated} updated",
            f"{self.unchanged} unchanged",
        ]
        if self.stale:
            parts.append(f"{self.stale} older than Notion's (left alone)")
        if self.archived:
            parts.append(f"{self.archived} duplicate(s) archived")
        return f"{', '.join(parts)}; {self.requests} requests, {self.writes} writes"


class NotionSync:
    """Finds, makes or repairs our databases, and brings their rows to the wanted state."""

    def __init__(self, gateway: NotionGateway, outbox: Outbox) -> None:
        self.gateway = gateway
        self.outbox = outbox
        self.client = gateway.client

    # --- databases -------------------------------------------------------------------------

    def whoami(self) -> str:
        """The integration's name; the first call, so a bad token is named before anything."""
        me = self.gateway.send("checking the token", self.client.users.me)
        return str(me.get("name") or me.get("id"))

    def ensure(self, table: Table, parent: str, known_id: str = "") -> tuple[Database, str]:
        """Our database for `table`: the known one, one under `parent` with our title, or new.

        Returns it and what was done ('reused', 'found', 'created', plus any repair).
        """
        if known_id:
            try:
                database = self.database(table, known_id)
                return database, "reused" + self._repair(database)
            except NotionSetupError:
                pass  # gone, trashed or no longer shared: look under the parent instead
        found = self._find_under(table, parent)
        if found:
            database = self.database(table, found)
            return database, "found under the parent page" + self._repair(database)
        made = self.gateway.create(
            f"creating the {table.title!r} database",
            self.client.databases.create,
            parent={"type": "page_id", "page_id": parent},
            title=[{"type": "text", "text": {"content": table.title}}],
            initial_data_source={"properties": table.properties()},
        )
        database = Database(table, str(made["id"]), str(made["data_sources"][0]["id"]))
        return database, "created" + self._repair(database)

    def open(self, table: Table, database_id: str) -> Database:
        """A configured database, its schema repaired if columns are missing."""
        database = self.database(table, database_id)
        self._repair(database)
        return database

    def database(self, table: Table, database_id: str) -> Database:
        """The database and its data source; NotionSetupError if it is gone or in the trash."""
        data = self.gateway.send(
            f"reading the {table.title!r} database {database_id}",
            self.client.databases.retrieve,
            database_id=database_id,
        )
        if data.get("in_trash") or data.get("archived") or not data.get("data_sources"):
            raise NotionSetupError(
                f"the {table.title!r} database {database_id} is in Notion's trash; "
                "fix: restore it, or run opsctl notion init to make a new one"
            )
        return Database(table, str(data["id"]), str(data["data_sources"][0]["id"]))

    def properties(self, database: Database) -> dict[str, Any]:
        """The columns of the database's data source, as Notion returns them (read-only)."""
        source = self.gateway.send(
            f"reading the {database.table.title!r} schema",
            self.client.data_sources.retrieve,
            data_source_id=database.data_source_id,
        )
        return dict(source.get("properties", {}))

    def count_rows(self, database: Database, column: str, value: str) -> int:
        """Rows whose select `column` is `value` (read-only)."""
        return len(
            self._all(
                f"counting {database.table.title!r} rows",
                self.client.data_sources.query,
                data_source_id=database.data_source_id,
                filter={"property": column, "select": {"equals": value}},
            )
        )

    def _find_under(self, table: Table, parent: str) -> str:
        children = self._all(
            f"listing the parent page {parent}", self.client.blocks.children.list, block_id=parent
        )
        for block in children:
            title = block.get("child_database", {}).get("title")
            if block.get("type") == "child_database" and title == table.title:
                return str(block["id"])
        return ""

    def _all(self, what: str, call: Callable[..., Any], **kwargs: Any) -> list[dict[str, Any]]:
        """Every result of a paginated endpoint, each page a paced, retried request."""
        return collect_paginated_api(
            lambda **page: self.gateway.send(what, call, **page), page_size=100, **kwargs
        )

    def _repair(self, database: Database) -> str:
        """Add missing columns; name a column of the wrong type (that is a person's call)."""
        table = database.table
        properties = self.properties(database)
        found: Drift = drift(table, properties)
        if found.wrong_type:
            column, actual = found.wrong_type[0]
            raise NotionSetupError(
                f"Notion database {table.title!r}: column {column.name!r} is {actual}, "
                f"expected {column.type}; fix: change its type in Notion, or rename it and run "
                "opsctl notion init to add the column again"
            )
        titles = [c for c in found.missing if c.type == "title"]
        if titles:
            current = next(
                (n for n, p in properties.items() if p.get("type") == "title"),
                "?",
            )
            raise NotionSetupError(
                f"Notion database {table.title!r}: the title column is {current!r}, expected "
                f"{titles[0].name!r}; fix: rename it to {titles[0].name!r} in Notion"
            )
        if not found.missing:
            return ""
        self.gateway.send(  # adding the same columns twice is harmless: safe to repeat
            f"adding columns to {table.title!r}",
            self.client.data_sources.update,
            data_source_id=database.data_source_id,
            properties={c.name: c.config() for c in found.missing},
        )
        return f"; repaired: added {', '.join(c.name for c in found.missing)}"

    # --- rows ------------------------------------------------------------------------------

    def sync(self, databases: Mapping[str, Database]) -> SyncReport:
        """Send the outbox in order; stop at the first error, leaving the rest for next time."""
        report = SyncReport()
        with self.outbox.locked():  # one writer at a time: two syncs would both create a row
            queue = self.outbox.pending()
            sent = 0
            try:
                current = self._rows_by_key(databases, queue)
                for change in queue:
                    self._apply(databases[change.table], change, current, report)
                    sent += 1
                    self.outbox.save(queue[sent:])
            except NotionError as error:
                report.error, report.exit_code = str(error), error.exit_code
            report.pending = len(queue) - sent
        report.requests = self.gateway.requests
        report.writes = self.gateway.writes
        return report

    def _rows_by_key(
        self, databases: Mapping[str, Database], queue: Sequence[RowChange]
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The existing rows of every queued key, few queries (keys batched in `or` filters)."""
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for name, database in databases.items():
            keys = sorted({c.key for c in queue if c.table == name})
            for start in range(0, len(keys), KEYS_PER_QUERY):
                for row in self._query(database, keys[start : start + KEYS_PER_QUERY]):
                    key = _key_of(database.table, row)
                    found.setdefault((name, key), []).append(row)
        return found

    def _query(self, database: Database, keys: Sequence[str]) -> list[dict[str, Any]]:
        table = database.table
        kind = table.column(table.key).type
        equals = [{"property": table.key, kind: {"equals": key}} for key in keys]
        rows = self._all(
            f"querying {table.title!r}",
            self.client.data_sources.query,
            data_source_id=database.data_source_id,
            filter=equals[0] if len(equals) == 1 else {"or": equals},
            # The oldest row of a key is the one kept when duplicates are collapsed.
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
        )
        return [row for row in rows if _key_of(table, row) in keys]

    def _apply(
        self,
        database: Database,
        change: RowChange,
        current: dict[tuple[str, str], list[dict[str, Any]]],
        report: SyncReport,
    ) -> None:
        table = database.table
        rows = current.get((table.name, change.key), [])
        for round_ in range(1, REDO_CONFLICT + 1):
            try:
                if not rows:
                    rows = self._create(database, change)
                    report.created += 1
                    return
                rows = self._collapse(database, change.key, rows, report)
                self._update(database, change, rows[0], report)
                return
            except NotionConflict:
                if round_ == REDO_CONFLICT:
                    raise NotionError(
                        f"{table.title!r} row {change.key}: Notion kept answering 409 "
                        "conflict_error; the change is kept for the next sync"
                    ) from None
                rows = self._query(database, [change.key])  # read again, then redo

    def _create(self, database: Database, change: RowChange) -> list[dict[str, Any]]:
        table = database.table
        for _ in range(RECHECK_CREATE):
            try:
                page = self.gateway.create(
                    f"creating {table.title!r} row {change.key}",
                    self.client.pages.create,
                    parent={"type": "data_source_id", "data_source_id": database.data_source_id},
                    properties=to_properties(table, {table.key: change.key, **change.values}),
                )
                return [page]
            except NotionMaybeDone:
                # It may have been made before the answer was lost: look before making another.
                rows = self._query(database, [change.key])
                if rows:
                    return rows
        raise NotionError(
            f"{table.title!r} row {change.key}: creating it kept failing; "
            "the change is kept for the next sync"
        )

    def _collapse(
        self,
        database: Database,
        key: str,
        rows: list[dict[str, Any]],
        report: SyncReport,
    ) -> list[dict[str, Any]]:
        """Keep the oldest row of a key and archive the others (hand-made, or from a crash)."""
        keep, extra = rows[0], rows[1:]
        for row in extra:
            self.gateway.send(  # the same PATCH twice is harmless
                f"archiving a duplicate {database.table.title!r} row {key}",
                self.client.pages.update,
                page_id=row["id"],
                in_trash=True,
            )
            report.archived += 1
        if extra:
            report.notes.append(
                f"{database.table.title!r}: {len(rows)} rows had key {key}; kept the oldest "
                f"({keep['id']}), archived {len(extra)}"
            )
        return [keep]

    def _update(
        self, database: Database, change: RowChange, row: dict[str, Any], report: SyncReport
    ) -> None:
        table = database.table
        if table.newer_guard and later_than(row, table.column(table.newer_guard), change.as_of):
            report.stale += 1
            return
        different = changes(table, change.values, row)
        if not different:
            report.unchanged += 1
            return
        self.gateway.send(  # a PATCH of the same values is safe to repeat
            f"updating {table.title!r} row {change.key}",
            self.client.pages.update,
            page_id=row["id"],
            properties=to_properties(table, different),
        )
        report.updated += 1


def _key_of(table: Table, row: Mapping[str, Any]) -> str:
    return str(from_property(table.column(table.key), row.get("properties", {}).get(table.key)))
