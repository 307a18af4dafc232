"""Durations as opsctl.toml and the command line write them: '14m', '90s', '1h', '500ms'."""

from __future__ import annotations

import re

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}


class IntervalError(ValueError):
    """An interval that cannot be used; the message says why."""


def parse_duration(text: str) -> float:
    """'14m', '90s', '1h', '500ms' or a bare number of seconds."""
    match = _DURATION.match(text)
    if not match:
        raise IntervalError(f"{text!r} is not a duration: write e.g. 14m, 90s or 1h")
    return float(match.group(1)) * _UNITS[match.group(2)]
