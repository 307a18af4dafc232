"""Whatever opsctl starts dies with it: on a timeout, an interrupt, and a SIGKILL of opsctl."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import pytest

from checks import children
from tests.conftest import REPO_ROOT

MARK = "OPSCTL_TEST_MARK"
needs_prctl = pytest.mark.skipif(children._prctl is None, reason="no prctl: Linux only")


# --- finding processes by a marker in their environment ------------------------------------


def _alive(pid: int) -> bool:
    """The process exists and is not a zombie (a zombie runs nothing; its reaper is not us)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return "?"


def marked(mark: str) -> list[tuple[int, str]]:
    """(pid, cmdline) of every live process whose environment carries MARK=mark."""
    needle = f"{MARK}={mark}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if needle in environ.split(b"\0") and _alive(int(entry.name)):
            found.append((int(entry.name), _cmdline(int(entry.name))))
    return found


def wait_until_none_marked(mark: str, deadline: float) -> list[tuple[int, str]]:
    """Poll until no process carries the mark or `deadline` seconds pass; the survivors."""
    end = time.monotonic() + deadline
    while (left := marked(mark)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def kill_marked(mark: str) -> None:
    """The cleanup that never fails a test: SIGKILL whatever still carries the mark."""
    for pid, _ in marked(mark):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture
def mark() -> Iterator[str]:
    """A unique marker; every process still carrying it is killed after the test."""
    value = uuid.uuid4().hex
    try:
        yield value
    finally:
        kill_marked(value)


def marked_env(mark: str) -> dict[str, str]:
    return {**os.environ, MARK: mark}


# --- run --------------------------------------------------------------------------------------

SHELL_WITH_GRANDCHILD = ["/bin/sh", "-c", "sleep 60 & echo started; wait"]


def test_run_returns_like_subprocess_run() -> None:
    done = children.run(
        [sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
        input="hola",
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "HOLA\n", "")
    with pytest.raises(subprocess.CalledProcessError) as failed:
        children.run(
            ["/bin/sh", "-c", "echo no >&2; exit 3"], capture_output=True, check=True, timeout=30
        )
    assert (failed.value.returncode, failed.value.stderr) == (3, b"no\n")


def test_run_kills_the_whole_group_on_timeout(mark: str) -> None:
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        children.run(
            SHELL_WITH_GRANDCHILD, env=marked_env(mark), capture_output=True, text=True, timeout=1
        )
    assert time.monotonic() - started < 10
    assert expired.value.stdout == "started\n"  # kept, as subprocess.run keeps it
    assert wait_until_none_marked(mark, 5) == []


def test_run_kills_the_whole_group_when_interrupted(mark: str) -> None:
    class Interrupted(BaseException):
        pass

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 1.0)
        with pytest.raises(Interrupted):
            children.run(SHELL_WITH_GRANDCHILD, env=marked_env(mark), timeout=30)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert wait_until_none_marked(mark, 5) == []


def test_run_leaves_nothing_of_its_group_behind(mark: str) -> None:
    # The shell exits at once; the `sleep` it put in the background holds no pipe of ours.
    done = children.run(
        ["/bin/sh", "-c", "sleep 60 >/dev/null 2>&1 &"], env=marked_env(mark), timeout=30
    )
    assert done.returncode == 0
    assert wait_until_none_marked(mark, 5) == []


# --- a SIGKILLed parent ---------------------------------------------------------------------

POPEN_PARENT = """
import subprocess, sys, time
from checks import children
child = children.popen(["sleep", "60"])
print(child.pid, flush=True)
print("armed", flush=True)  # popen returns after the exec, the signal armed before it
time.sleep(60)
"""

DIE_WITH_PARENT_PARENT = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c",
    "import time; from checks.children import die_with_parent; "
    "assert die_with_parent(); print('armed', flush=True); time.sleep(60)"])
print(child.pid, flush=True)
time.sleep(60)
"""


def read_line(process: subprocess.Popen[bytes], deadline: float = 30) -> str:
    """A line of the process's stdout, or a failure after `deadline` seconds (never a hang).

    Unbuffered, a byte at a time: a buffered reader could take two lines in one read and
    leave select() waiting for the second."""
    assert process.stdout is not None
    fd, line, end = process.stdout.fileno(), b"", time.monotonic() + deadline
    while not line.endswith(b"\n"):
        ready, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
        assert ready, f"no whole line within {deadline:g}s: {line!r}"
        byte = os.read(fd, 1)
        assert byte, f"end of output after {line!r}"
        line += byte
    return line.decode()


def _child_dies_with_its_parent(script: str, mark: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=marked_env(mark),
        stdout=subprocess.PIPE,
    )
    try:
        child = int(read_line(parent))
        assert read_line(parent) == "armed\n"
        assert _alive(child)
        parent.kill()
        parent.wait(10)
        assert wait_until_none_marked(mark, 5) == []
        assert not _alive(child)
    finally:
        parent.kill()
        parent.wait(10)


@needs_prctl
def test_a_child_of_popen_dies_when_its_parent_is_killed(mark: str) -> None:
    _child_dies_with_its_parent(POPEN_PARENT, mark)


@needs_prctl
def test_die_with_parent_arms_the_calling_process(mark: str) -> None:
    _child_dies_with_its_parent(DIE_WITH_PARENT_PARENT, mark)
