"""Run the bot locally with the Dockerfile's own gunicorn command line, on loopback."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from checks import children
from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode

REPO_ROOT = Path(__file__).resolve().parent.parent
_LISTENING = re.compile(r"Listening at: (http://\S+)")
# The output lines kept (the newest): what a failed start's message and the tests read. `opsctl
# serve` runs for days and prints each line as it comes (on_line); it must not keep them all.
KEPT_LINES = 10_000


class DevServerError(OpsctlError):
    """The bot could not be started; the message says why and what to do."""

    exit_code = ExitCode.UNREACHABLE


def dockerfile_command(dockerfile: Path = REPO_ROOT / "Dockerfile") -> str:
    """The shell-form CMD of the Dockerfile, joined across continuation lines."""
    text = dockerfile.read_text(encoding="utf-8").replace("\\\n", " ")
    commands = [line[4:].strip() for line in text.splitlines() if line.startswith("CMD ")]
    if len(commands) != 1 or commands[0].startswith("["):
        raise DevServerError(f"{dockerfile}: expected exactly one shell-form CMD line")
    return commands[0]


def local_command(host: str = "127.0.0.1", dockerfile: Path = REPO_ROOT / "Dockerfile") -> str:
    """The Dockerfile's command, bound to `host` instead of every interface."""
    command = dockerfile_command(dockerfile)
    if "0.0.0.0:" not in command:
        raise DevServerError(f"{dockerfile}: CMD does not bind 0.0.0.0:${{PORT}}")
    return command.replace("0.0.0.0:", f"{host}:")


class DevServer:
    """gunicorn in a child process; `start()` returns the URL once it listens."""

    def __init__(
        self,
        env: Mapping[str, str],
        port: int = 0,
        host: str = "127.0.0.1",
        cwd: Path = REPO_ROOT,
        extra_args: str = "",
        on_line: Callable[[str], None] | None = None,
        app: str = "",
    ) -> None:
        self._env = {**env, "PORT": str(port)}
        command = local_command(host)
        if app:  # another WSGI app under the same command (the benchmark's floor)
            command = command.rsplit(" ", 1)[0] + " " + shlex.quote(app)
        self._command = command + (" " + extra_args if extra_args else "")
        self._cwd = cwd
        self.url = ""
        self.lines: list[str] = []
        """The newest output lines: all of them up to twice `kept_lines`, then trimmed to it."""
        self.kept_lines = KEPT_LINES
        self._process: subprocess.Popen[str] | None = None
        self._listening = threading.Event()
        self._on_line = on_line

    @property
    def process(self) -> subprocess.Popen[str]:
        """The gunicorn process (after start)."""
        assert self._process is not None, "start() first"
        return self._process

    def start(self, timeout: float = 30.0) -> str:
        """Start gunicorn and wait until it listens; return its base URL."""
        # Put the interpreter's bin first so the venv's gunicorn runs, as in the image.
        bin_dir = str(Path(sys.executable).parent)
        env = {**self._env, "PATH": bin_dir + os.pathsep + self._env.get("PATH", os.defpath)}
        # The command comes from our own Dockerfile, not from user input. `exec` in it makes
        # gunicorn the child itself, so the death signal reaches the master (issue 11).
        self._process = children.popen(
            ["/bin/sh", "-c", self._command],
            cwd=self._cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read_output, daemon=True).start()
        if not self._listening.wait(timeout) or not self.url:
            code = self.stop()
            last = self.lines[-1] if self.lines else "(no output)"
            if self._process is not None and self._listening.is_set():
                # gunicorn.conf.py exits 2 on a bad setting: that is a configuration error.
                raise DevServerError(
                    f"the bot did not start (gunicorn exit {code}): {last}",
                    ExitCode.USAGE if code == 2 else None,
                )
            raise DevServerError(f"the bot did not listen within {timeout:g}s: {last}")
        return self.url

    def wait_ready(self, budget: float = 30.0) -> str:
        """Poll /health until the warm-up is over; return the status ('ok' or 'degraded')."""
        import httpx

        from opsctl.tls import tls_context

        deadline = time.monotonic() + budget
        status = "no answer"
        # One client for the whole poll: httpx.get() would build a TLS context per call (27 ms
        # of CPU each), taken from the bot that is starting on the same cores.
        with httpx.Client(verify=tls_context(), timeout=2) as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    status = str(client.get(f"{self.url}/health").json().get("status", "?"))
                except (httpx.HTTPError, ValueError):
                    status = "no answer"
                if status not in ("starting", "no answer"):
                    return status
                time.sleep(0.05)
        if self.process.poll() is not None:
            raise DevServerError("gunicorn exited: " + " | ".join(self.lines[-3:]))
        return status

    def _read_output(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.lines.append(line.rstrip("\n"))
            if len(self.lines) > 2 * self.kept_lines:  # amortised: one cut per kept_lines lines
                del self.lines[: -self.kept_lines]
            if self._on_line is not None:
                self._on_line(line.rstrip("\n"))
            match = _LISTENING.search(line)
            if match and not self.url:
                self.url = match.group(1)
                self._listening.set()
        self._listening.set()  # the process ended: stop waiting

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, as Render sends it; SIGKILL if it lingers. Returns the exit code."""
        if self._process is None:
            return 0
        process = self._process
        if process.poll() is None:
            children.kill_group(process, signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                children.kill_group(process, signal.SIGKILL)
                process.wait(timeout)
        return process.returncode

    def wait(self) -> int:
        """Block until gunicorn exits."""
        return self.process.wait()
