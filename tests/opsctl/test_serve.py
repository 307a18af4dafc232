"""`opsctl serve`: the README's main job until `opsctl verify` exists."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import BASE_ENV, REPO_ROOT
from tests.loopback import TLS

OPSCTL = [sys.executable, "-m", "opsctl.cli"]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {**os.environ, **BASE_ENV, **extra}


def test_serve_prints_the_url_and_stops_gunicorn_on_sigterm(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*OPSCTL, "serve", "--port", "0", "--env-file", str(tmp_path / "none.env")],
        cwd=REPO_ROOT,
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    url = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not url:
        line = process.stdout.readline()
        match = re.search(r"Clara is serving at (http://127\.0\.0\.1:\d+)\s+\(health: ok;", line)
        url = match.group(1) if match else ""
    assert url, "no URL printed"
    assert httpx.get(url + "/health", verify=TLS).json()["status"] == "ok"
    process.send_signal(signal.SIGTERM)
    assert process.wait(15) == 0
    # gunicorn went with it: nothing listens there any more
    try:
        httpx.get(url + "/health", timeout=2, verify=TLS)
        still_up = True
    except httpx.HTTPError:
        still_up = False
    assert not still_up


def test_serve_reads_the_env_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("LLM_TIMEOUT=abc\n")
    done = subprocess.run(
        [*OPSCTL, "serve", "--port", "0", "--env-file", str(env_file)],
        cwd=REPO_ROOT,
        env={k: v for k, v in _env(tmp_path).items() if k != "LLM_TIMEOUT"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "opsctl: the bot did not start (gunicorn exit 2): clara: cannot start: "
        "LLM_TIMEOUT='abc' is not a number: expected seconds, e.g. LLM_TIMEOUT=8"
    )
