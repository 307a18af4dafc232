"""The keep-alive daemon against a loopback target, and the P2.3 check from prepared logs."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks.interface import CheckContext, CheckResult, Expectations, KeepAliveSettings, Status
from checks.keepalive import KeepAliveCheck
from opsctl.config import ConfigError
from opsctl.keepalive import (
    KeepAlive,
    Ping,
    PingLog,
    Target,
    parse_duration,
    parse_iso,
    validate_interval,
)
from opsctl.runner import Runner
from tests.conftest import REPO_ROOT
from tests.fakes.bot_target import TargetSettings, serve_target
from tests.loopback import TLS


@pytest.fixture
def target() -> Iterator[tuple[str, TargetSettings]]:
    settings = TargetSettings(hang_s=2.0)
    with serve_target(settings) as url:
        yield url + "/health", settings


def run_for(keepalive: KeepAlive, seconds: float) -> None:
    thread = threading.Thread(target=keepalive.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    keepalive.stop.set()
    thread.join(5)
    assert not thread.is_alive()


def logged(log_dir: Path, env: str = "t") -> list[Ping]:
    now = datetime.now(UTC)
    return PingLog(log_dir).read(env, now - timedelta(hours=1), now + timedelta(minutes=1))


def test_durations_and_the_free_tier_limit() -> None:
    assert [parse_duration(t) for t in ("14m", "90s", "1h", "500ms", "2")] == [
        840,
        90,
        3600,
        0.5,
        2,
    ]
    free = [Target("render", "https://x/health", free_tier=True)]
    assert validate_interval("14m", 840, free) == 840
    with pytest.raises(ConfigError, match="free tier that sleeps after 15 idle minutes"):
        validate_interval("15m", 840, free)
    assert validate_interval("1h", 840, [Target("paid", "https://y/health")]) == 3600
    with pytest.raises(ConfigError, match="not a duration"):
        validate_interval("soon", 840, free)


def test_pings_come_on_time(target: tuple[str, TargetSettings], tmp_path: Path) -> None:
    url, _ = target
    with httpx.Client(verify=TLS) as client:
        keepalive = KeepAlive(
            [Target("t", url)], client, 0.3, PingLog(tmp_path), echo=lambda _: None
        )
        run_for(keepalive, 1.75)
    pings = logged(tmp_path)
    assert len(pings) == 6  # at once, then every 0.3 s
    assert all(p.ok and p.status == 200 for p in pings)
    late = [(parse_iso(p.at) - parse_iso(p.planned_at)).total_seconds() for p in pings]
    assert max(late) < 0.1, late
    planned = [parse_iso(p.planned_at) for p in pings]
    steps = [(b - a).total_seconds() for a, b in pairwise(planned)]
    assert all(abs(step - 0.3) < 0.01 for step in steps), "the grid does not drift"


@pytest.mark.parametrize("fault", ["health_degraded", "hang", "refused"])
def test_down_and_back(fault: str, target: tuple[str, TargetSettings], tmp_path: Path) -> None:
    url, settings = target
    back: Any = None
    if fault == "refused":  # a server that was there, then is not: its port refuses
        settings = TargetSettings()
        with serve_target(settings) as gone:
            url = gone + "/health"
        port = int(gone.rsplit(":", 1)[1])
    else:
        settings.fault = fault
    with httpx.Client(verify=TLS) as client:
        keepalive = KeepAlive(
            [Target("t", url)], client, 3.0, PingLog(tmp_path), echo=lambda _: None, timeout_s=0.5
        )
        keepalive.backoff = lambda failures: 0.4  # type: ignore[method-assign]
        thread = threading.Thread(target=keepalive.run, daemon=True)
        thread.start()
        time.sleep(1.0)
        settings.fault = ""
        if fault == "refused":  # the target comes back on the same port
            back = serve_target(settings, port)
            back.__enter__()
        time.sleep(1.3)
        keepalive.stop.set()
        thread.join(5)
    if back is not None:
        back.__exit__(None, None, None)
    pings = logged(tmp_path)
    failed = [p for p in pings if not p.ok]
    assert failed, "each failure is logged"
    assert pings[-1].ok, "the cadence resumes after the target comes back"
    first_ok_after = next(p for p in pings if p.ok and p.at > failed[-1].at)
    retry = (parse_iso(first_ok_after.at) - parse_iso(failed[-1].at)).total_seconds()
    assert retry < 3.0, "a failed ping is retried sooner than the interval"
    if fault == "health_degraded":
        assert failed[0].status == 503
    else:
        assert failed[0].status is None and failed[0].error


def test_sigterm_stops_within_a_second_with_every_ping_logged(
    target: tuple[str, TargetSettings], tmp_path: Path
) -> None:
    url, _ = target
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "opsctl.cli",
            "warmup",
            "--url",
            url,
            "--interval",
            "0.5s",
            "--log-dir",
            str(tmp_path),
            "--config",
            str(REPO_ROOT / "opsctl.toml"),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Until four pings are logged (not a fixed sleep: a loaded machine starts Python slowly,
    # and a SIGTERM before the handler is installed would only test the interpreter).
    deadline = time.monotonic() + 30
    while sum(len(p.read_text().splitlines()) for p in tmp_path.rglob("*.jsonl")) < 4:
        assert time.monotonic() < deadline and process.poll() is None, "no four pings in 30 s"
        time.sleep(0.05)
    sent = time.monotonic()
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=10)
    assert time.monotonic() - sent < 1.0
    assert process.returncode == 0 and "stopped" in err
    printed = [line for line in out.splitlines() if " 200 " in line]
    lines = [
        json.loads(line)
        for path in tmp_path.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert len(printed) == len(lines) >= 4


def test_once_exit_codes(target: tuple[str, TargetSettings], tmp_path: Path) -> None:
    url, settings = target

    def once() -> int:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "opsctl.cli",
                "warmup",
                "--once",
                "--url",
                url,
                "--log-dir",
                str(tmp_path),
                "--config",
                str(REPO_ROOT / "opsctl.toml"),
            ],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        ).returncode

    assert once() == 0
    settings.fault = "health_500"
    assert once() == 1
    status = json.loads((tmp_path / "status.json").read_text())
    assert next(iter(status.values()))["status"] == 500


@pytest.mark.parametrize("once", [True, False])
def test_a_log_dir_it_cannot_write_is_refused_before_any_ping(
    once: bool, target: tuple[str, TargetSettings], tmp_path: Path
) -> None:
    url, settings = target
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    command = ["warmup", *(["--once"] if once else []), "--url", url]
    command += ["--log-dir", str(blocker / "logs"), "--config", str(REPO_ROOT / "opsctl.toml")]
    done = subprocess.run(
        [sys.executable, "-m", "opsctl.cli", *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2  # a configuration error: systemd's unit does not restart it
    assert done.stderr.splitlines() == [
        f"opsctl: cannot write the ping log in {blocker / 'logs'}: Not a directory; fix: give "
        "--log-dir (or [keepalive] log_dir) a folder this user can write"
    ]
    assert settings.requests == []  # refused before the first ping


def test_a_line_cut_by_a_crash_is_skipped(tmp_path: Path) -> None:
    log = PingLog(tmp_path)
    now = datetime.now(UTC)
    ping = Ping(
        "t", "u", now.isoformat(), now.isoformat().replace("+00:00", "Z"), 200, 5.0, True, False
    )
    log.append(ping)
    with log.path("t", ping.at[:10]).open("a") as handle:
        handle.write('{"env": "t", "url"')  # killed mid-line
    assert len(log.read("t", now - timedelta(minutes=1), now + timedelta(minutes=1))) == 1


# --- the P2.3 check ------------------------------------------------------------------------


def prepared_log(
    folder: Path, minutes_ago: list[float], latency_ms: float = 50.0, status: int = 200
) -> None:
    log = PingLog(folder)
    now = datetime.now(UTC)
    for minutes in minutes_ago:
        at = (now - timedelta(minutes=minutes)).isoformat(timespec="milliseconds")
        at = at.replace("+00:00", "Z")
        log.append(
            Ping(
                "render", "https://x/health", at, at, status, latency_ms, 200 <= status < 300, False
            )
        )


def judge(folder: Path) -> CheckResult:
    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "render",
                "",
                "",
                Expectations(),
                client,
                {},
                keepalive=KeepAliveSettings(folder, window_s=2 * 3600),
            )
            return await Runner({"keepalive": KeepAliveCheck()}).run_check("P2.3", "keepalive", ctx)

    return asyncio.run(go())


def test_check_passes_on_a_steady_log(tmp_path: Path) -> None:
    prepared_log(tmp_path, [m for m in range(119, -1, -14)])
    result = judge(tmp_path)
    assert result.status is Status.PASS
    assert result.reason.startswith("9 pings in the last 2 h, no gap over 15 min")


def test_check_warns_without_a_log(tmp_path: Path) -> None:
    result = judge(tmp_path)
    assert result.status is Status.WARN and "no keep-alive log for render" in result.reason


def test_check_fails_on_a_gap_with_its_times(tmp_path: Path) -> None:
    prepared_log(tmp_path, [90, 76, 40, 26, 12, 1])
    result = judge(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason.startswith("gap of 36.0 min from ")


@pytest.mark.parametrize(
    ("latency", "status", "word"), [(2500.0, 200, "slow"), (40.0, 503, "failed")]
)
def test_check_fails_on_slow_or_failed_pings(
    tmp_path: Path, latency: float, status: int, word: str
) -> None:
    prepared_log(tmp_path, [28, 14, 1])
    prepared_log(tmp_path, [7], latency_ms=latency, status=status)
    result = judge(tmp_path)
    assert result.status is Status.FAIL and f"{word} ping at " in result.reason


def test_heartbeat_reports_success_and_failure(
    target: tuple[str, TargetSettings], tmp_path: Path
) -> None:
    """healthchecks.io style: GET the URL after a good ping, URL/fail after a bad one."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    seen: list[str] = []

    class Beat(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Beat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url, settings = target
    try:
        with httpx.Client(verify=TLS) as client:
            keepalive = KeepAlive(
                [Target("t", url)],
                client,
                60,
                PingLog(tmp_path),
                echo=lambda _: None,
                heartbeat_url=f"http://127.0.0.1:{server.server_port}/hb/abc",
            )
            assert keepalive.once() is True
            settings.fault = "health_500"
            assert keepalive.once() is False
    finally:
        server.shutdown()
        server.server_close()
    assert seen == ["/hb/abc", "/hb/abc/fail"]


def warmup_status(log_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """`opsctl warmup status --env render` over the logs in log_dir."""
    command = ["warmup", "status", "--env", "render", "--log-dir", str(log_dir)]
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "opsctl.cli",
            *command,
            "--config",
            str(REPO_ROOT / "opsctl.toml"),
            *extra,
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_warmup_status_marks_failed_pings_and_says_why_it_fails(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from opsctl.keepalive import FAILED_BAR
    from tests.checks.test_keepalive_window import daemon_log

    now = datetime.now(UTC)
    every = timedelta(minutes=14)
    daemon_log(tmp_path, [now - 4 * every, now - 3 * every], latency_ms=900)  # slowish, fine
    daemon_log(tmp_path, [now - 2 * every], latency_ms=5, status=502)  # failed, and fast
    daemon_log(tmp_path, [now - every, now - timedelta(seconds=30)], latency_ms=100)
    done = warmup_status(tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    # The failed ping is its own mark, not the lowest bar its 5 ms would draw.
    assert lines[1] == "latency ██" + FAILED_BAR + "▁▁"
    assert lines[-1] == "FAIL: 1 failed ping(s)"
    as_json = json.loads(warmup_status(tmp_path, "--json").stdout)
    assert (as_json["ok"], as_json["why"], as_json["pings"]) == (False, "1 failed ping(s)", 5)
    assert [p["status"] for p in as_json["bad"]] == [502]


def test_warmup_status_of_a_clean_log_exits_0(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    from tests.checks.test_keepalive_window import daemon_log

    now = datetime.now(UTC)
    daemon_log(tmp_path, [now - timedelta(minutes=m) for m in (28, 14, 1)])
    done = warmup_status(tmp_path, "--window", "30m")
    assert done.returncode == 0, done.stdout
    assert not done.stdout.splitlines()[-1].startswith("FAIL")
    assert json.loads(warmup_status(tmp_path, "--window", "30m", "--json").stdout)["ok"] is True


def test_once_with_retries_pings_a_waking_instance_again(tmp_path: Path) -> None:
    # Render's waking page for 0.3 s after the first request: the first ping fails.
    settings = TargetSettings(fault="asleep_page", asleep_s=0.3)
    with serve_target(settings) as url, httpx.Client(verify=TLS) as client:
        target = Target("t", url + "/health")
        keepalive = KeepAlive([target], client, 60, PingLog(tmp_path), echo=lambda _: None)
        assert keepalive.once(retries=0) is False
        settings.first_request_at = None  # asleep again
        assert keepalive.once(retries=2, delay_s=0.5) is True
    # Every ping is in the log: the retry does not hide the failure before it.
    assert [p.status for p in logged(tmp_path)] == [503, 503, 200]


def test_retries_without_once_is_a_usage_error() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "opsctl.cli", "warmup", "--retries", "2"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--retries goes with --once" in done.stderr
    assert "Traceback" not in done.stderr
