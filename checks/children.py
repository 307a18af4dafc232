"""Start child processes that die with opsctl: own process group, parent-death signal, deadlines."""

# Linux only for the death signal: elsewhere (no prctl) `run`, `popen` and `die_with_parent`
# still work, in a process group of their own, but a child outlives a killed opsctl.
#
# Mechanism: prctl(PR_SET_PDEATHSIG, SIGKILL) in the forked child before exec (man 2 prctl).
# - The setting survives execve, except into a set-user-ID or set-group-ID binary (none of
#   the tools opsctl runs is one); it is cleared in the children of a fork, so a grandchild
#   (a pytest worker, the `sleep` of a shell) does not inherit it: a timeout or an interrupt
#   kills the whole process group instead, and gunicorn arms its own workers (post_fork
#   in gunicorn.conf.py).
# - The signal fires when the *thread* that forked the child exits, not the process. Start
#   children from a thread that then waits for them: the main thread, or an
#   `asyncio.to_thread` worker blocked in `run` (its thread lives until `run` returns).
# - If opsctl dies between fork and prctl, the child would miss the signal: it compares
#   os.getppid() with the pid captured before the fork and exits if they differ.
#
# Why preexec_fn despite the subprocess docs' warning about threads (a forked child of a
# threaded parent may deadlock on a lock another thread held): the function takes no lock,
# imports nothing and only calls a libc function bound at import, then os.getppid(). The
# alternative, util-linux `setpriv --pdeathsig KILL cmd...`, needs util-linux 2.33+ on the
# machine (and in any image), adds an exec, and cannot close the race: setpriv does not
# know which parent to expect.

from __future__ import annotations

import codecs
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _bind_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl  # type: ignore[no-any-return]


_prctl = _bind_prctl()


def _death_signal_in_child(parent: int) -> Callable[[], None]:
    """The preexec function: arm SIGKILL on the parent's death, or die if it is already gone."""
    prctl, kill, getppid, exit_now = _prctl, int(signal.SIGKILL), os.getppid, os._exit

    def arm() -> None:
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, kill, 0, 0, 0)
        if getppid() != parent:
            exit_now(128 + kill)  # the parent died before prctl took effect

    return arm


