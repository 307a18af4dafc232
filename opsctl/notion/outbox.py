"""Changes waiting for Notion, kept in a local file until they are sent: nothing is lost."""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode
from opsctl.files import write_atomically

LOCK_POLL_S = 0.1
"""How often a sync that may wait only so long looks whether the sender's lock is free."""


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
    unconfirmed_create: str = ""
    """When a create of this row went unanswered (ISO 8601): Notion may still make it, so the
    row is not created again until that create has surely landed or died."""
    page: str = ""
    """The blocks the row's page is made with, as JSON text (opsctl/notion/pages.py): written
    with a new row, or again when the table's page version column differs. Text, not nested
    data: the outbox file is rewritten after every confirmed change."""

    def row(self) -> tuple[str, str]:
        """The row it is about: (table, key)."""
        return (self.table, self.key)

    def same_run(self, other: RowChange) -> bool:
        """Whether `other` is this change (the same row, from the same run)."""
        return self.row() == other.row() and self.as_of == other.as_of


@dataclass(frozen=True)
class Refused:
    """A change Notion refused for good, set aside so the rest could go; kept until retried."""

    change: RowChange
    code: str
    """Notion's error code, e.g. 'validation_error'."""
    why: str
    """Notion's message, as one line."""
    at: str
    """When it was refused (ISO 8601)."""


class OutboxBusy(OpsctlError):
    """Another process held the sender's lock for longer than this one could wait."""

    exit_code = ExitCode.UNREACHABLE


