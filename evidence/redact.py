"""Redaction: secret values (and values derived from them) out of text, then proof they are gone."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter values would match ordinary text everywhere; no real token or signature is this short.
MIN_SECRET_LENGTH = 6


def _forms(secret: str) -> set[str]:
    """The ways a value can appear in a file: as is, URL-encoded, JSON-escaped."""
    return {secret, quote(secret, safe=""), quote_plus(secret, safe=""), json.dumps(secret)[1:-1]}


class Redactor:
    """Replaces every form of every secret with [REDACTED]; `leaks` finds any that remain."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = sorted({f for s in values for f in _forms(s)}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every secret replaced."""
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def leaks(self, folder: Path) -> list[str]:
        """Files under `folder` (relative paths) that still hold a secret, byte for byte."""
        needles = [f.encode("utf-8") for f in self._forms]
        found = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if any(needle in data for needle in needles):
                found.append(str(path.relative_to(folder)))
        return found
