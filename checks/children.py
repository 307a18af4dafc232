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

import contextlib
import ctypes
import os
import signal
import subprocess
import sys
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
        except BaseException:
            kill_group(process)
            raise
        finally:
            kill_group(process)  # stragglers left in the group never outlive the call
        code = process.poll()
    assert code is not None
    if check and code:
        raise subprocess.CalledProcessError(code, args, stdout, stderr)
    return subprocess.CompletedProcess(args, code, stdout, stderr)


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
