"""Sign-offs and waivers for what no program can check, kept in an append-only JSON-lines file."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Signoff:
    """One line of the ledger: a manual item signed, or a whole gate waived."""

    kind: str
    """'sign' or 'waive'."""
    gate: str
    by: str
    at: str
    item: str = ""
    note: str = ""
    """For a waiver: the reason."""


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Ledger:
    """Reads and appends the ledger; never rewrites a line."""

    def __init__(self, path: Path, now: Callable[[], str] = _utc_now) -> None:
        self.path = path
        self._now = now

    def entries(self) -> list[Signoff]:
        """Every entry, oldest first ([] when there is no ledger yet)."""
        if not self.path.exists():
            return []
        lines = self.path.read_text(encoding="utf-8").splitlines()
        return [Signoff(**json.loads(line)) for line in lines if line.strip()]

    def append(self, kind: str, gate: str, by: str, item: str = "", note: str = "") -> Signoff:
        """Record one entry, flushed and synced before returning."""
        entry = Signoff(kind, gate, by, self._now(), item, note)
        line = json.dumps(asdict(entry), ensure_ascii=False, sort_keys=True) + "\n"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND: concurrent writers never overwrite each other's lines.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        return entry


def signed_items(entries: list[Signoff], gate: str) -> dict[str, Signoff]:
    """The latest sign-off of each manual item of a gate."""
    return {e.item: e for e in entries if e.kind == "sign" and e.gate == gate}


def waiver_of(entries: list[Signoff], gate: str) -> Signoff | None:
    """The latest waiver of a gate, if any."""
    waivers = [e for e in entries if e.kind == "waive" and e.gate == gate]
    return waivers[-1] if waivers else None