def kill_group(process: subprocess.Popen[Any], sig: int = signal.SIGKILL) -> None:
    """Send `sig` to the child's process group (what is already gone is no error)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def popen(args: Sequence[str] | str, **kwargs: Any) -> subprocess.Popen[Any]:
    """subprocess.Popen, the child leading its own process group and dying with this process."""
    return subprocess.Popen(
        args, process_group=0, preexec_fn=_death_signal_in_child(os.getpid()), **kwargs
    )


def run(
    args: Sequence[str] | str,
    *,
    timeout: float,
    input: str | bytes | None = None,
    capture_output: bool = False,
    check: bool = False,
    **kwargs: Any,
) -> subprocess.CompletedProcess[Any]:
    """subprocess.run with a required deadline; on timeout or interrupt the whole group dies."""
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    with popen(args, **kwargs) as process:
        try:
            stdout, stderr = process.communicate(input, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(process)
            # Keep what was written before the kill, as subprocess.run does; give it up if a
            # process outside the group still holds the pipes.
            with contextlib.suppress(subprocess.TimeoutExpired):
                exc.stdout, exc.stderr = process.communicate(timeout=5)
            raise
        finally:
            # On any way out (an interrupt included) the whole group dies: stragglers left
            # in it never outlive the call.
            kill_group(process)
        code = process.poll()
    assert code is not None
    if check and code:
        raise subprocess.CalledProcessError(code, args, stdout, stderr)
    return subprocess.CompletedProcess(args, code, stdout, stderr)


def run_shown(
    args: Sequence[str], *, timeout: float, show: Callable[[str], object], keep: int, **kwargs: Any
) -> tuple[int, str]:
    """`run` with stdout and stderr merged, each piece passed to `show` as it arrives: the exit
    code and the output's last `keep` characters. On timeout the group dies and the
    TimeoutExpired carries that tail as its `output`."""
    tail = ""

    def pump(stream: Any) -> None:
        # read1 hands over what the child has written so far (pytest's dots come without a
        # newline); the decoder keeps a UTF-8 character split across two reads whole.
        nonlocal tail
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        with contextlib.suppress(ValueError, OSError):  # the pipe closed under it: interrupted
            while chunk := stream.read1(65536):
                text = decoder.decode(chunk)
                show(text)
                tail = (tail + text)[-keep:]

    with popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs) as process:
        reader = threading.Thread(target=pump, args=(process.stdout,), daemon=True)
        reader.start()
        try:
            code = process.wait(timeout)
        except subprocess.TimeoutExpired as exc:
            kill_group(process)
            reader.join(5)
            exc.output = tail
            raise
        finally:
            kill_group(process)  # as in `run`
        # The pipe ends when the group is gone; a process outside it that still holds the
        # pipe is given up on, as `run` does.
        reader.join(5)
    return code, tail


def die_with_parent(sig: int = signal.SIGKILL, parent: int | None = None) -> bool:
    """Have this process get `sig` when its parent dies; False where prctl is missing.

    `parent` is the pid expected as parent (default: the current one, read before prctl);
    if it is already gone, this process exits at once.
    """
    expected = os.getppid() if parent is None else parent
    if _prctl is None:
        return False
    if _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        return False
    if os.getppid() != expected:
        os._exit(128 + int(sig))
    return True


# --- the watchdog: what the death signal cannot reach ----------------------------------------
#
# The death signal is cleared across fork: a grandchild (a pytest-xdist worker, the bot a test
# starts, a nested `opsctl verify`) outlives a SIGKILLed opsctl unless it arms its own. So each
# opsctl process that starts children also starts one watchdog: it blocks reading a pipe whose
# write end only opsctl holds, and at end of file (opsctl exited, SIGKILL included) SIGKILLs
# every process whose environment carries this opsctl's id in LINEAGE, then exits.
# - Processes are found by /proc/<pid>/environ, the environment they were *started* with: a
#   descendant that starts its children with a cleared environment (`env -i`) escapes.
# - LINEAGE lists the ids of the watching opsctl processes above, outermost first: a nested
#   opsctl (a test that runs `opsctl verify`) appends its id, so the outer watchdog still catches
#   the nested one's processes, and the nested watchdog kills only its own. The name has no
#   OPSCTL_ prefix: the tests gate digests OPSCTL_* variables, and a fresh id per run would
#   defeat its cache (checks/testsuite.py ENV_INPUT_PREFIXES).
# - The watchdog runs outside opsctl's reach: its own session, no death signal, no LINEAGE
#   (it must never match itself), `-I -S` (no site, no user paths: it starts in ~10 ms).
# - Linux only (/proc, and /proc/<pid>/environ); elsewhere watch_descendants does nothing.

LINEAGE = "WATCHED_BY_OPSCTL"
WATCHDOG_DEADLINE_S = 5.0

_WATCHDOG = """# opsctl watchdog (checks/children.py)
import os, signal, sys, time
watched, name, deadline = sys.argv[1].encode(), sys.argv[2].encode() + b"=", float(sys.argv[3])
os.chdir("/")
os.closerange(3, 1 << 16)  # hold nothing of the caller's beyond the pipe
while os.read(0, 512):  # end of file: opsctl exited, however
    pass
me, end = os.getpid(), time.monotonic() + deadline
while time.monotonic() < end:
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read().split(b"\\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        for variable in variables:
            if variable.startswith(name):
                if watched in variable[len(name):].split(b":"):
                    try:
                        os.kill(int(entry), signal.SIGKILL)
                        killed += 1
                    except OSError:
                        pass
                break
    if not killed:  # a process killed mid-fork left a child: the next pass finds it
        break
    time.sleep(0.05)
"""

_watching: dict[str, Any] = {"pid": None, "pipe": None}


def _forget_pipe_in_forked_child() -> None:
    # A forked (not exec'd) child would keep the pipe open and the end of file would never
    # come; exec'd children never get it (Python's pipes are close-on-exec).
    pipe, _watching["pipe"] = _watching["pipe"], None
    if pipe is not None:
        with contextlib.suppress(OSError):
            os.close(pipe)


def watch_descendants() -> None:
    """Have every process started from now on, at any depth, die when this process exits.

    Idempotent per process; a no-op where there is no /proc (not Linux)."""
    if _watching["pid"] == os.getpid() or not sys.platform.startswith("linux"):
        return
    watched = os.urandom(8).hex()
    read_end, write_end = os.pipe()
    environ = {k: v for k, v in os.environ.items() if k != LINEAGE}
    try:
        os.posix_spawn(
            sys.executable,
            [
                sys.executable,
                "-I",
                "-S",
                "-c",
                _WATCHDOG,
                watched,
                LINEAGE,
                str(WATCHDOG_DEADLINE_S),
            ],
            environ,
            # stdout and stderr to /dev/null: whoever reads opsctl's output to its end must
            # not wait for the watchdog too.
            file_actions=[
                (os.POSIX_SPAWN_DUP2, read_end, 0),
                (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    if _watching["pid"] is None:
        os.register_at_fork(after_in_child=_forget_pipe_in_forked_child)
    _watching.update(pid=os.getpid(), pipe=write_end)  # open until this process exits
    inherited = os.environ.get(LINEAGE)
    os.environ[LINEAGE] = f"{inherited}:{watched}" if inherited else watched
