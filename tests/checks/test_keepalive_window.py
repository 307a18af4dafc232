"""P2.3 passes only on proof: the ping log must cover the whole window, its two ends included.

Every log here is written by the daemon's own code (`KeepAlive.ping` with a fake HTTP client
and a clock set to each ping's moment), so the lines are exactly what `opsctl warmup` writes;
the check's "now" is fixed, nothing sleeps.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks.interface import CheckContext, CheckResult, Expectations, KeepAliveSettings, Status
from checks.keepalive import MAX_IDLE_S, KeepAliveCheck, span
from opsctl.config import load_config
from opsctl.keepalive import FREE_TIER_SLEEP_S, KeepAlive, PingLog, Target
from opsctl.runner import Runner
from tests.conftest import REPO_ROOT
from tests.loopback import TLS

NOW = datetime(2026, 11, 22, 12, 0, 0, tzinfo=UTC)
DAY = timedelta(hours=24)
START = NOW - DAY  # the window's start
SECOND = timedelta(seconds=1)
MINUTE = 60 * SECOND
EVERY = 14 * MINUTE
TARGET = Target("render", "https://clara-whatsapp.onrender.com/health", free_tier=True)


class FakeResponse:
    def __init__(self, status: int) -> None:
        self.status_code = status

    def json(self) -> dict[str, Any]:
        return {"status": "ok"}


class FakeClient:
    """What httpx.Client.get returns for the health URL: a status, or an exception."""

    def __init__(self, status: int, error: Exception | None) -> None:
        self.status, self.error = status, error

    def get(self, url: str, timeout: float) -> FakeResponse:
        if self.error is not None:
            raise self.error
        return FakeResponse(self.status)


def daemon_log(
    folder: Path,
    moments: Iterable[datetime],
    latency_ms: float = 50.0,
    status: int = 200,
    error: Exception | None = None,
) -> None:
    """Pings as `opsctl warmup` logs them, each at its moment and taking `latency_ms`."""
    for at in moments:
        ticks = iter([at.timestamp(), at.timestamp() + latency_ms / 1000])
        KeepAlive(
            [TARGET],
            FakeClient(status, error),
            EVERY.total_seconds(),
            PingLog(folder),
            clock=ticks.__next__,
            echo=lambda _: None,
        ).ping(TARGET, at.timestamp())


def grid(first: datetime, last: datetime, step: timedelta = EVERY) -> list[datetime]:
    """Every `step` from `first` while not after `last`."""
    moments = []
    while first <= last:
        moments.append(first)
        first += step
    return moments


def iso(at: datetime) -> str:
    """A ping's `at` as the log writes it."""
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def check(folder: Path, interval: timedelta = EVERY, now: datetime = NOW) -> CheckResult:
    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "render",
                "",
                "",
                Expectations(),
                client,
                {},
                keepalive=KeepAliveSettings(folder, interval_s=interval.total_seconds()),
            )
            runner = Runner({"keepalive": KeepAliveCheck(now=lambda: now)})
            return await runner.run_check("P2.3", "keepalive", ctx)

    return asyncio.run(go())


# --- PASS ----------------------------------------------------------------------------------


def test_a_log_covering_the_whole_window_passes_and_says_how_much_it_saw(tmp_path: Path) -> None:
    daemon_log(tmp_path, grid(START + 5 * MINUTE, NOW))  # the last one 7 minutes ago
    result = check(tmp_path)
    assert result.status is Status.PASS
    assert result.reason == (
        "103 pings in the last 24 h, no gap over 15 min (longest 14 min, both ends included); "
        "the log covers the whole window (first ping 5 min after its start, last 7 min before "
        "now); all 2xx under 2000 ms; uptime 100 %"
    )
    assert result.details["covers_window"] is True
    assert result.details["covered_s"] == 24 * 3600 - 5 * 60
    assert result.details["gaps"] == []


