"""Exit codes: what `opsctl` returns to the shell and what each one means, whatever the format."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What `opsctl` returns to the shell, the same whatever the output format."""

    OK = 0
    GATE_FAILED = 1
    USAGE = 2
    UNREACHABLE = 3


EXIT_MEANING = {
    ExitCode.OK: "every blocking gate in the run's scope is done: PASS, WARN or DOCUMENTED-BLOCKED "
    "(or the command did its job)",
    ExitCode.GATE_FAILED: "a blocking gate failed, or is BLOCKED by a gate that did not pass",
    ExitCode.USAGE: "bad usage or configuration",
    ExitCode.UNREACHABLE: "a target could not be reached, a check could not run, or a blocking "
    "gate (or the whole run) ran nothing",
}

if set(EXIT_MEANING) != set(ExitCode):
    raise RuntimeError("an exit code has no meaning in checks/exitcodes.py")
