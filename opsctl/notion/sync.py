"""Upsert rows by key into the two databases, without duplicates, whatever Notion does meanwhile."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import chain
from typing import Any

from notion_client.helpers import collect_paginated_api

from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode
from opsctl.notion import links
from opsctl.notion.gateway import (
    NotionConflict,
    NotionError,
    NotionGateway,
    NotionMaybeDone,
    NotionNotFound,
    NotionRefused,
    NotionSetupError,
)
from opsctl.notion.kept import KeptSchema, KeptSchemas, retitled
from opsctl.notion.links import link_config, to_add
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.notion.schema import LINKED_TYPES, Layout, Table, resolve
from opsctl.notion.team import check_team
from opsctl.notion.values import changes, from_property, later_than, to_properties

# A compound filter of this many `equals` fits well within Notion's filter limits.
KEYS_PER_QUERY = 50
REDO_CONFLICT = 3
"""Read-modify-write rounds after a 409 before giving up (the change stays queued)."""
RECHECK_CREATE = 3
"""Creates that may or may not have happened, each followed by a query, before giving up."""
CREATE_SETTLE_S = 120.0
"""How long an unanswered create may still land: Notion gives up on a request after 60 s
(notion-client's APIErrorCode.ServiceUnavailable: "longer than 60 seconds, the maximum request
timeout"); twice that before the row is created again."""
FUTURE_SKEW = timedelta(minutes=5)
"""A newer_guard date later than now by more than this was not set by a run (a person's edit)."""


class NotionUnconfirmed(NotionError):
    """A create went unanswered and its row is not there (yet): created again only later."""


class SchemaMoved(NotionError):
    """The rows Notion returned lack a column of a kept schema, or hold it with another type."""


# What Notion answers a request that names a column the data source no longer has, or gives a
# value of another type (https://developers.notion.com/reference/errors: 400 validation_error),
# or one aimed at a data source gone (404 object_not_found): with a kept schema, read it again.
STALE_SCHEMA = (NotionRefused, NotionNotFound, SchemaMoved)


@dataclass(frozen=True)
class Database:
    """A database we found or made, and the data source its rows live in."""

    table: Table
    database_id: str
    data_source_id: str
    layout: Layout = field(default_factory=lambda: Layout({}, {}))
    """Where our columns are (by property id); empty: by their names."""
    kept: bool = False
    """The layout is the one kept from an earlier read (kept.py), not read by this process: a
    request Notion refuses on it reads the schema again."""

    def prop(self, column: str) -> str:
        """The property id to filter or write `column` by."""
        return self.layout.id_of(column)

    def properties(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """`values` (our column -> plain value) as a page properties write, keyed by id."""
        return {self.prop(name): value for name, value in to_properties(self.table, values).items()}


@dataclass
class SyncReport:
    """What a sync did, in counts and one line per notable thing."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    stale: int = 0
    archived: int = 0
    refused: int = 0
    """Changes Notion refused for good, set aside (opsctl notion status)."""
    deferred: int = 0
    linked: int = 0
    """Rows made earlier in the sync, patched once the rows their relations point at existed."""
    """Creates that went unanswered: kept queued until Notion shows whether they happened."""
    pending: int = 0
    requests: int = 0
    writes: int = 0
    reads: int = 0
    failed: int = 0
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
        if self.refused:
            parts.append(f"{self.refused} refused by Notion (set aside: opsctl notion status)")
        if self.deferred:
            parts.append(f"{self.deferred} create(s) unconfirmed (kept queued)")
        if self.linked:
            parts.append(f"{self.linked} linked to rows made after them")
        return f"{', '.join(parts)}; {self.traffic()}"

    def traffic(self) -> str:
        """The requests sent, as parts that add up to them."""
        return (
            f"{self.requests} requests: {self.writes} writes, {self.reads} reads, "
            f"{self.failed} failed or refused"
        )

    def count(self, gateway: NotionGateway) -> None:
        """Take the gateway's request counts."""
        self.requests, self.writes = gateway.requests, gateway.writes
        self.reads, self.failed = gateway.reads, gateway.failed


class NotionSync:
    """Finds, makes or repairs our databases, and brings their rows to the wanted state."""

    def __init__(
        self,
        gateway: NotionGateway,
        outbox: Outbox,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        settle_s: float = CREATE_SETTLE_S,
    ) -> None:
        self.gateway = gateway
        self.outbox = outbox
        self.client = gateway.client
        self.now = now
        self.settle_s = settle_s
        """How long after an unanswered create its row may still appear."""
        self.notes: list[str] = []
        """What opening the databases found or repaired (a rename followed, columns added)."""
        self.kept = KeptSchemas(outbox.schema_path, outbox.files_locked)
        self._opened: dict[str, tuple[Table, str, Mapping[str, str]]] = {}
        """Our table's name -> (the table, database id, pinned ids) it was opened with."""
        self._said: set[tuple[str, str]] = set()
        """(table, column) whose rename, seen in rows, is in `notes` already."""

    # --- databases -------------------------------------------------------------------------

    def whoami(self) -> str:
        """The integration's name; the first call, so a bad token is named before anything."""
        me = self.gateway.send("checking the token", self.client.users.me)
        return str(me.get("name") or me.get("id"))

    def ensure(
        self, table: Table, parent: str, known_id: str = "", pinned: Mapping[str, str] = {}
    ) -> tuple[Database, str]:
        """Our database for `table`: the known one, one under `parent` with our title, or new.

        Returns it (its layout found) and what was done ('reused', 'found', 'created', plus
        any repair). `pinned`: our column -> property id, as recorded before.
        """
        self._opened[table.name] = (table, known_id, pinned)  # init's keep() says what is recorded
        if table.names:  # the team's database: checked, never made or repaired
            return self.open_team(
                table, known_id
            ), f"the team's, {len(table.columns)} columns mapped"
        if known_id:
            try:
                database = self.database(table, known_id)
            except NotionSetupError:
                pass  # gone, trashed or no longer shared: look under the parent instead
            else:
                return self._repair(database, pinned, "reused")
        found = self._find_under(table, parent)
        if found:
            return self._repair(self.database(table, found), {}, "found under the parent page")
        made = self.gateway.create(
            f"creating the {table.title!r} database",
            self.client.databases.create,
            parent={"type": "page_id", "page_id": parent},
            title=[{"type": "text", "text": {"content": table.title}}],
            initial_data_source={"properties": table.properties()},
        )
        database = Database(table, str(made["id"]), str(made["data_sources"][0]["id"]))
        return self._repair(database, {}, "created")

    def open(self, table: Table, database_id: str, pinned: Mapping[str, str] = {}) -> Database:
        """A configured database, its columns found by id, missing ones added; what was found
        or done is kept in `notes`. The schema kept from the last read for these settings is
        used without a request (kept.py)."""
        self._opened[table.name] = (table, database_id, pinned)
        kept = self.kept.get(table, database_id, pinned)
        if kept is not None:
            table = retitled(table, kept.title)
            database = Database(table, kept.database_id, kept.data_source_id, kept.layout, True)
            if table.names:
                return database
        elif table.names:
            return self.open_team(table, database_id)
        else:
            database, done = self._repair(self.database(table, database_id), pinned, "")
            self.notes += [f"{table.title!r}: {part}" for part in done.split("; ") if part]
        ids = database.layout.ids.items()
        by_name = [c for c, pid in ids if pid != "title" and pinned.get(c) != pid]
        if by_name:
            self.notes.append(
                f"{table.title!r}: columns found by name, not by a recorded id: "
                f"{', '.join(by_name)}; fix: run opsctl notion init to record their ids "
                "(a column renamed in Notion is then followed)"
            )
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

    def keep(
        self,
        databases: Mapping[str, Database],
        recorded: Mapping[str, tuple[str, Mapping[str, str]]] | None = None,
    ) -> None:
        """Keep the schemas this process read (kept.py), for the settings they were opened with,
        or for those `recorded` (init: database id and pinned ids, as it wrote them)."""
        for name, database in databases.items():
            if database.kept or name not in self._opened:
                continue
            table, database_id, pinned = self._opened[name]
            if recorded is not None:
                database_id, pinned = recorded[name]
            found = KeptSchema(
                database.database_id,
                database.data_source_id,
                database.layout,
                database.table.title,
                self._stamp(),
            )
            self.kept.keep(table, database_id, pinned, found)

    def _read_again(self, databases: dict[str, Database], name: str, error: NotionError) -> bool:
        """Whether Notion's `error` came from a kept schema gone stale: if the database's layout
        was kept, read it again (columns added as open() does, NotionSetupError for a retyped
        one) and keep that; True when the schema had indeed moved (the request is worth redoing)."""
        before = databases.get(name)
        if before is None or not before.kept or name not in self._opened:
            return False
        if isinstance(error, NotionRefused) and error.code != "validation_error":
            return False
        self.kept.drop(name)
        table, database_id, pinned = self._opened[name]
        self.notes.append(
            f"{table.title!r}: its schema, kept from an earlier read, was read again: {error}"
        )
        fresh = self.open(table, database_id, pinned)
        linked = self.link({**databases, name: fresh})
        self.keep(linked)
        databases.update(linked)
        after = databases[name]
        moved = (after.data_source_id, dict(after.layout.ids))
        return isinstance(error, SchemaMoved) or moved != (
            before.data_source_id,
            dict(before.layout.ids),
        )

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

    def _repair(
        self, database: Database, pinned: Mapping[str, str], done: str
    ) -> tuple[Database, str]:
        """Find our columns (by id, a rename followed), add missing ones; a column of another
        type, or a missing key, is a person's call. Returns the database and what was done."""
        table = database.table
        layout = resolve(table, self.properties(database), pinned)
        if layout.retyped:
            column, name, actual = layout.retyped[0]
            called = f" (now called {name!r})" if name != column.name else ""
            # A rollup is computed by Notion from a relation: a date column of that name is an
            # older opsctl's (an upgrade), not a person's edit to undo.
            fix = (
                "rename or delete the old column in Notion (an older opsctl made it), then run "
                "opsctl notion init to add the rollup"
                if column.type == "rollup"
                else "change its type back in Notion, or rename it and run opsctl notion init "
                "to add the column again"
            )
            raise NotionSetupError(
                f"Notion database {table.title!r}: column {column.name!r}{called} is {actual}, "
                f"expected {column.type}; fix: {fix}"
            )
        if any(c.name == table.key for c in layout.missing):
            # Made again empty, it would match no row: every row would be created a second time.
            raise NotionSetupError(
                f"Notion database {table.title!r}: the key column {table.key!r} is gone; fix: "
                "restore it from the database's history in Notion (a renamed one is followed "
                "once opsctl notion init has recorded its id)"
            )
        parts = [done] if done else []
        parts += [
            f"column {ours!r} is called {theirs!r} in Notion: followed by its id"
            for ours, theirs in layout.renamed().items()
        ]
        # Relations and rollups need the other databases: NotionSync.link adds them.
        missing = [c for c in layout.missing if c.type not in LINKED_TYPES]
        if missing:
            added = self.gateway.send(  # adding the same columns twice is harmless
                f"adding columns to {table.title!r}",
                self.client.data_sources.update,
                data_source_id=database.data_source_id,
                properties={c.name: c.config() for c in missing},
            )
            parts.append(f"repaired: added {', '.join(c.name for c in missing)}")
            layout = resolve(table, dict(added.get("properties", {})), pinned)
        found = Database(table, database.database_id, database.data_source_id, layout)
        return found, "; ".join(parts)

    # --- rows ------------------------------------------------------------------------------

    def sync(
        self,
        databases: Mapping[str, Database],
        wait_s: float | None = None,
        on_wait: Callable[[str], None] | None = None,
    ) -> SyncReport:
        """Send the outbox in order; a change Notion refuses for good is set aside and the rest
        go on; stop at any other error, leaving the rest for next time.

        Another process sending is waited for, at most `wait_s` (None: as long as it takes).
        """
        report = SyncReport(notes=list(self.notes))
        said = len(self.notes)
        try:
            # One writer at a time: two syncs would both create a row.
            with self.outbox.sending(wait_s, on_wait):
                self._send(databases, report)
        except OpsctlError as error:  # NotionError, or OutboxBusy
            report.error, report.exit_code = str(error), error.exit_code
        report.notes += self.notes[said:]  # a schema read again, a rename seen in the rows
        report.pending = len(self.outbox.pending())
        report.count(self.gateway)
        return report

    def _send(self, opened: Mapping[str, Database], report: SyncReport) -> None:
        """Each queued change: confirmed, refused (set aside), deferred, or left by an error."""
        databases = dict(opened)  # a kept schema read again replaces its database here
        queue = self.outbox.pending()
        current = self._rows_by_key(databases, queue)
        again: list[RowChange] = []  # their relations point at rows made after them
        for change in chain(queue, again):
            try:
                try:
                    later = self._apply_linked(databases, change, current, queue, report, again)
                except STALE_SCHEMA as error:
                    # Never set aside for a kept schema gone stale: read it, then redo once.
                    if not self._read_again(databases, change.table, error):
                        raise
                    # Its rows again, as the schema read now shows them.
                    for row in [row for row in current if row[0] == change.table]:
                        del current[row]
                    current.update(self._rows_by_key(databases, queue, change.table))
                    later = self._apply_linked(databases, change, current, queue, report, again)
                if later:
                    continue  # applied once more at the end, when those rows exist
            except NotionRefused as error:
                self.outbox.refuse(change, error.code, str(error), self._stamp())
                report.refused += 1
                report.exit_code = error.exit_code
                report.notes.append(f"refused by Notion, set aside: {error}")
                continue
            except NotionUnconfirmed as error:
                report.deferred += 1
                report.notes.append(str(error))
                continue
            self.outbox.confirm(change)

    def _stamp(self) -> str:
        return self.now().astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")

    def _rows_by_key(
        self, databases: dict[str, Database], queue: Sequence[RowChange], only: str = ""
    ) -> dict[tuple[str, str], list[dict[str, Any]]]:
        """The existing rows of every queued key (of the `only` table, if given), few queries
        (keys batched in `or` filters); a kept schema refused on the way is read again."""
        found: dict[tuple[str, str], list[dict[str, Any]]] = {}
        for name in [only] if only else list(databases):
            tables = {n: db.table for n, db in databases.items()}
            keys = sorted(
                {c.key for c in queue if c.table == name}
                | links.referenced(queue, databases[name].table, tables)
            )
            try:
                rows = self._rows_with_keys(databases[name], keys)
            except STALE_SCHEMA as error:
                if not self._read_again(databases, name, error):
                    raise
                rows = self._rows_with_keys(databases[name], keys)
            for key, row in rows:
                found.setdefault((name, key), []).append(row)
        return found

    def _rows_with_keys(
        self, database: Database, keys: Sequence[str]
    ) -> list[tuple[str, dict[str, Any]]]:
        """(key, row) of every row whose key is one of `keys`."""
        return [
            (_key_of(database.table, row), row)
            for start in range(0, len(keys), KEYS_PER_QUERY)
            for row in self._query(database, list(keys[start : start + KEYS_PER_QUERY]))
        ]

    def _query(self, database: Database, keys: Sequence[str]) -> list[dict[str, Any]]:
        table = database.table
        kind = table.column(table.key).type
        # By the key column's property id: a rename in Notion cannot lose the rows.
        equals = [{"property": database.prop(table.key), kind: {"equals": key}} for key in keys]
        rows = self._all(
            f"querying {table.title!r}",
            self.client.data_sources.query,
            data_source_id=database.data_source_id,
            filter=equals[0] if len(equals) == 1 else {"or": equals},
            # The oldest row of a key is the one kept when duplicates are collapsed.
            sorts=[{"timestamp": "created_time", "direction": "ascending"}],
        )
        if database.kept:
            self._observe(database, rows[:1])  # every row of a data source has its columns
        ours = [database.layout.ours(row) if database.layout.ids else row for row in rows]
        return [row for row in ours if _key_of(table, row) in keys]

    def _observe(self, database: Database, rows: Sequence[Mapping[str, Any]]) -> None:
        """Check a kept layout against rows Notion returned (queried, made or patched), which
        show every column of their data source (https://developers.notion.com/reference/page:
        `properties`): SchemaMoved
        when one of ours is gone or retyped (or, in a team's database, renamed); a rename of
        one of ours is followed by its id, and said once, as a read of the schema says it."""
        table = database.table
        for row in rows:
            by_id = {str(p.get("id")): (n, p) for n, p in row.get("properties", {}).items()}
            for column, property_id in database.layout.ids.items():
                name, prop = by_id.get(property_id, ("", {}))
                expected = table.column(column).type
                wanted = table.names.get(column, column)
                if prop.get("type") != expected or (table.names and name != wanted):
                    now = f"is {prop['type']}" if prop else "is gone"
                    raise SchemaMoved(
                        f"{table.title!r}: column {column!r} {now} in the rows Notion returned"
                    )
                said = (table.name, column) in self._said
                if not table.names and name != column and not said:
                    self._said.add((table.name, column))
                    self.notes.append(
                        f"{table.title!r}: column {column!r} is called {name!r} in Notion: "
                        "followed by its id"
                    )

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
                    self._settled(database, change)
                    rows = self._create(database, change)
                    current[(table.name, change.key)] = rows  # relations may point at it now
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

    def _settled(self, database: Database, change: RowChange) -> None:
        """NotionUnconfirmed while an earlier unanswered create of the row may still land."""
        if not change.unconfirmed_create:
            return
        since = datetime.fromisoformat(change.unconfirmed_create.replace("Z", "+00:00"))
        until = since + timedelta(seconds=self.settle_s)
        if self.now() < until:
            raise NotionUnconfirmed(
                f"{database.table.title!r} row {change.key}: its create of "
                f"{change.unconfirmed_create} went unanswered and the row is not there yet; "
                f"not created again before {until.isoformat(timespec='seconds')}, kept queued"
            )

    def _create(self, database: Database, change: RowChange) -> list[dict[str, Any]]:
        table = database.table
        for _ in range(RECHECK_CREATE):
            try:
                page = self.gateway.create(
                    f"creating {table.title!r} row {change.key}",
                    self.client.pages.create,
                    parent={"type": "data_source_id", "data_source_id": database.data_source_id},
                    **({"children": json.loads(change.page)} if change.page else {}),
                    properties=database.properties({table.key: change.key, **change.values}),
                )
                if database.kept:  # a column not written (a rollup) may have moved as well
                    self._observe(database, [page])
                return [database.layout.ours(page) if database.layout.ids else page]
            except NotionMaybeDone as error:
                # It may have been made before the answer was lost: look before making another.
                rows = self._query(database, [change.key])
                if rows:
                    return rows
                if error.may_land_later:  # Notion may still be making it: not again, not now
                    self.outbox.defer(change, self._stamp())
                    raise NotionUnconfirmed(
                        f"{table.title!r} row {change.key}: {error}, and the row is not there "
                        "yet; kept queued, created again only if it has not appeared in "
                        f"{self.settle_s:g} s"
                    ) from None
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
        different, guard = {}, table.newer_guard
        if guard and later_than(row, table.column(guard), change.as_of):
            if not self._from_the_future(database, change, row, report):
                report.stale += 1
                return
            different = {guard: change.values[guard]}  # put right even when nothing else moved
        different = {**changes(table, change.values, row), **different}
        if not different:
            report.unchanged += 1
            return
        page = self.gateway.send(  # a PATCH of the same values is safe to repeat
            f"updating {table.title!r} row {change.key}",
            self.client.pages.update,
            page_id=row["id"],
            properties=database.properties(different),
        )
        if database.kept:  # before counting: a redo after a schema read finds it done
            self._observe(database, [page])
        report.updated += 1

    def _from_the_future(
        self, database: Database, change: RowChange, row: dict[str, Any], report: SyncReport
    ) -> bool:
        """Whether the row's guard date is in the future (no run set it: a person did); said."""
        column = database.table.column(database.table.newer_guard)
        if not later_than(row, column, (self.now() + FUTURE_SKEW).isoformat()):
            return False
        theirs = from_property(column, row.get("properties", {}).get(column.name))
        report.notes.append(
            f"{database.table.title!r} row {change.key}: {column.name} {theirs} is in the "
            f"future (edited in Notion?); not obeyed: this run's {change.as_of} replaces it"
        )
        return True

    # --- relations, rollups, page content and the team's databases (issue 15) -----------------

    def link(self, databases: Mapping[str, Database]) -> dict[str, Database]:
        """Add the relation columns (every database exists now), then the rollups (their
        relations exist now); the team's databases are left as they are."""
        linked = dict(databases)
        sources = {name: db.data_source_id for name, db in databases.items()}
        for kind in LINKED_TYPES:  # relations first: a rollup looks through one
            for name in list(linked):
                database = linked[name]
                table = database.table
                found = self._found_now(database) if kind == "rollup" else database.layout.ids
                add = [] if table.names else to_add(table, found, kind, sources)
                if not add:
                    continue
                made = self.gateway.send(  # adding the same columns twice is harmless
                    f"adding {kind} columns to {table.title!r}",
                    self.client.data_sources.update,
                    data_source_id=database.data_source_id,
                    properties={c.name: link_config(c, sources) for c in add},
                )
                layout = resolve(table, dict(made.get("properties", {})), database.layout.ids)
                linked[name] = replace(database, layout=layout, kept=False)  # read just now
                self.notes.append(f"{table.title!r}: added {', '.join(c.name for c in add)}")
        return linked

    def _found_now(self, database: Database) -> Mapping[str, str]:
        """Our columns found in the database, read again when a relation's other side (made
        by Notion in it) may have appeared since it was opened."""
        table = database.table
        mirrors = [c for c in table.columns if c.link and c.link.mirror]
        if all(c.name in database.layout.ids for c in mirrors):
            return database.layout.ids
        return resolve(table, self.properties(database), database.layout.ids).ids

    def open_team(self, table: Table, database_id: str) -> Database:
        """The team's database: every mapped column there with our type (else one line naming
        it), found by its property id; nothing is added."""
        database = self.database(table, database_id)
        source = self.gateway.send(
            f"reading the team's database {database_id}",
            self.client.data_sources.retrieve,
            data_source_id=database.data_source_id,
        )
        title = "".join(t.get("plain_text", "") for t in source.get("title", [])) or table.title
        pinned = check_team(table, title, source.get("properties", {}))
        layout = resolve(table, source.get("properties", {}), pinned)
        return replace(database, table=replace(table, title=title), layout=layout)

    def _apply_linked(
        self,
        databases: Mapping[str, Database],
        change: RowChange,
        current: dict[tuple[str, str], list[dict[str, Any]]],
        queue: Sequence[RowChange],
        report: SyncReport,
        again: list[RowChange],
    ) -> bool:
        """Apply `change` with its relations' keys as page ids, its page content written again
        if its version changed. True (and `change` added to `again`) when a relation points at
        a row queued but not made yet: applied once more then, counted once, as linked."""
        database = databases[change.table]
        queued = {(c.table, c.key) for c in queue}
        values, later = links.resolve(
            database.table, change.values, lambda t, k: _page_id(current, t, k), queued
        )
        rows = current.get((database.table.name, change.key), [])
        if rows and change.page and _page_version_differs(database.table, change, rows[0]):
            self._rewrite_page(database, rows[0]["id"], change)
        second = change in again
        counts = SyncReport() if second else report
        self._apply(database, replace(change, values=values), current, counts)
        report.linked += counts.updated if second else 0
        if later and not second:
            again.append(change)
        return later and not second

    def _rewrite_page(self, database: Database, page_id: str, change: RowChange) -> None:
        """Replace the page's blocks (not its child databases or pages) with the change's."""
        what = f"rewriting the page of {database.table.title!r} row {change.key}"
        blocks = self._all(what, self.client.blocks.children.list, block_id=page_id)
        for block in blocks:
            if block.get("type") not in ("child_database", "child_page"):
                self.gateway.send(what, self.client.blocks.delete, block_id=block["id"])
        self.gateway.send(  # pages.py fits a page in one request
            what,
            self.client.blocks.children.append,
            block_id=page_id,
            children=json.loads(change.page),
        )

    def rows_with_key(self, database: Database, op: str, value: str) -> list[dict[str, Any]]:
        """The rows whose key `op`s `value` ('equals', 'starts_with'), read-only."""
        table = database.table
        kind = table.column(table.key).type
        return self._all(
            f"reading {table.title!r}",
            self.client.data_sources.query,
            data_source_id=database.data_source_id,
            filter={"property": database.prop(table.key), kind: {op: value}},
        )


def _page_id(
    current: Mapping[tuple[str, str], list[dict[str, Any]]], table: str, key: str
) -> str | None:
    rows = current.get((table, key))
    return str(rows[0]["id"]) if rows else None


def _page_version_differs(table: Table, change: RowChange, row: Mapping[str, Any]) -> bool:
    """Whether the row's page holds other content than the change's (by its version column)."""
    if not table.page_version or table.page_version not in change.values:
        return False
    column = table.column(table.page_version)
    theirs = from_property(column, row.get("properties", {}).get(column.name))
    return bool(theirs != change.values[table.page_version])


def _key_of(table: Table, row: Mapping[str, Any]) -> str:
    return str(from_property(table.column(table.key), row.get("properties", {}).get(table.key)))
