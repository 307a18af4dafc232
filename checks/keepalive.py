"""Keep-alive effective: the ping log covers the whole window with no gap over 15 minutes, ends
included, and every ping was fast and 2xx.

Render's free tier spins a web service down after 15 minutes without inbound traffic, so P2.3
passes only on proof that this never happened during the window (`[keepalive] window`, up to
now): `opsctl warmup`'s log for the environment must

- start early enough: its first ping in the window at most one keep-alive interval
  (`[keepalive] interval`, and never more than 15 minutes) after the window's start, or
  within 15 minutes of a ping from before the window (the daemon was running already);
- have no gap over 15 minutes anywhere: between two pings, from the last ping to now, and
  across the window's start when the log reaches back before it;
- hold only pings that answered 2xx in at most `slow_ms`.

Which outcome is which:

- no log in the window at all: WARN, as there is nothing to judge (the daemon may run
  elsewhere; copy its log here);
- the part the log covers (its first ping in the window up to now) shows a problem: FAIL,
  with the numbers. A gap over 15 minutes between two pings (40 minutes between two pings),
  after the last ping (the daemon stopped an hour ago: a gap of 60 minutes to now), or
  across the window's start (the log has a ping before the window, then nothing for over 15
  minutes); a slow ping (its latency and the limit); a failed ping (its status or error);
- the covered part is clean but the log starts too late to cover the whole window (a daemon
  that started 2 hours ago, with no gap since, judged over 24 hours; three `--once` pings 4
  seconds apart): WARN, not enough proof yet. It says how much of the window is covered and
  from when the same daemon, left running, makes this check pass;
- the whole window covered, nothing wrong: PASS, saying how much it looked at.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from checks.interface import Check, CheckContext, CheckResult, Status

if TYPE_CHECKING:
    from opsctl.keepalive import Ping

MAX_IDLE_S = 15 * 60.0
"""Render's free tier sleeps after this long idle (as opsctl.keepalive.FREE_TIER_SLEEP_S)."""

SHOWN = 4
"""Problems spelled out in a FAIL's reason; all of them are in its details."""


def span(seconds: float) -> str:
    """A duration for people: '4 s', '14 min', '1 min 5 s', '23 h 59 min', '24 h'."""
    whole = max(round(seconds), 0)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        minutes, rest = divmod(whole, 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    hours, rest = divmod(whole, 3600)
    return f"{hours} h" + (f" {rest // 60} min" if rest >= 60 else "")


def moment(at: datetime) -> str:
    """A moment as the ping log writes them (UTC, 'Z'), to the second."""
    return at.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.1f} min"


def _bad_ping(ping: Ping, slow_ms: float) -> str:
    took = f"{ping.latency_ms:.0f} ms"
    if ping.ok:
        return f"slow ping at {ping.at} (HTTP {ping.status} in {took}, limit {slow_ms:g} ms)"
    if ping.status is not None:
        return f"failed ping at {ping.at} (HTTP {ping.status} in {took})"
    return f"failed ping at {ping.at} ({ping.error or 'no answer'} after {took})"


