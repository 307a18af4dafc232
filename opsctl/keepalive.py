"""The keep-alive: ping each target's /health on a fixed grid with `schedule`, log every ping."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from opsctl.durations import IntervalError as IntervalError
from opsctl.durations import parse_duration as parse_duration
from opsctl.errors import OpsctlError
from opsctl.files import write_atomically

FREE_TIER_SLEEP_S = 15 * 60
"""Render's free tier spins a service down after 15 minutes without traffic."""


@dataclass(frozen=True)
class Target:
    """A health URL to keep awake."""

    env: str
    url: str
    free_tier: bool = False


@dataclass(frozen=True)
class Ping:
    """One ping as logged: when it was due, when it ran, what came back."""

    env: str
    url: str
    planned_at: str
    at: str
    status: int | None
    latency_ms: float
    ok: bool
    cold_start: bool
    uptime_s: int | None = None
    error: str = ""

    def line(self) -> str:
        """One readable line for the terminal."""
        what = f"{self.status}" if self.status is not None else f"ERROR {self.error}"
        cold = "  COLD START" if self.cold_start else ""
        return f"{self.at}  {self.env:<8} {what:<6} {self.latency_ms:7.0f} ms  {self.url}{cold}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    """The log's timestamps back into aware datetimes."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class PingLog:
    """JSON lines per environment and UTC day, appended, flushed and synced on every ping."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def check_writable(self) -> None:
        """Refuse to start, in one line, where no ping could be logged: found at the first
        ping, it was an 'internal error' that killed the daemon (and a restart loop)."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.root, prefix=".writable-"):
                pass  # created and removed: the folder takes new files
        except OSError as exc:
            raise OpsctlError(
                f"cannot write the ping log in {self.root}: {exc.strerror or exc}; fix: give "
                "--log-dir (or [keepalive] log_dir) a folder this user can write"
            ) from exc

    def path(self, env: str, day: str) -> Path:
        """<root>/<env>/<YYYY-MM-DD>.jsonl"""
        return self.root / env / f"{day}.jsonl"

    def append(self, ping: Ping) -> None:
        """Write one line; it is on disk when this returns."""
        path = self.path(ping.env, ping.at[:10])
        path.parent.mkdir(parents=True, exist_ok=True)
        data = (json.dumps(asdict(ping), sort_keys=True) + "\n").encode("utf-8")
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self, env: str, since: datetime, until: datetime) -> list[Ping]:
        """Pings of one environment between two moments, oldest first."""
        pings = []
        day = since.date()
        while day <= until.date():
            path = self.path(env, day.isoformat())
            if path.is_file():
                for line in path.read_text(encoding="utf-8").splitlines():
                    if not line.strip():
                        continue
                    try:
                        ping = Ping(**json.loads(line))
                    except (ValueError, TypeError):
                        continue  # a line cut by a crash mid-write: skip it, keep the rest
                    if since <= parse_iso(ping.at) <= until:
                        pings.append(ping)
            day += timedelta(days=1)
        return sorted(pings, key=lambda p: p.at)


@dataclass
class _TargetState:
    planned: float
    failures: int = 0
    last_uptime: int | None = None


