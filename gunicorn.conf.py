"""gunicorn settings for the bot image; the Dockerfile's CMD names this file."""

import ctypes
import os
import signal
import sys
from typing import Any

from bot.settings import SettingsError, load_settings

# One process with threads: the MessageSid reply cache, the metrics and the warm-up
# report live in that process, so a retried message meets the same cache, /metrics
# counts every request, and the free tier's 512 MB holds one copy of the app.
worker_class = "gthread"
workers = 1
threads = 16
# Twilio gives up after 15 s; a request still running at 30 s is stuck.
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = None  # the app logs one line per request itself, with phone numbers masked
# gunicorn 24+ opens a control socket in $HOME; nothing here uses it, and two local
# instances (tests, the benchmark) would fight over the one path.
control_socket_disable = True


def on_starting(server: object) -> None:
    """Refuse to start on a bad setting with one line naming it, not a worker traceback."""
    try:
        load_settings(os.environ)
    except SettingsError as exc:
        print(f"clara: cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


def _bind_prctl() -> Any:
    """libc's prctl, bound once here in the master; None where there is none (not Linux).

    The same binding as checks/children.py's, written again on purpose: the image holds only
    bot/ and this file, not checks/."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    return prctl


_prctl = _bind_prctl()
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>; man 2 prctl


def post_fork(server: object, worker: Any) -> None:
    """The worker dies with the master, even a SIGKILLed one (issue 11).

    On its own a worker notices a new parent only at its next one-second poll, and then
    drains for up to graceful_timeout: a killed `opsctl verify` left it answering. In the
    image the master is PID 1 and the container ends with it, so nothing changes there.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != worker.ppid:  # the master died before prctl took effect
        os._exit(1)
