"""gunicorn settings for the bot image; the Dockerfile's CMD names this file."""

import ctypes
import os
import signal
import sys
from typing import Any

from bot import serving
from bot.settings import SettingsError, load_settings

# One process: the metrics and the warm-up report live in that process (and, without
# REDIS_URL, the MessageSid reply cache and the rate limit's counts), so /metrics counts every
# request, a retried message meets the same cache, and the free tier's 512 MB holds one copy
# of the app. Scaling out: more instances with REDIS_URL (README "Several instances").
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