def test_a_log_reaching_back_before_the_window_covers_its_start(tmp_path: Path) -> None:
    """A late ping just after the start is fine when the previous one was just before it."""
    daemon_log(tmp_path, grid(START + 14 * MINUTE + 18 * SECOND, NOW))
    assert check(tmp_path).status is Status.WARN  # 18 s later than one interval: no proof
    daemon_log(tmp_path, [START - 30 * SECOND])  # but the daemon was running already
    result = check(tmp_path)
    assert result.status is Status.PASS, result.reason
    assert result.details["before_window"] == "2026-11-21T11:59:30.000Z"


@pytest.mark.parametrize(
    ("interval_min", "status"), [(14, Status.PASS), (10, Status.PASS), (5, Status.WARN)]
)
def test_the_log_must_start_within_one_interval(
    tmp_path: Path, interval_min: int, status: Status
) -> None:
    """`[keepalive] interval` sets how late the first ping may come."""
    daemon_log(tmp_path, grid(START + 10 * MINUTE, NOW, step=5 * MINUTE))
    assert check(tmp_path, interval=interval_min * MINUTE).status is status


# --- WARN: nothing to judge, or not enough proof yet -----------------------------------------


def test_no_log_is_a_warning(tmp_path: Path) -> None:
    result = check(tmp_path)
    assert result.status is Status.WARN
    assert result.reason == f"no keep-alive log for render in the last 24 h under {tmp_path}"
    assert result.hint == "run `opsctl warmup` here, or copy the log from where the daemon runs"


def test_three_pings_over_four_seconds_are_not_proof(tmp_path: Path) -> None:
    """The issue's example: this used to PASS ('3 pings in the last 24 h, no gap over 15 min')."""
    daemon_log(tmp_path, [NOW - 4 * SECOND, NOW - 2 * SECOND, NOW])
    result = check(tmp_path)
    assert result.status is Status.WARN
    assert result.reason == (
        "the log covers 4 s of the 24 h window; first ping 23 h 59 min after the window's start "
        "(2026-11-22T11:59:56.000Z); since then 3 pings, no gap over 15 min, all 2xx under "
        "2000 ms"
    )
    assert result.hint == (
        "keep `opsctl warmup` running for the whole window (the systemd unit in the README), "
        "or copy its log here from where it runs; with no gap, this check can pass from "
        "2026-11-23T11:45:56Z"
    )


def test_a_daemon_started_two_hours_ago_without_gaps_is_not_enough_yet(tmp_path: Path) -> None:
    moments = grid(NOW - 2 * timedelta(hours=1), NOW)  # the last one 8 minutes ago
    daemon_log(tmp_path, moments)
    result = check(tmp_path)
    assert result.status is Status.WARN
    assert result.reason == (
        "the log covers 2 h of the 24 h window; first ping 22 h after the window's start "
        "(2026-11-22T10:00:00.000Z); since then 9 pings, no gap over 15 min, all 2xx under "
        "2000 ms"
    )
    assert result.hint.endswith("this check can pass from 2026-11-23T09:46:00Z")
    # And it does, from then on, with the same daemon still running.
    later = datetime(2026, 11, 23, 9, 46, tzinfo=UTC)
    daemon_log(tmp_path, grid(moments[-1] + EVERY, later))
    assert check(tmp_path, now=later).status is Status.PASS


# --- FAIL: the covered part shows a problem ----------------------------------------------------


def test_a_gap_of_40_minutes_between_two_pings_fails(tmp_path: Path) -> None:
    gap_from = START + 5 * MINUTE + 40 * EVERY
    daemon_log(tmp_path, grid(START + 5 * MINUTE, gap_from))
    daemon_log(tmp_path, grid(gap_from + 40 * MINUTE, NOW))
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == (
        f"gap of 40.0 min from {iso(gap_from)} to {iso(gap_from + 40 * MINUTE)}"
    )
    assert result.hint.startswith("keep `opsctl warmup` running without a break")
    assert result.details["gaps"] == [[iso(gap_from), iso(gap_from + 40 * MINUTE), 40.0]]


