"""Results of expensive checks kept on disk by the digest of their inputs, as build caches do."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from opsctl.files import write_atomically

KEEP_PER_CHECK = 3  # entries hold whole reports (the tests gate's HTML is ~1 MB): keep a few
_DIGEST = re.compile(r"^[0-9a-f]{16,128}$")


def _utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _mtime_or_zero(path: Path) -> float:
    """When the entry was written; 0 if another process removed it meanwhile."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


class FileResultCache:
    """`<location>/<check>/<digest>.json`, written atomically; `reuse=False` only keeps."""

    def __init__(
        self, location: Path, reuse: bool = True, now: Callable[[], str] = _utc_now
    ) -> None:
        self.location = location
        self._reuse = reuse
        self._now = now

    def _path(self, check_id: str, digest: str) -> Path:
        if not _DIGEST.match(digest) or not re.match(r"^[a-z0-9-]+$", check_id):
            raise ValueError(f"not a cache key: {check_id}/{digest}")
        return self.location / check_id / f"{digest}.json"

    def get(self, check_id: str, digest: str) -> Mapping[str, Any] | None:
        """The entry for these inputs; None when reuse is off, absent or unreadable."""
        path = self._path(check_id, digest)
        if not self._reuse:
            return None
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # a cache that cannot be read is a miss, never an error
        return entry if isinstance(entry, dict) and "recorded_at" in entry else None

    def put(self, check_id: str, digest: str, entry: Mapping[str, Any]) -> None:
        """Keep the entry, stamped with the time; drop the oldest beyond KEEP_PER_CHECK."""
        path = self._path(check_id, digest)
        try:
            write_atomically(path, json.dumps({**entry, "recorded_at": self._now()}) + "\n")
            entries = sorted(path.parent.glob("*.json"), key=_mtime_or_zero)
            for old in entries[:-KEEP_PER_CHECK]:
                old.unlink(missing_ok=True)
        except OSError:
            pass  # a cache that cannot be written (read-only checkout, full disk) only costs time


CACHE_DIR_ENV = "OPSCTL_CACHE_DIR"


def cache_for(config_path: Path, fresh: bool, environ: Mapping[str, str]) -> FileResultCache:
    """The cache in OPSCTL_CACHE_DIR (a folder CI keeps between jobs, as PIP_CACHE_DIR or
    RUFF_CACHE_DIR), else beside opsctl.toml (`.opsctl/cache`, where the Notion outbox lives).
    Entries are keyed by their inputs' digests, so one folder serves any number of checkouts."""
    chosen = environ.get(CACHE_DIR_ENV, "")
    location = Path(chosen) if chosen else config_path.parent / ".opsctl" / "cache"
    return FileResultCache(location, reuse=not fresh)
