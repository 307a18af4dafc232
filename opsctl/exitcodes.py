"""Exit codes, the same whatever the output format."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What `opsctl` returns to the shell."""

    OK = 0
    """Every blocking gate passed (or the command did its job)."""
    GATE_FAILED = 1
    """A gate failed."""
    USAGE = 2
    """Bad usage or configuration."""
    UNREACHABLE = 3
    """A target could not be reached or a check could not run."""
