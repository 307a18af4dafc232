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
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType

import pytest

from checks import children
from checks.testsuite import INSIDE_TEST_RUN
from tests.conftest import REPO_ROOT, config_copy, process_alive

MARK = "OPSCTL_TEST_MARK"
needs_prctl = pytest.mark.skipif(children._prctl is None, reason="no prctl: Linux only")


# --- finding processes by a marker in their environment ------------------------------------


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
        if needle in environ.split(b"\0") and process_alive(int(entry.name)):
            found.append((int(entry.name), _cmdline(int(entry.name))))
    return found


def wait_until_none_marked(mark: str, deadline: float) -> list[tuple[int, str]]:
    """Poll until no process carries the mark or `deadline` seconds pass; the survivors."""
    end = time.monotonic() + deadline
    while (left := marked(mark)) and time.monotonic() < end:
        time.sleep(0.1)
    return left


def gone_within(pids: list[int], deadline: float = 5) -> bool:
    """Poll until none of the pids runs. A process being killed can already show an empty
    /proc/<pid>/environ (so it no longer looks marked) while it has not finished exiting."""
    end = time.monotonic() + deadline
    while any(process_alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    return not any(process_alive(pid) for pid in pids)


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


def test_run_shown_passes_the_output_on_as_it_comes_and_keeps_its_tail() -> None:
    # Each piece must reach `show` before the child writes the next: the child waits for a
    # line on its stdin that the test sends only once `show` has seen the piece before it.
    script = (
        "import sys\n"
        "for piece in ('un ', 'dos ', 'tres ñ'):\n"  # no newlines: pytest's dots have none
        "    sys.stdout.write(piece); sys.stdout.flush()\n"
        "    sys.stdin.readline()\n"
        "sys.stderr.write('fin'); sys.exit(4)\n"
    )
    seen: list[str] = []
    reply_r, reply_w = os.pipe()
    replies = os.fdopen(reply_w, "w", buffering=1)

    def show(text: str) -> None:
        seen.append(text)
        replies.write("next\n")

    try:
        code, tail = children.run_shown(
            [sys.executable, "-c", script], stdin=reply_r, timeout=30, show=show, keep=8
        )
    finally:
        os.close(reply_r)
        replies.close()
    assert code == 4
    assert "".join(seen) == "un dos tres ñfin"  # stderr too, in order; UTF-8 kept whole
    assert seen[:2] == ["un ", "dos "], "each piece was shown when it was written"
    assert tail == "res ñfin"  # the last `keep` characters


def test_run_shown_kills_the_whole_group_on_timeout_and_keeps_the_tail(mark: str) -> None:
    shown: list[str] = []
    started = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        children.run_shown(
            SHELL_WITH_GRANDCHILD, env=marked_env(mark), timeout=1, show=shown.append, keep=100
        )
    assert time.monotonic() - started < 10
    assert expired.value.output == "started\n" and shown == ["started\n"]
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
        assert process_alive(child)
        parent.kill()
        parent.wait(10)
        assert wait_until_none_marked(mark, 5) == []
        assert gone_within([child])
    finally:
        parent.kill()
        parent.wait(10)


@needs_prctl
def test_a_child_of_popen_dies_when_its_parent_is_killed(mark: str) -> None:
    _child_dies_with_its_parent(POPEN_PARENT, mark)


@needs_prctl
def test_die_with_parent_arms_the_calling_process(mark: str) -> None:
    _child_dies_with_its_parent(DIE_WITH_PARENT_PARENT, mark)


# --- the watchdog: descendants the death signal does not reach --------------------------------

needs_proc = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="no /proc: Linux only")

# A chain in another session and without a death signal: a shell and its two sleeps.
WATCHED_PARENT = """
import subprocess
from checks import children
children.watch_descendants()
children.watch_descendants()  # idempotent: one watchdog
chain = subprocess.Popen(["/bin/sh", "-c", "sleep 60 & echo $!; sleep 60"],
                         start_new_session=True, stdout=subprocess.PIPE, text=True)
print(chain.pid, chain.stdout.readline().strip(), flush=True)
import time; time.sleep(60)
"""


def watchdogs(mark: str) -> list[int]:
    return [pid for pid, cmd in marked(mark) if "opsctl watchdog" in cmd]


@needs_proc
def test_watchdog_kills_the_whole_chain_when_its_parent_is_killed(mark: str) -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", WATCHED_PARENT],
        cwd=REPO_ROOT,
        env=marked_env(mark),
        stdout=subprocess.PIPE,
    )
    try:
        chain = [int(pid) for pid in read_line(parent).split()]
        assert len(chain) == 2 and all(process_alive(pid) for pid in chain)
        assert len(watchdogs(mark)) == 1
        parent.kill()
        parent.wait(10)
        assert wait_until_none_marked(mark, 10) == []  # the watchdog too is gone
        assert gone_within(chain)
    finally:
        parent.kill()
        parent.wait(10)


NESTED = """
import subprocess
from checks import children
children.watch_descendants()
own = subprocess.Popen(["sleep", "60"], start_new_session=True, stdout=subprocess.DEVNULL)
print(own.pid, flush=True)
"""

OUTER = f"""
import subprocess, sys, time
from checks import children
children.watch_descendants()
sibling = subprocess.Popen(["sleep", "60"], start_new_session=True)
nested = subprocess.run([sys.executable, "-c", {NESTED!r}], stdout=subprocess.PIPE, text=True,
                        timeout=30, check=True)
print(sibling.pid, nested.stdout.strip(), flush=True)
time.sleep(60)
"""