class KeepAliveCheck(Check):
    """Judge `opsctl warmup`'s log for this environment over the configured window."""

    id = "keepalive"
    title = "keep-alive effective"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "the log covers the whole window: first ping within one interval of its start, "
        "no gap over 15 minutes (its two ends included), every ping 2xx in under 2 s"
    )
    needs_target = False

    def __init__(self, now: Callable[[], datetime] | None = None) -> None:
        """`now`: the end of the window (tests fix it); the current UTC time by default."""
        self._now = now or (lambda: datetime.now(UTC))

    async def run(self, ctx: CheckContext) -> CheckResult:
        from opsctl.keepalive import PingLog, judge, parse_iso

        settings = ctx.keepalive
        if settings is None:
            return self.result(
                Status.WARN,
                "no keep-alive settings to judge from",
                "add a [keepalive] section to opsctl.toml",
            )
        until = self._now()
        window = timedelta(seconds=settings.window_s)
        since = until - window
        log = PingLog(settings.log_dir)
        pings = log.read(ctx.env_name, since, until)
        if not pings:
            return self.result(
                Status.WARN,
                f"no keep-alive log for {ctx.env_name} in the last {span(settings.window_s)} "
                f"under {settings.log_dir}",
                "run `opsctl warmup` here, or copy the log from where the daemon runs",
            )
        # The window before this one tells a log that starts late (WARN: not enough proof yet)
        # from a daemon that ran, stopped and came back (FAIL: a gap across the window's start).
        before = [
            p for p in log.read(ctx.env_name, since - window, since) if parse_iso(p.at) < since
        ]
        moments = [parse_iso(p.at) for p in pings]
        first, last = moments[0], moments[-1]
        lead_s = (first - since).total_seconds()
        tail_s = (until - last).total_seconds()
        start_within_s = min(settings.interval_s, MAX_IDLE_S)

        gaps: list[tuple[str, str, float, str]] = []  # (from, to, seconds, text)
        covers_window = lead_s <= start_within_s
        if not covers_window and before:
            across_s = (first - parse_iso(before[-1].at)).total_seconds()
            covers_window = True  # the log reaches back before the window's start ...
            if across_s > MAX_IDLE_S:  # ... with a gap across it
                gaps.append(
                    (
                        before[-1].at,
                        pings[0].at,
                        across_s,
                        f"gap of {_minutes(across_s)} across the window's start, "
                        f"from {before[-1].at} to {pings[0].at}",
                    )
                )
        for (a, b), (pa, pb) in zip(pairwise(moments), pairwise(pings), strict=True):
            seconds = (b - a).total_seconds()
            if seconds > MAX_IDLE_S:
                gaps.append(
                    (pa.at, pb.at, seconds, f"gap of {_minutes(seconds)} from {pa.at} to {pb.at}")
                )
        if tail_s > MAX_IDLE_S:
            gaps.append(
                (
                    pings[-1].at,
                    moment(until),
                    tail_s,
                    f"gap of {_minutes(tail_s)} from the last ping at {pings[-1].at} "
                    f"to now ({moment(until)})",
                )
            )
        verdict = judge(pings, until, settings.slow_ms)
        spans = [lead_s, *((b - a).total_seconds() for a, b in pairwise(moments)), tail_s]
        covered_s = (until - first).total_seconds()
        details: dict[str, Any] = {
            "window_start": moment(since),
            "until": moment(until),
            "interval_s": settings.interval_s,
            "pings": verdict.pings,
            "first_ping": pings[0].at,
            "last_ping": pings[-1].at,
            "before_window": before[-1].at if before else None,
            "first_ping_after_start_s": round(lead_s, 3),
            "last_ping_before_now_s": round(tail_s, 3),
            "covered_s": round(covered_s, 3),
            "covers_window": covers_window,
            "longest_gap_min": round(max(spans) / 60, 1),
            "uptime_percent": verdict.uptime_percent,
            "gaps": [[a, b, round(s / 60, 1)] for a, b, s, _ in gaps],
            "bad": [p.line() for p in verdict.bad[:20]],
            "cold_starts": [p.at for p in verdict.cold_starts],
        }
        window_text = span(settings.window_s)
        coverage = (
            f"the log covers {span(covered_s)} of the {window_text} window; "
            f"first ping {span(lead_s)} after the window's start ({pings[0].at})"
        )
        if gaps or verdict.bad:
            problems = [text for *_, text in gaps]
            problems += [_bad_ping(p, settings.slow_ms) for p in verdict.bad]
            reason = "; ".join(problems[:SHOWN])
            if len(problems) > SHOWN:
                reason += f"; and {len(problems) - SHOWN} more (in the details)"
            if not covers_window:
                reason += f"; {coverage}"
            hints = []
            if gaps:
                hints.append(
                    "keep `opsctl warmup` running without a break (the systemd unit in the "
                    f"README), every {span(settings.interval_s)}: Render's free tier sleeps "
                    "after 15 idle minutes"
                )
            if verdict.bad:
                hints.append(
                    f"see `opsctl warmup status --env {ctx.env_name}` and the bot's logs at "
                    "those times: a slow or failed ping is a cold start or an outage"
                )
            return self.result(Status.FAIL, reason, "; ".join(hints), details=details)
        clean = f"{verdict.pings} pings, no gap over 15 min, all 2xx under {settings.slow_ms:g} ms"
        if not covers_window:
            ready = first + window - timedelta(seconds=start_within_s)
            return self.result(
                Status.WARN,
                f"{coverage}; since then {clean}",
                "keep `opsctl warmup` running for the whole window (the systemd unit in the "
                "README), or copy its log here from where it runs; with no gap, this check "
                f"can pass from {moment(ready)}",
                details=details,
            )
        return self.result(
            Status.PASS,
            f"{verdict.pings} pings in the last {window_text}, no gap over 15 min "
            f"(longest {span(max(spans))}, both ends included); the log covers the whole window "
            f"(first ping {span(lead_s)} after its start, last {span(tail_s)} before now); "
            f"all 2xx under {settings.slow_ms:g} ms; uptime {verdict.uptime_percent:g} %",
            details=details,
        )