def test_a_daemon_that_stopped_an_hour_ago_fails_on_the_gap_to_now(tmp_path: Path) -> None:
    daemon_log(tmp_path, grid(START + 8 * MINUTE, NOW - 60 * MINUTE))
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == (
        "gap of 60.0 min from the last ping at 2026-11-22T11:00:00.000Z to now "
        "(2026-11-22T12:00:00Z)"
    )


def test_a_gap_across_the_windows_start_fails(tmp_path: Path) -> None:
    """The log has pings before the window, then none for 40 minutes: a gap, not a late start."""
    daemon_log(tmp_path, grid(START - 3 * EVERY - 10 * MINUTE, START - 10 * MINUTE))
    daemon_log(tmp_path, grid(START + 30 * MINUTE, NOW))
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == (
        "gap of 40.0 min across the window's start, from 2026-11-21T11:50:00.000Z "
        "to 2026-11-21T12:30:00.000Z"
    )


def test_a_gap_in_a_short_log_fails_and_says_how_much_it_covers(tmp_path: Path) -> None:
    started = NOW - 3 * timedelta(hours=1)
    daemon_log(tmp_path, [started, started + EVERY, started + EVERY + 40 * MINUTE])
    daemon_log(tmp_path, grid(started + 2 * EVERY + 40 * MINUTE, NOW))
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == (
        "gap of 40.0 min from 2026-11-22T09:14:00.000Z to 2026-11-22T09:54:00.000Z; "
        "the log covers 3 h of the 24 h window; first ping 21 h after the window's start "
        "(2026-11-22T09:00:00.000Z)"
    )


def test_a_slow_ping_fails_with_its_latency(tmp_path: Path) -> None:
    moments = grid(START + 5 * MINUTE, NOW)
    daemon_log(tmp_path, [m for m in moments if m != moments[50]])
    daemon_log(tmp_path, [moments[50]], latency_ms=2500.0)
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == (
        f"slow ping at {iso(moments[50])} (HTTP 200 in 2500 ms, limit 2000 ms)"
    )
    assert result.hint.startswith("see `opsctl warmup status --env render`")


@pytest.mark.parametrize(
    ("status", "error", "what"),
    [
        (503, None, "(HTTP 503 in 40 ms)"),
        (
            200,
            httpx.ConnectError("connection refused"),
            "(ConnectError: connection refused after 40 ms)",
        ),
    ],
)
def test_a_failed_ping_fails_with_its_status_or_error(
    tmp_path: Path, status: int, error: Exception | None, what: str
) -> None:
    moments = grid(START + 5 * MINUTE, NOW)
    daemon_log(tmp_path, [m for m in moments if m != moments[-3]])
    daemon_log(tmp_path, [moments[-3]], latency_ms=40.0, status=status, error=error)
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason == f"failed ping at {iso(moments[-3])} {what}"
    assert result.details["uptime_percent"] == round(100 * 102 / 103, 2)


def test_many_problems_are_counted_not_all_spelled_out(tmp_path: Path) -> None:
    moments = grid(START + 5 * MINUTE, NOW)
    daemon_log(tmp_path, moments[:-6])
    daemon_log(tmp_path, moments[-6:], latency_ms=40.0, status=500)
    result = check(tmp_path)
    assert result.status is Status.FAIL
    assert result.reason.count("failed ping at ") == 4
    assert result.reason.endswith("; and 2 more (in the details)")


# --- the pieces around it -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (4.2, "4 s"),
        (60, "1 min"),
        (65, "1 min 5 s"),
        (840, "14 min"),
        (7200, "2 h"),
        (86396, "23 h 59 min"),
    ],
)
def test_span(seconds: float, text: str) -> None:
    assert span(seconds) == text


def test_opsctl_toml_gives_the_interval_and_p23_needs_p22() -> None:
    from checks.registry import CHECKS

    config = load_config(REPO_ROOT / "opsctl.toml", CHECKS)
    assert config.keepalive.interval_s == 14 * 60
    assert config.gates["P2.3"].needs == ("P2.2",)
    assert KeepAliveSettings(Path("x")).interval_s == 14 * 60
    assert MAX_IDLE_S == FREE_TIER_SLEEP_S
