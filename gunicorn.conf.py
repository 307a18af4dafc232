"""gunicorn settings for the bot image; the Dockerfile's CMD names this file."""

import ctypes
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, NoReturn

from prometheus_client import multiprocess, values

from bot import serving
from bot.metrics import MULTIPROC_DIR
from bot.settings import SettingsError, load_settings

# One process: the warm-up report lives in that process (and, without REDIS_URL, the
# MessageSid reply cache and the rate limit's counts), so a retried message meets the same
# cache, and the free tier's 512 MB holds one copy of the app. Scaling out: more instances
# with REDIS_URL (README "Several instances"); more workers (`--workers N`) count /metrics
# across all of them through PROMETHEUS_MULTIPROC_DIR (on_starting below).
workers = 1
# gevent: a connection costs a greenlet, not a thread, while its request arrives, so slow or
# idle clients cannot take the bot away (issue 14: with gthread's 16 threads, 16 slowloris
# connections stalled /health for seconds). The worker monkey-patches the standard library
# in the worker process (gunicorn/workers/ggevent.py); bot/ runs unchanged under it
# (tests/bot/test_under_gevent.py). https://docs.gunicorn.org/en/stable/design.html#async-workers
worker_class = "gevent"
# Connections served at once (greenlets); past it new ones wait in the listen backlog.
# 1000 (gunicorn's default) connections held inside a request cost the worker about 33 MB
# (bench/memory.sh --hold 1000; README "Serving").
worker_connections = 1000
# A request still running at 30 s is stuck (Twilio gives up after 15 s). Under gevent this
# bounds the worker's heartbeat (a greenlet hogging the CPU), not a single request:
# https://docs.gunicorn.org/en/stable/settings.html#timeout
timeout = 30
graceful_timeout = 10
# Also the read deadline of a request's line and headers: gevent's worker waits for them (and
# for the first byte of an idle connection) at most `keepalive` seconds, then closes
# (gunicorn/workers/ggevent.py timeout_ctx). 0 would turn keep-alive off and that bound with
# it. The body's deadline is BODY_DEADLINE_SEC in bot/serving.py (the hooks below).
keepalive = 5
accesslog = None  # the app logs one line per request itself, with phone numbers masked
# gunicorn 24+ opens a control socket in $HOME; nothing here uses it, and two local
# instances (tests, the benchmark) would fight over the one path.
control_socket_disable = True
# gunicorn's request hooks (bot/serving.py): every body is read within a deadline, and a
# response after which the rest of the request stays unread (a 413) says `Connection: close`
# and ends the connection cleanly, so a proxy never reuses it for the next user's request.
pre_request = serving.pre_request
post_request = serving.post_request


def _refuse_bad_settings() -> None:
    """Refuse to start on a bad setting with one line naming it, not a worker traceback.

    Run as gunicorn reads this file, before it parses the CMD's `--bind 0.0.0.0:${PORT}`:
    from an on_starting hook, PORT=abc was gunicorn's own "'abc' is not a valid port number",
    which does not name PORT."""
    try:
        load_settings(os.environ)
    except SettingsError as exc:
        print(f"clara: cannot start: {exc}", file=sys.stderr, flush=True)
        sys.exit(2)


_refuse_bad_settings()


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


# The folder on_starting makes when several workers run and PROMETHEUS_MULTIPROC_DIR is unset;
# on_exit removes it (by its name: a reload (HUP) runs this file again, with a fresh module).
_MADE_DIR_PREFIX = "clara-metrics-"


def _refuse(message: str) -> NoReturn:
    """Stop the start with one line, as _refuse_bad_settings does (exit 2: a setting)."""
    print(f"clara: cannot start: {message}", file=sys.stderr, flush=True)
    sys.exit(2)


def on_starting(server: Any) -> None:
    """/metrics counts every worker's requests: prometheus-client's multiprocess mode.

    PROMETHEUS_MULTIPROC_DIR turns it on. Unset with more than one worker (the count gunicorn
    settled on: --workers or GUNICORN_CMD_ARGS; `workers = 1` above outweighs WEB_CONCURRENCY),
    a fresh temporary folder is named here, in the master, before any worker forks; one worker
    and no variable: the in-process registry, as before. The folder's files of an earlier run
    are removed first, as the library requires
    (https://prometheus.github.io/client_python/multiprocess/): only its own *.db files, in
    case the variable names a folder holding anything else.
    """
    directory = os.environ.get(MULTIPROC_DIR)
    if directory is None:
        if server.cfg.workers <= 1:
            return
        directory = tempfile.mkdtemp(prefix=_MADE_DIR_PREFIX)
        os.environ[MULTIPROC_DIR] = directory
        # The library picks its value class once, as it is imported, and this master imported
        # it before this hook (bot.serving imports bot.webhook, which imports bot.metrics).
        # Pick again now the variable is set: no metric exists yet in the master, and the
        # workers build theirs after the fork.
        values.ValueClass = values.get_value_class()
    if not directory:
        _refuse(f"{MULTIPROC_DIR} is set but empty: name a folder for the metrics, or unset it")
    try:
        os.makedirs(directory, exist_ok=True)
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    except OSError as exc:
        _refuse(f"{MULTIPROC_DIR}={directory}: {exc.strerror}: name a folder this user can write")
    if not os.access(directory, os.W_OK | os.X_OK):
        _refuse(f"{MULTIPROC_DIR}={directory}: not writable: name a folder this user can write")


def child_exit(server: Any, worker: Any) -> None:
    """A worker gone (stopped, killed, restarted): its live gauges go with it, its counts stay.

    Without this a killed worker would stay in clara_workers and in the warm-up gauges."""
    if os.environ.get(MULTIPROC_DIR):
        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """Remove the metrics folder on_starting made (a folder named by the operator stays)."""
    directory = os.environ.get(MULTIPROC_DIR, "")
    made = Path(directory).parent == Path(tempfile.gettempdir())
    if directory and made and Path(directory).name.startswith(_MADE_DIR_PREFIX):
        shutil.rmtree(directory, ignore_errors=True)
