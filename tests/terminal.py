"""Run a command with a pseudo-terminal as its stdout and stderr, as a person's shell would."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from collections.abc import Mapping

from tests.conftest import REPO_ROOT


def read_terminal(
    command: list[str], environ: Mapping[str, str], columns: int = 200, deadline_s: float = 120
) -> tuple[int, str]:
    """The command's exit code and everything it wrote to the terminal; read for at most
    `deadline_s` (a run that hangs fails its test instead of hanging the suite)."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command,
        cwd=REPO_ROOT,
        env={**environ, "COLUMNS": str(columns), "LINES": "50"},
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    output = b""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([leader], [], [], 1)
        if not ready:
            continue
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    return process.wait(timeout=30), output.decode("utf-8", "replace")