class Outbox:
    """A JSON file of pending RowChanges, oldest first; rewritten atomically after every change.

    A change from a later run replaces a queued one for the same row: Notion only needs the
    latest state; in Notion, the row's date guard (schema.Table.newer_guard) does the same.
    Beside it: the changes Notion refused (`refused_path`), the schemas last read from Notion
    (`schema_path`, kept.py), and two lock files: a short one for every rewrite of the files,
    and the sender's, held for a whole sync (or init), so that queueing never waits for a sync
    and two syncs never send at once.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.refused_path = path.with_name(f"{path.stem}.refused{path.suffix or '.json'}")
        self._sender_lock = path.with_name(path.name + ".sending")
        self.schema_path = path.with_name(f"{path.stem}.schema{path.suffix or '.json'}")
        """The databases' schemas as last read (kept.py): a sync reads them only when needed."""

    # --- locks -------------------------------------------------------------------------------

    @contextmanager
    def files_locked(self) -> Iterator[None]:
        """Hold the lock of the files for one read-modify-write."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @contextmanager
    def sending(
        self,
        wait_s: float | None = None,
        on_wait: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> Iterator[None]:
        """Be the one process sending to Notion; wait for another one at most `wait_s` (None:
        as long as it takes), saying once through `on_wait` that it waits; OutboxBusy after."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._sender_lock.open("a+") as handle:
            if not _try_lock(handle):
                holder = _holder(handle)
                bound = "as long as it takes" if wait_s is None else f"at most {wait_s:g} s"
                if on_wait is not None:
                    on_wait(
                        f"waiting for another opsctl process{holder} sending to Notion "
                        f"({self._sender_lock}), {bound}"
                    )
                self._wait_for(handle, wait_s, holder, clock)
            try:
                handle.seek(0)
                handle.truncate()
                handle.write(str(os.getpid()))
                handle.flush()
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _wait_for(
        self, handle: IO[str], wait_s: float | None, holder: str, clock: Callable[[], float]
    ) -> None:
        if wait_s is None:
            fcntl.flock(handle, fcntl.LOCK_EX)
            return
        deadline = clock() + wait_s
        while not _try_lock(handle):
            if clock() >= deadline:
                raise OutboxBusy(
                    f"another opsctl process{holder} kept sending to Notion for over "
                    f"{wait_s:g} s; this run's changes are queued in {self.path} and go "
                    "with the next opsctl notion sync"
                )
            time.sleep(LOCK_POLL_S)

    # --- the queue ---------------------------------------------------------------------------

    def pending(self) -> list[RowChange]:
        """The changes not yet confirmed by Notion, oldest first."""
        return [RowChange(**item) for item in self._read(self.path)]

    def add(self, changes: Iterable[RowChange]) -> None:
        """Queue `changes` behind what is pending (replacing older changes to the same row)."""
        with self.files_locked():  # a sync running elsewhere may be rewriting the file
            self._save(_merged(self.pending(), changes))

    def confirm(self, change: RowChange) -> None:
        """Notion holds `change`: drop it from the queue (unless a newer one replaced it), and
        drop the refused changes of that row it makes obsolete."""
        with self.files_locked():
            self._save([c for c in self.pending() if not c.same_run(change)])
            refused = self.refused()
            kept = [
                r
                for r in refused
                if r.change.row() != change.row()
                or _instant(r.change.as_of) > _instant(change.as_of)
            ]
            if len(kept) != len(refused):
                self._save_refused(kept)

    def defer(self, change: RowChange, unconfirmed_create: str) -> None:
        """Keep `change` queued, marked with the time its create went unanswered."""
        with self.files_locked():
            marked = replace(change, unconfirmed_create=unconfirmed_create)
            self._save([marked if c.same_run(change) else c for c in self.pending()])

    # --- refused changes ---------------------------------------------------------------------

    def refused(self) -> list[Refused]:
        """The changes Notion refused for good, oldest first; never sent again by themselves."""
        return [
            Refused(**{**item, "change": RowChange(**item["change"])})
            for item in self._read(self.refused_path)
        ]

    def refuse(self, change: RowChange, code: str, why: str, at: str) -> None:
        """Set `change` aside (out of the queue) with Notion's reason, so the rest can go."""
        with self.files_locked():
            self._save([c for c in self.pending() if not c.same_run(change)])
            others = [r for r in self.refused() if not r.change.same_run(change)]
            self._save_refused([*others, Refused(change, code, " ".join(why.split()), at)])

    def retry_refused(self) -> int:
        """Put every refused change back in the queue (a newer queued change still wins)."""
        with self.files_locked():
            refused = self.refused()
            if not refused:
                return 0
            # Back in front: they are older than what was queued after them.
            self._save(_merged([r.change for r in refused], self.pending()))
            self._save_refused([])
            return len(refused)

    # --- files -------------------------------------------------------------------------------

    def save(self, changes: list[RowChange]) -> None:
        """Replace the queue with `changes`."""
        with self.files_locked():
            self._save(changes)

    def _save(self, changes: list[RowChange]) -> None:
        if not changes and not self.path.exists():
            return
        write_atomically(self.path, json.dumps([asdict(c) for c in changes], indent=1) + "\n")

    def _save_refused(self, refused: list[Refused]) -> None:
        if not refused and not self.refused_path.exists():
            return
        text = json.dumps([asdict(r) for r in refused], indent=1, ensure_ascii=False)
        write_atomically(self.refused_path, text + "\n")

    @staticmethod
    def _read(path: Path) -> list[dict[str, Any]]:
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []
        except ValueError:
            raise OpsctlError(
                f"{path}: not valid JSON; fix: repair it or move it aside (it holds "
                "Notion changes not sent yet)"
            ) from None
        return list(raw)


def _merged(queue: Iterable[RowChange], changes: Iterable[RowChange]) -> list[RowChange]:
    """`queue` with `changes` behind it; of two changes to a row, the later run's, at the back."""
    merged: dict[tuple[str, str], RowChange] = {}
    for change in (*queue, *changes):
        queued = merged.get(change.row())
        if queued is not None and _instant(queued.as_of) > _instant(change.as_of):
            continue  # an older run's view of the row must not replace a newer one
        if queued is not None and not change.unconfirmed_create:
            # A create of the row may still land: the newer change must know it too.
            change = replace(change, unconfirmed_create=queued.unconfirmed_create)
        merged.pop(change.row(), None)  # the newer one goes to the back
        merged[change.row()] = change
    return list(merged.values())


def _try_lock(handle: IO[str]) -> bool:
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _holder(handle: IO[str]) -> str:
    """' (pid N)' from the lock file, when the holder wrote it."""
    handle.seek(0)
    pid = handle.read().strip()
    return f" (pid {pid})" if pid.isdigit() else ""
