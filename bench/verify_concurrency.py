"""Concurrency: the deploy gates' wall time against the slowest single check, on a slow target.

Every response of the loopback target is delayed by 200 ms. If the checks ran one
after another the gates would take about the sum of all checks; run concurrently they
take about as long as the slowest one. The bar: wall time <= 1.5 x slowest check.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # for tests.fakes (the same fake target the tests use)

from checks.registry import CHECKS  # noqa: E402
from opsctl.config import Gate, load_config  # noqa: E402
from opsctl.verify import Target, run_gates, select_gates  # noqa: E402
from tests.fakes.bot_target import TargetSettings, serve_target  # noqa: E402

CONFIG = """
[environments.slow]
base_url = "{url}"
public_url = "https://bot.example.org"
token_env = "BENCH_TOKEN"
latency_warn_ms = 1000
latency_fail_ms = 2000
warm_samples = 5

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["https", "health", "warmup", "audio", "metrics"]
"""


def _silent(gate_id: str, check_id: str, result: object) -> None:
    pass


def timed(config_path: Path, gates: list[Gate], token: str) -> tuple[float, str]:
    """Wall time of one run of these gates, and its verdict."""
    config = load_config(config_path, CHECKS)
    env = config.environment("slow")
    # The look-alike answers only messages for its own account, as the bot does.
    target = Target(
        env.base_url, env.public_url, {"BENCH_TOKEN": token}, TargetSettings().account_sid
    )
    started = time.perf_counter()
    run = asyncio.run(run_gates(config, env, target, gates, {}, _silent))
    return time.perf_counter() - started, run.verdict


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds added to each response")
    args = parser.parse_args()
    settings = TargetSettings(delay_s=args.delay, public_url="https://bot.example.org")
    with serve_target(settings) as url, tempfile.TemporaryDirectory() as tmp:
        config_path = Path(tmp) / "opsctl.toml"
        config_path.write_text(CONFIG.format(url=url))
        config = load_config(config_path, CHECKS)
        deploy_gates, _ = select_gates(config, ["P2.1", "P2.2"], [])
        singles = {c: [Gate(c, c, (c,))] for g in deploy_gates for c in g.checks}
        wall, per_check = [], {c: [] for c in singles}
        for _ in range(args.runs):  # interleaved, so drift in machine load hits all alike
            seconds, verdict = timed(config_path, deploy_gates, settings.token)
            if not verdict.startswith("PASS"):
                print(f"the gates did not pass against the slow target: {verdict}")
                return 2
            wall.append(seconds)
            for check_id, gate in singles.items():
                per_check[check_id].append(timed(config_path, gate, settings.token)[0])
    medians = {c: statistics.median(t) for c, t in per_check.items()}
    slowest = max(medians, key=medians.__getitem__)
    gates_median = statistics.median(wall)
    ratio = gates_median / medians[slowest]
    report = {
        "delay_s": args.delay,
        "runs": args.runs,
        "gates_wall_median_s": round(gates_median, 3),
        "check_medians_s": {c: round(m, 3) for c, m in medians.items()},
        "slowest_check": slowest,
        "sum_of_checks_s": round(sum(medians.values()), 3),
        "ratio": round(ratio, 3),
    }
    for check_id, median in sorted(medians.items(), key=lambda kv: -kv[1]):
        print(f"  {check_id:<8} alone: median {median:.3f}s")
    print(
        f"P2.1 + P2.2 together: median {gates_median:.3f}s over {args.runs} runs "
        f"(sum of checks alone: {report['sum_of_checks_s']:.3f}s)"
    )
    print(
        f"ratio to the slowest check ({slowest}): {ratio:.2f} (bar: <= 1.5) -> "
        f"{'PASS' if ratio <= 1.5 else 'FAIL'}"
    )
    out = (
        REPO_ROOT
        / "bench"
        / "results"
        / time.strftime("verify-concurrency-%Y%m%dT%H%M%SZ.json", time.gmtime())
    )
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    return 0 if ratio <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
