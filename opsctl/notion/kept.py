"""The schemas of our databases as last read from Notion, kept beside the outbox: a sync with
nothing new then sends its queries only (issue 17). Read again at `notion init`, and by a sync
when Notion refuses a request on a kept schema or its rows show other columns (sync.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from opsctl.files import write_atomically
from opsctl.notion.schema import Layout, Table

FORMAT = 1
"""Part of every fingerprint: a kept copy written in another format is never used."""


def fingerprint(table: Table, database_id: str, pinned: Mapping[str, str]) -> str:
    """What a kept schema is valid for: the table as this opsctl defines it (an upgrade that adds
    a column reads again), the configured database id and the pinned property ids (opsctl.toml)."""
    basis = {"format": FORMAT, "table": asdict(table), "database": database_id, "pinned": pinned}
    text = json.dumps(basis, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class KeptSchema:
    """One database's schema as it was read."""

    database_id: str
    data_source_id: str
    layout: Layout
    title: str
    """The database's title (a team's database has its own)."""
    checked: str = ""
    """When it was read (ISO 8601)."""


class KeptSchemas:
    """A JSON file: our table's name -> the database, data source and layout last read, when,
    and the fingerprint it was read under. A cache: anything unreadable is read from Notion."""

    def __init__(self, path: Path, locked: Callable[[], AbstractContextManager[None]]) -> None:
        self.path = path
        self._locked = locked
        """The outbox's lock of its files: two processes never rewrite the file at once."""

    def get(self, table: Table, database_id: str, pinned: Mapping[str, str]) -> KeptSchema | None:
        """The schema kept for these settings, or None."""
        entry = self._read().get(table.name)
        if not isinstance(entry, dict) or entry.get("fingerprint") != fingerprint(
            table, database_id, pinned
        ):
            return None
        try:
            names = {c.name for c in table.columns}
            layout = Layout(
                ids={str(k): str(v) for k, v in entry["ids"].items() if k in names},
                names={str(k): str(v) for k, v in entry["names"].items() if k in names},
                missing=tuple(c for c in table.columns if c.name in entry["missing"]),
                pinned=bool(entry["pinned"]),
            )
            return KeptSchema(
                str(entry["database_id"]),
                str(entry["data_source_id"]),
                layout,
                str(entry["title"]),
                str(entry["checked"]),
            )
        except (KeyError, TypeError, AttributeError):
            return None

    def keep(
        self,
        table: Table,
        database_id: str,
        pinned: Mapping[str, str],
        found: KeptSchema,
    ) -> None:
        """Keep `found`, just read for these settings."""
        layout = found.layout
        entry = {
            "fingerprint": fingerprint(table, database_id, pinned),
            "checked": found.checked,
            "database_id": found.database_id,
            "data_source_id": found.data_source_id,
            "title": found.title,
            "ids": dict(layout.ids),
            "names": dict(layout.names),
            "missing": [c.name for c in layout.missing],
            "pinned": layout.pinned,
        }
        with self._locked():
            self._write({**self._read(), table.name: entry})

    def drop(self, name: str | None = None) -> None:
        """Forget the kept schema of one table (None: of every table)."""
        with self._locked():
            kept = self._read()
            left = {} if name is None else {k: v for k, v in kept.items() if k != name}
            if left != kept:
                self._write(left)

    def checked(self) -> Iterator[tuple[str, str]]:
        """(table name, when its schema was last read) for every kept schema."""
        for name, entry in sorted(self._read().items()):
            if isinstance(entry, dict):
                yield name, str(entry.get("checked", "?"))

    def _read(self) -> dict[str, Any]:
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return raw if isinstance(raw, dict) else {}

    def _write(self, kept: Mapping[str, Any]) -> None:
        write_atomically(self.path, json.dumps(kept, indent=1, sort_keys=True) + "\n")


def retitled(table: Table, title: str) -> Table:
    """`table` under the title its database has in Notion (a team's database has its own)."""
    return table if title == table.title else replace(table, title=title)