@needs_proc
def test_a_nested_watchdog_kills_only_its_own(mark: str) -> None:
    outer = subprocess.Popen(
        [sys.executable, "-c", OUTER], cwd=REPO_ROOT, env=marked_env(mark), stdout=subprocess.PIPE
    )
    try:
        sibling, nested_sleep = (int(pid) for pid in read_line(outer).split())
        # The nested process exited normally: its watchdog killed its sleep, then ended.
        end = time.monotonic() + 10
        while (process_alive(nested_sleep) or len(watchdogs(mark)) > 1) and time.monotonic() < end:
            time.sleep(0.1)
        assert not process_alive(nested_sleep)
        assert len(watchdogs(mark)) == 1, "the nested watchdog did not end"
        assert process_alive(sibling), "the nested watchdog killed a process of the outer one"
        # The outer watchdog still does its job.
        outer.kill()
        outer.wait(10)
        assert wait_until_none_marked(mark, 10) == []
    finally:
        outer.kill()
        outer.wait(10)


# --- end to end: SIGKILL `opsctl verify` mid-run, nothing it started survives ---------------

OPSCTL = [sys.executable, "-m", "opsctl.cli"]


def start_opsctl(
    args: list[str], mark: str, tmp_path: Path, drop: tuple[str, ...] = ()
) -> subprocess.Popen[bytes]:
    """opsctl as test_verify_local runs it, the marker in its environment, output in files."""
    env = {k: v for k, v in marked_env(mark).items() if k not in drop}
    env.pop("NO_COLOR", None)
    with (tmp_path / "opsctl.out").open("wb") as out:
        return subprocess.Popen(
            [*OPSCTL, *args], cwd=REPO_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def wait_for(condition: Callable[[], bool], deadline: float, what: str, log: Path) -> None:
    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, (
            f"{what} within {deadline:g}s; opsctl said:\n"
            + (log.read_text(errors="replace")[-2000:])
        )
        time.sleep(0.1)


def assert_sigkill_leaves_nothing(opsctl: subprocess.Popen[bytes], mark: str) -> None:
    opsctl.kill()
    opsctl.wait(10)
    survivors = wait_until_none_marked(mark, 10)
    assert survivors == [], f"still running 10 s after opsctl was SIGKILLed: {survivors}"


@needs_prctl
def test_sigkill_of_verify_local_leaves_no_bot(mark: str, tmp_path: Path) -> None:
    config = config_copy(tmp_path)
    opsctl = start_opsctl(["verify", "--env", "local", "--config", str(config)], mark, tmp_path)
    try:
        # The bot is up: gunicorn's master and its worker both carry the marker.
        wait_for(
            lambda: sum("bin/gunicorn" in cmd for _, cmd in marked(mark)) >= 2,
            60,
            "no gunicorn master and worker",
            tmp_path / "opsctl.out",
        )
        assert opsctl.poll() is None, "opsctl finished before it could be killed"
        assert_sigkill_leaves_nothing(opsctl, mark)
    finally:
        opsctl.kill()
        opsctl.wait(10)


# The test starts a process of its own in another session, without a death signal: only the
# watchdog of opsctl can reach it.
SLOW_TEST = """
import pathlib, subprocess, time


def test_slow() -> None:
    sleep = subprocess.Popen(["sleep", "60"], start_new_session=True)
    pathlib.Path({started!r}).write_text(str(sleep.pid))
    time.sleep(60)
"""


@needs_prctl
@pytest.mark.parametrize("addopts", ["", "-p xdist -n 1"], ids=["pytest", "xdist"])
def test_sigkill_of_verify_while_its_tests_run_leaves_no_pytest(
    addopts: str, mark: str, tmp_path: Path
) -> None:
    repo, started = tmp_path / "repo", tmp_path / "pytest-started"
    (repo / "app").mkdir(parents=True)
    (repo / "app" / "__init__.py").write_text('"""App."""\n')
    (repo / "tests").mkdir()
    (repo / "tests" / "test_slow.py").write_text(SLOW_TEST.format(started=str(started)))
    (repo / "pyproject.toml").write_text(
        f'[tool.pytest.ini_options]\ntestpaths = ["tests"]\naddopts = "{addopts}"\n'
    )
    config = config_copy(tmp_path)
    config.write_text(
        config.read_text().replace(f'\nroot = "{REPO_ROOT}"\n', f'\nroot = "{repo}"\n')
    )
    # Inside our own test run the tests gate is a SKIP: let this one start pytest.
    opsctl = start_opsctl(
        ["verify", "--env", "local", "--only", "P2.5", "--config", str(config)],
        mark,
        tmp_path,
        drop=(INSIDE_TEST_RUN,),
    )
    try:
        wait_for(
            lambda: started.exists() and started.read_text().isdigit(),
            60,
            "the tiny repository's test never started",
            tmp_path / "opsctl.out",
        )
        grandchild = int(started.read_text())
        assert any("pytest" in cmd for _, cmd in marked(mark))
        assert grandchild in dict(marked(mark))
        assert opsctl.poll() is None, "opsctl finished before it could be killed"
        assert_sigkill_leaves_nothing(opsctl, mark)
        assert gone_within([grandchild])
    finally:
        opsctl.kill()
        opsctl.wait(10)
