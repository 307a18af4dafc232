"""gunicorn settings for the bot image; the Dockerfile's CMD names this file."""

import os
import sys

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
