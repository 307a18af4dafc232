"""The keep-alive daemon for a minute at a 1 s interval: peak RSS, CPU share, schedule deviation.

Bars: peak RSS <= 60 MB, CPU time <= 2 % of wall time, p95 of (ping time - planned time)
<= 200 ms. Runs `opsctl warmup` under /usr/bin/time -v against the tests' fake bot.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # for tests.fakes

from tests.fakes.bot_target import TargetSettings, serve_target  # noqa: E402


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--interval", default="1s")
    args = parser.parse_args()
    with serve_target(TargetSettings()) as url, tempfile.TemporaryDirectory() as tmp:
        command = [
            "/usr/bin/time",
            "-v",
            "timeout",
            "-s",
            "TERM",
            str(args.seconds),
            str(REPO_ROOT / ".venv" / "bin" / "opsctl"),
            "warmup",
            "--url",
            url + "/health",
            "--interval",
            args.interval,
            "--log-dir",
            tmp,
            "--config",
            str(REPO_ROOT / "opsctl.toml"),
        ]
        started = time.monotonic()
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        wall = time.monotonic() - started
        report = done.stderr
        pings = [
            json.loads(line)
            for path in Path(tmp).rglob("*.jsonl")
            for line in path.read_text().splitlines()
            if line.strip()
        ]

    def field(name: str) -> float:
        match = re.search(rf"{re.escape(name)}: ([\d.]+)", report)
        if not match:
            raise SystemExit(f"no {name!r} in /usr/bin/time's report:\n{report[-800:]}")
        return float(match.group(1))

    rss_mb = field("Maximum resident set size (kbytes)") / 1024
    cpu_s = field("User time (seconds)") + field("System time (seconds)")
    late_ms = sorted((_iso(p["at"]) - _iso(p["planned_at"])).total_seconds() * 1000 for p in pings)
    p95 = late_ms[min(len(late_ms) - 1, int(0.95 * len(late_ms)))] if late_ms else float("inf")
    cpu_share = 100 * cpu_s / wall
    ok = sum(p["ok"] for p in pings)
    print(f"pings: {len(pings)} ({ok} ok) in {wall:.1f} s at {args.interval}")
    print(f"peak RSS: {rss_mb:.1f} MB (bar <= 60)")
    print(f"CPU: {cpu_s:.2f} s = {cpu_share:.2f} % of wall (bar <= 2 %); start-up included")
    print(
        f"deviation from schedule: median {statistics.median(late_ms):.1f} ms, "
        f"p95 {p95:.1f} ms, max {late_ms[-1]:.1f} ms (bar p95 <= 200)"
    )
    passed = rss_mb <= 60 and cpu_share <= 2 and p95 <= 200 and ok == len(pings) > 0
    print("PASS" if passed else "FAIL")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
