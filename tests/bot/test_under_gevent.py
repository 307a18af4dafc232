"""bot/'s threads, locks and pools still work once gevent has monkey-patched the stdlib."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

# What gunicorn's gevent worker does (gunicorn/workers/ggevent.py patch): the master has
# imported bot already (gunicorn.conf.py), then the worker calls monkey.patch_all(). These
# suites hold the Gemini client's pool and deadline (bot/llm.py), the reply cache's lock and
# events with concurrent repeats (bot/replies.py) and the warm-up thread (bot/warmup.py);
# prometheus-client and the rest are exercised under the real worker by tests/bot/test_http.py.
SUITES = ["tests/bot/test_llm.py", "tests/bot/test_replies.py", "tests/bot/test_warmup.py"]
PATCHED_RUN = f"""
import sys
import bot
from gevent import monkey
monkey.patch_all()
assert monkey.is_module_patched("threading") and monkey.is_module_patched("socket")
import pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "-n", "0", *{SUITES!r}]))
"""


@pytest.mark.timeout(90)
def test_bot_suites_pass_under_gevent_monkey_patching() -> None:
    done = subprocess.run(
        [sys.executable, "-c", PATCHED_RUN],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout, done.stdout[-500:]