@dataclass
class KeepAlive:
    """Pings targets at once, then every `interval` seconds; failures retry sooner."""

    targets: Sequence[Target]
    client: Any
    """An httpx.Client (injected: tests and the benchmark hand in their own)."""
    interval: float
    log: PingLog
    stop: threading.Event = field(default_factory=threading.Event)
    clock: Callable[[], float] = time.time
    echo: Callable[[str], None] = print
    cold_start_ms: float = 5000.0
    timeout_s: float = 30.0
    heartbeat_url: str = ""
    status_file: Path | None = None
    _last: dict[str, Ping] = field(default_factory=dict)

    def backoff(self, failures: int) -> float:
        """How soon to retry after `failures` failures in a row: short, doubling, capped."""
        return min(self.interval, max(1.0, self.interval / 8) * 2 ** (failures - 1))

    def ping(self, target: Target, planned: float, state: _TargetState | None = None) -> Ping:
        """One GET of the health URL, logged and printed; never raises."""
        started = self.clock()
        status, uptime, error = None, None, ""
        try:
            response = self.client.get(target.url, timeout=self.timeout_s)
            status = response.status_code
            try:
                body = response.json()
                uptime = (
                    int(body["uptime_s"]) if isinstance(body, dict) and "uptime_s" in body else None
                )
            except (ValueError, TypeError, KeyError):
                uptime = None
        except Exception as exc:  # a job must never raise: schedule would drop it
            error = f"{type(exc).__name__}: {exc}"[:200]
        latency_ms = (self.clock() - started) * 1000
        previous = state.last_uptime if state else None
        restarted = uptime is not None and previous is not None and uptime < previous
        ok = status is not None and 200 <= status < 300
        ping = Ping(
            env=target.env,
            url=target.url,
            planned_at=_iso(datetime.fromtimestamp(planned, UTC)),
            at=_iso(datetime.fromtimestamp(started, UTC)),
            status=status,
            latency_ms=round(latency_ms, 1),
            ok=ok,
            cold_start=restarted or (ok and latency_ms > self.cold_start_ms),
            uptime_s=uptime,
            error=error,
        )
        if state is not None and uptime is not None:
            state.last_uptime = uptime
        self._record(ping)
        return ping

    def _record(self, ping: Ping) -> None:
        try:
            self.log.append(ping)
        except OSError as exc:  # a full disk must not stop the pings themselves
            self.echo(f"cannot write the ping log: {exc}")
        self.echo(ping.line())
        self._last[ping.env] = ping
        if self.status_file is not None:
            status = {k: asdict(v) for k, v in self._last.items()}
            write_atomically(self.status_file, json.dumps(status, indent=2, sort_keys=True) + "\n")
        if self.heartbeat_url:
            suffix = "" if ping.ok else "/fail"
            try:  # healthchecks.io style: GET on success, /fail on failure
                self.client.get(self.heartbeat_url.rstrip("/") + suffix, timeout=10)
            except Exception as exc:
                self.echo(f"heartbeat failed: {type(exc).__name__}")

    def once(self, retries: int = 0, delay_s: float = 10.0) -> bool:
        """Ping every target once, and a failed one again up to `retries` times, `delay_s`
        apart (a waking instance may answer the second ping); True when all answered 2xx.
        Every ping is logged: a retry does not hide the failure before it."""
        now = self.clock()
        pending = [t for t in self.targets if not self.ping(t, now).ok]
        for _ in range(retries):
            if not pending or self.stop.wait(delay_s):
                break
            now = self.clock()
            pending = [t for t in pending if not self.ping(t, now).ok]
        return not pending

    def run(self) -> None:
        """Until `stop` is set: one schedule.Scheduler, one thread, jobs that catch everything."""
        import schedule

        scheduler = schedule.Scheduler()

        def plan(target: Target, state: _TargetState, delay: float) -> None:
            # Each job runs once and plans the next from the grid, not from when it ended,
            # so the cadence does not drift by the ping's duration (schedule's own habit).
            # schedule types `every` as int but builds timedelta(seconds=...), which takes floats;
            # a zero interval makes it loop forever computing the next run, hence the floor.
            scheduler.every(max(delay, 0.001)).seconds.do(job, target, state)  # type: ignore[arg-type]

        def job(target: Target, state: _TargetState) -> Any:
            ping = self.ping(target, state.planned, state)
            if ping.ok:
                state.failures = 0
                state.planned += self.interval
                while state.planned <= self.clock():  # we were away: do not fire a burst
                    state.planned += self.interval
            else:
                state.failures += 1
                state.planned = self.clock() + self.backoff(state.failures)
            plan(target, state, state.planned - self.clock())
            return schedule.CancelJob

        start = self.clock()
        for target in self.targets:  # at once, then on the grid
            plan(target, _TargetState(planned=start), 0)
        while not self.stop.is_set():
            scheduler.run_pending()
            idle = scheduler.idle_seconds
            self.stop.wait(min(max(idle if idle is not None else 1.0, 0.0), 60.0))


