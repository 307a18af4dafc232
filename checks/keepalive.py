"""Keep-alive effective: the ping log shows no gap over 15 minutes and every ping fast and 2xx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from checks.interface import Check, CheckContext, CheckResult, Status


class KeepAliveCheck(Check):
    """Judge `opsctl warmup`'s log for this environment over the configured window."""

    id = "keepalive"
    title = "keep-alive effective"
    done_when = "over the window: no gap over 15 minutes, every ping 2xx in under 2 s"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        from opsctl.keepalive import PingLog, judge

        settings = ctx.keepalive
        if settings is None:
            return self.result(
                Status.WARN,
                "no keep-alive settings to judge from",
                "add a [keepalive] section to opsctl.toml",
            )
        until = datetime.now(UTC)
        since = until - timedelta(seconds=settings.window_s)
        pings = PingLog(settings.log_dir).read(ctx.env_name, since, until)
        hours = settings.window_s / 3600
        if not pings:
            return self.result(
                Status.WARN,
                f"no keep-alive log for {ctx.env_name} in the last {hours:g} h "
                f"under {settings.log_dir}",
                "run `opsctl warmup` here, or copy the log from where the daemon runs",
            )
        verdict = judge(pings, until, settings.slow_ms)
        details = {
            "pings": verdict.pings,
            "uptime_percent": verdict.uptime_percent,
            "gaps": [list(g) for g in verdict.gaps],
            "bad": [p.line() for p in verdict.bad[:20]],
            "cold_starts": [p.at for p in verdict.cold_starts],
        }
        if verdict.gaps or verdict.bad:
            problems = [f"gap of {m} min from {a} to {b}" for a, b, m in verdict.gaps[:3]]
            problems += [
                f"{'slow' if p.ok else 'failed'} ping at {p.at} "
                f"({p.status or p.error}, {p.latency_ms:.0f} ms)"
                for p in verdict.bad[:3]
            ]
            return self.result(
                Status.FAIL,
                "; ".join(problems),
                "keep `opsctl warmup` running (systemd unit in the README) every 14 minutes",
                details=details,
            )
        return self.result(
            Status.PASS,
            f"{verdict.pings} pings in the last {hours:g} h, no gap over 15 min, all 2xx under "
            f"{settings.slow_ms:g} ms; uptime {verdict.uptime_percent:g} %",
            details=details,
        )
