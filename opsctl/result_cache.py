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
        write_atomically(path, json.dumps({**entry, "recorded_at": self._now()}) + "\n")
        entries = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for old in entries[:-KEEP_PER_CHECK]:
            old.unlink(missing_ok=True)


def cache_for(config_path: Path, fresh: bool) -> FileResultCache:
    """The cache beside opsctl.toml (`.opsctl/cache`, where the Notion outbox lives too)."""
    return FileResultCache(config_path.parent / ".opsctl" / "cache", reuse=not fresh)