def targets_for(config: Any, env_names: Sequence[str], urls: Sequence[str]) -> list[Target]:
    """The targets to keep awake: named environments, extra URLs, else those marked keepalive."""
    from opsctl.config import ConfigError

    names = list(env_names) or (
        [] if urls else [e.name for e in config.environments.values() if e.keepalive]
    )
    targets = []
    for name in names:
        env = config.environment(name)
        if not env.base_url:
            raise ConfigError(
                f"environment {name!r} has no base_url to keep awake; "
                "fix: pass --url, or give it a base_url"
            )
        targets.append(Target(name, env.base_url + "/health", env.free_tier))
    for url in urls:
        host = re.sub(r"[^A-Za-z0-9.-]+", "-", url.split("://", 1)[-1].split("/", 1)[0])
        targets.append(Target(f"url-{host}", url))
    if not targets:
        raise ConfigError(
            "nothing to keep awake; fix: --env NAME, --url URL, or "
            "keepalive = true on an environment in opsctl.toml"
        )
    return targets


def validate_interval(text: str | None, default: float, targets: Sequence[Target]) -> float:
    """The interval in seconds; a free-tier target must be pinged before it falls asleep."""
    from opsctl.config import ConfigError

    try:
        seconds = parse_duration(text) if text else default
    except IntervalError as exc:
        raise ConfigError(f"--interval: {exc}") from None
    if seconds <= 0:
        raise ConfigError("--interval must be above zero; fix: e.g. --interval 14m")
    sleepy = [t.env for t in targets if t.free_tier]
    if sleepy and seconds >= FREE_TIER_SLEEP_S:
        raise ConfigError(
            f"--interval {text or default}: {', '.join(sleepy)} is on a free tier that sleeps "
            "after 15 idle minutes, so a ping every 15 minutes or more lets it sleep; "
            "fix: use 14m or less"
        )
    return seconds


@dataclass(frozen=True)
class Judgement:
    """What the log says about a window: gaps, slow or failed pings, cold starts, uptime."""

    pings: int
    gaps: tuple[tuple[str, str, float], ...]
    """(from, to, minutes) of each gap over 15 minutes."""
    bad: tuple[Ping, ...]
    """Failed pings, or slower than the limit."""
    cold_starts: tuple[Ping, ...]
    uptime_percent: float


def judge(
    pings: Iterable[Ping],
    until: datetime,
    slow_ms: float = 2000.0,
    max_gap_s: float = FREE_TIER_SLEEP_S,
) -> Judgement:
    """Judge a window of pings (oldest first) ending at `until`."""
    pings = list(pings)
    moments = [parse_iso(p.at) for p in pings] + [until]
    gaps = tuple(
        (_iso(a), _iso(b), round((b - a).total_seconds() / 60, 1))
        for a, b in pairwise(moments)
        if (b - a).total_seconds() > max_gap_s
    )
    bad = tuple(p for p in pings if not p.ok or p.latency_ms > slow_ms)
    good = sum(p.ok for p in pings)
    return Judgement(
        len(pings),
        gaps,
        bad,
        tuple(p for p in pings if p.cold_start),
        round(100 * good / len(pings), 2) if pings else 0.0,
    )


FAILED_BAR = "✗"


def sparkline(values: Sequence[float], failed: Sequence[bool] = ()) -> str:
    """▁▂▃▄▅▆▇█ for a row of numbers (latencies); ✗ where `failed` says the ping failed (a
    failed ping's latency is no measure of speed: it would draw as the fastest bar)."""
    bars = "▁▂▃▄▅▆▇█"
    failed = list(failed) or [False] * len(values)
    measured = [v for v, bad in zip(values, failed, strict=True) if not bad]
    if not values:
        return ""
    low, high = min(measured, default=0.0), max(measured, default=0.0)
    span = (high - low) or 1.0
    return "".join(
        FAILED_BAR if bad else bars[min(int((v - low) / span * (len(bars) - 1)), len(bars) - 1)]
        for v, bad in zip(values, failed, strict=True)
    )


def why_failing(judgement: Judgement, slow_ms: float) -> str:
    """One line saying why a window fails ('' when it does not)."""
    failed = sum(not p.ok for p in judgement.bad)
    slow = len(judgement.bad) - failed
    parts = [
        f"{len(judgement.gaps)} gap(s) over 15 minutes" if judgement.gaps else "",
        f"{failed} failed ping(s)" if failed else "",
        f"{slow} ping(s) slower than {slow_ms:g} ms" if slow else "",
    ]
    return "; ".join(p for p in parts if p)
