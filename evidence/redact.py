"""Redaction: secret values (and values derived from them) out of text, then proof they are gone.

One Redactor serves every layer: the runner redacts each check's result with it before anything
renders it (so stdout, JSON, JUnit, HTML, the bundle and Notion only see redacted text), the HTTP
recorder redacts each body before cutting it to an excerpt, and the bundle redacts once more and
then scans what it wrote. It imports nothing of the project, so any layer may use it.
"""

from __future__ import annotations

import html
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

REDACTED = "[REDACTED]"
# Shorter values would match ordinary text everywhere; no real token or signature is this short.
MIN_SECRET_LENGTH = 6
# How a cut text says it was cut (evidence/transcripts.py writes it after an excerpt).
_CUT = re.compile(rb"\.\.\. \[\d+ more bytes\]")


def cut_note(more: int) -> str:
    """What follows a text cut short, `more` bytes before its end; `leaks` looks just before it."""
    return f"... [{more} more bytes]"


def _json_escaped(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)[1:-1]


def forms(secret: str) -> set[str]:
    """The ways a value can appear in a file: as is, URL-encoded, JSON-escaped (once, and twice: a
    JSON body inside a JSON transcript), HTML/XML-escaped (report.html, junit.xml), and as
    Python's repr writes it (a reason quoting a body with !r)."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        _json_escaped(secret),
        _json_escaped(json.dumps(secret)[1:-1]),
        html.escape(secret),
        repr(secret)[1:-1],
        secret.encode("unicode_escape").decode("ascii"),
    }


def is_secret_like(value: str) -> bool:
    """Long enough to be told apart from ordinary text (shorter values are never redacted)."""
    return len(value) >= MIN_SECRET_LENGTH


class Redactor:
    """Replaces every form of every secret with [REDACTED]; `leaks` finds any that remain."""

    def __init__(self, secrets: Iterable[str]) -> None:
        values = {s for s in secrets if s and is_secret_like(s)}
        # Longest first, so a secret that contains another is replaced whole.
        self._forms = sorted({f for s in values for f in forms(s)}, key=len, reverse=True)
        self._bytes = [f.encode("utf-8") for f in self._forms]

    def __bool__(self) -> bool:
        return bool(self._forms)

    def redact(self, text: str) -> str:
        """The text with every secret replaced."""
        for form in self._forms:
            text = text.replace(form, REDACTED)
        return text

    def redact_bytes(self, data: bytes) -> bytes:
        """The bytes with every secret (UTF-8) replaced: a body before it is cut or decoded."""
        for form in self._bytes:
            data = data.replace(form, REDACTED.encode())
        return data

    def redact_data(self, value: Any) -> Any:
        """A JSON-like value with every string in it redacted, keys included, at any depth."""
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, Mapping):
            return {self.redact_data(k): self.redact_data(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self.redact_data(v) for v in value)
        if isinstance(value, set | frozenset):
            return type(value)(self.redact_data(v) for v in value)
        return value

    def leaks(self, folder: Path) -> list[str]:
        """Files under `folder` (relative paths) that still hold a secret, byte for byte, or the
        start of one just before a cut (`cut_note`): what redacting after cutting would leave."""
        found = []
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            data = path.read_bytes()
            if any(needle in data for needle in self._bytes) or self._partial_at_cut(data):
                found.append(str(path.relative_to(folder)))
        return found

    def _partial_at_cut(self, data: bytes) -> bool:
        """Does a secret's first MIN_SECRET_LENGTH bytes or more end just where a text was cut?"""
        for cut in _CUT.finditer(data):
            for form in self._bytes:
                for length in range(MIN_SECRET_LENGTH, len(form)):
                    if data.endswith(form[:length], 0, cut.start()):
                        return True
        return False
