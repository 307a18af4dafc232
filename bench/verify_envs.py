"""`opsctl verify` over 1, 5 and 20 environments at once, each a slow target: the wall time of each.

Every environment is its own loopback look-alike of the bot (tests/fakes/bot_target.py) that
adds 200 ms to every answer; the deploy gates only (P2.1 webhook, P2.2 https, health, warmup,
audio, metrics), so the repository's gates (the test suite, the scans) do not hide what is
measured. One after another, 20 environments would cost about 20 times one; side by side in
one event loop they should cost about one. The bar (issue 18): 20 environments in less than
twice the time of one. Each count is run `--runs` times, interleaved (drift in the machine's
load hits all alike); the medians are compared. Exit 1 when the bar is missed, 2 when a run
did not pass (figures of a run that is not working are not reported).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # for tests.fakes (the same fake target the tests use)

from tests.fakes.bot_target import TargetSettings, serve_target  # noqa: E402

PUBLIC = "https://bot.example.org"
COUNTS = (1, 5, 20)
BAR = 2.0
GATES = """
[defaults]
timeout_s = 10

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["https", "health", "warmup", "audio", "metrics"]
"""
ENVIRONMENT = """
[environments.{name}]
base_url = "{url}"
public_url = "{public}"
token_env = "BENCH_TOKEN"
account_sid_env = "BENCH_ACCOUNT_SID"
latency_warn_ms = 5000   # 200 ms late by design: far from either limit, however loaded
latency_fail_ms = 10000
cold_start_budget_s = 20
wake_timeout_s = 30
warm_samples = 5
require_https = false
"""


def timed(command: list[str], environ: dict[str, str]) -> tuple[float, int, str]:
    """Wall time of one `opsctl verify`, its exit code and its last line (the overall verdict)."""
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO_ROOT, env=environ, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    lines = (done.stdout or done.stderr).strip().splitlines()
    return seconds, done.returncode, lines[-1] if lines else ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds added to each answer")
    args = parser.parse_args()
    names = [f"env{n:02d}" for n in range(1, max(COUNTS) + 1)]
    with ExitStack() as stack, tempfile.TemporaryDirectory() as tmp:
        text = GATES
        settings = TargetSettings()
        for name in names:
            settings = TargetSettings(public_url=PUBLIC, delay_s=args.delay)
            url = stack.enter_context(serve_target(settings))
            text += ENVIRONMENT.format(name=name, url=url, public=PUBLIC)
        config = Path(tmp) / "opsctl.toml"
        config.write_text(text)
        env_file = Path(tmp) / "bench.env"
        env_file.write_text(f"BENCH_TOKEN={settings.token}\n")
        environ = {**os.environ, "BENCH_ACCOUNT_SID": settings.account_sid}
        base = [
            *(os.environ.get("PYTHON", sys.executable), "-m", "opsctl.cli", "verify"),
            *("--config", str(config), "--env-file", str(env_file)),
            *("--no-evidence", "--progress", "none", "--color", "never"),
        ]
        walls: dict[int, list[float]] = {n: [] for n in COUNTS}
        for _ in range(args.runs):
            for count in COUNTS:
                envs = [arg for name in names[:count] for arg in ("--env", name)]
                seconds, code, last = timed([*base, *envs], environ)
                if code != 0:
                    print(f"{count} environment(s) did not pass (exit {code}): {last}")
                    return 2
                walls[count].append(seconds)
    medians = {n: statistics.median(t) for n, t in walls.items()}
    ratio = medians[max(COUNTS)] / medians[1]
    for count in COUNTS:
        per = medians[count] / count
        print(
            f"  {count:>2} environment(s): median {medians[count]:.2f}s over {args.runs} runs "
            f"({per:.2f}s an environment; one after another: ~{medians[1] * count:.1f}s)"
        )
    held = ratio < BAR
    print(
        f"{max(COUNTS)} environments against one: {ratio:.2f}x (bar: < {BAR:g}x) -> "
        f"{'PASS' if held else 'FAIL'}"
    )
    report = {
        "delay_s": args.delay,
        "runs": args.runs,
        "gates": ["P2.1", "P2.2"],
        "wall_s": {str(n): [round(t, 3) for t in walls[n]] for n in COUNTS},
        "median_s": {str(n): round(m, 3) for n, m in medians.items()},
        "ratio": round(ratio, 3),
        "bar": BAR,
    }
    out = (
        REPO_ROOT
        / "bench"
        / "results"
        / time.strftime("verify-envs-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"results in {out.relative_to(REPO_ROOT)}")
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
