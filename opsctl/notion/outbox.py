"""Changes waiting for Notion, kept in a local file until they are sent: nothing is lost."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from opsctl.errors import OpsctlError
from opsctl.files import write_atomically


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass(frozen=True)
class RowChange:
    """A row as it should be in one of our databases (an upsert by key, so safe to resend)."""

    table: str
    """'gates' or 'runs'."""
    key: str
    values: Mapping[str, Any]
    """Column -> plain value."""
    as_of: str
    """When the run that produced it started (ISO 8601): of two changes to a row, the later wins."""


class Outbox:
    """A JSON file of pending RowChanges, oldest first; rewritten atomically after every change.

    A change from a later run replaces a queued one for the same row: Notion only needs the
    latest state; in Notion, the row's date guard (schema.Table.newer_guard) does the same.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the outbox's lock file: a second sync waits instead of racing the first."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def pending(self) -> list[RowChange]:
        """The changes not yet confirmed by Notion, oldest first."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError:
            raise OpsctlError(
                f"{self.path}: not valid JSON; fix: repair it or move it aside (it holds "
                "Notion changes not sent yet)"
            ) from None
        return [RowChange(**item) for item in raw]

    def add(self, changes: Iterable[RowChange]) -> None:
        """Queue `changes` behind what is pending (replacing older changes to the same row)."""
        with self.locked():  # a sync running elsewhere may be rewriting the file
            queue = {(c.table, c.key): c for c in self.pending()}
            for change in changes:
                queued = queue.get((change.table, change.key))
                if queued is not None and _instant(queued.as_of) > _instant(change.as_of):
                    continue  # an older run's view of the row must not replace a newer one
                queue.pop((change.table, change.key), None)  # the newer one goes to the back
                queue[(change.table, change.key)] = change
            self.save(list(queue.values()))

    def save(self, changes: list[RowChange]) -> None:
        """Replace the queue with `changes` (what is left after some were confirmed)."""
        if not changes and not self.path.exists():
            return
        write_atomically(self.path, json.dumps([asdict(c) for c in changes], indent=1) + "\n")
