"""The bot's POST /webhook beside its floor: a minimal Flask app under the same gunicorn.

Interleaved rounds (floor, bot at WARNING, bot at INFO, then again), each a fresh server
loaded by wrk with distinct signed requests; medians per variant, ratios to the floor, and
the worker's CPU time per request read from /proc. Exit 1 when a bar is missed (issue 17):
the bot at production INFO logging reaches 0.7x the floor's throughput and p95 <= 50 ms.
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_requests import bot_env, build_requests, write_lua
from webhook import (
    BENCH_DIR,
    BenchError,
    add_load_options,
    check_bot_answers,
    git_commit,
    measured_or_exit_code,
    run_wrk,
    wait_for_health,
    write_result,
)

from opsctl.devserver import DevServer

THROUGHPUT_BAR, P95_BAR_MS = 0.7, 50.0
FLOOR_APP = "bench.floor_app:app"
VARIANTS = ("floor", "bot-WARNING", "bot-INFO")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant (3)")
    add_load_options(parser, duration_s=10)
    args = parser.parse_args(argv)
    args.requests = max(30_000, 3_000 * args.duration)
    return args


def worker_cpu_s(master_pid: int) -> float:
    """User + system CPU seconds of the gunicorn master's children (the worker)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{master_pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def one_round(variant: str, args: argparse.Namespace, data_dir: Path) -> dict[str, float]:
    """Start the variant's server, load it, stop it: p95, throughput, CPU per request."""
    token = secrets.token_hex(16)
    env = bot_env(os.environ, token)
    if variant == "bot-INFO":
        env["LOG_LEVEL"] = "INFO"
    probe, *load = build_requests(token, args.requests + 1)
    server = DevServer(env, port=0, app=FLOOR_APP if variant == "floor" else "")
    try:
        url = server.start()
        wait_for_health(url, server)
        if variant != "floor":
            check_bot_answers(url, probe)
        data = data_dir / f"{variant}.lua"
        write_lua(load, data)
        cpu_before = worker_cpu_s(server.process.pid)
        _, figures = run_wrk(url, data, args)
        cpu_s = worker_cpu_s(server.process.pid) - cpu_before
    finally:
        server.stop()
    requests = figures["requests"]
    errors = sum(v for k, v in figures.items() if k.startswith("errors_"))
    if errors:
        raise BenchError(f"{variant}: {int(errors)} errors under load")
    return {
        "p95_ms": figures["p95_us"] / 1000,
        "requests_per_s": requests / (figures["duration_us"] / 1e6),
        "cpu_ms_per_request": 1000 * cpu_s / max(requests, 1),
    }


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the rounds."""
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0]}


def report(result: dict[str, Any]) -> bool:
    """Print the table and the bars; True when every bar holds."""
    med = result["medians"]
    floor = med["floor"]
    print(
        f"POST /webhook, {result['config']['connections']} connections, "
        f"{result['config']['rounds']} interleaved rounds of {result['config']['duration_s']} s, "
        "medians (Dockerfile gunicorn for all)"
    )
    print(f"  {'variant':<12} {'req/s':>8} {'p95 ms':>7} {'CPU ms/req':>10} {'vs floor':>8}")
    for variant in VARIANTS:
        m = med[variant]
        ratio = m["requests_per_s"] / floor["requests_per_s"]
        print(
            f"  {variant:<12} {m['requests_per_s']:>8.0f} {m['p95_ms']:>7.1f} "
            f"{m['cpu_ms_per_request']:>10.3f} {ratio:>8.2f}"
        )
    info = med["bot-INFO"]
    ratio = info["requests_per_s"] / floor["requests_per_s"]
    bars = [
        (f"bot at INFO >= {THROUGHPUT_BAR}x the floor's throughput", ratio >= THROUGHPUT_BAR),
        (f"bot at INFO p95 <= {P95_BAR_MS:g} ms", info["p95_ms"] <= P95_BAR_MS),
    ]
    for label, ok in bars:
        print(f"  bar  {label}: {'PASS' if ok else 'FAIL'}")
    return all(ok for _, ok in bars)


def main(argv: list[str]) -> int:
    """Exit 0 when every bar holds, 1 when one is missed, 2 when it could not measure."""
    args = parse_args(argv)

    def measure() -> dict[str, list[dict[str, float]]]:
        rounds: dict[str, list[dict[str, float]]] = {v: [] for v in VARIANTS}
        with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp:
            for _ in range(args.rounds):
                for variant in VARIANTS:  # interleaved: a noisy minute hurts every variant
                    rounds[variant].append(one_round(variant, args, Path(tmp)))
        return rounds

    rounds = measured_or_exit_code(measure)
    if isinstance(rounds, int):
        return rounds
    result = {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "config": {
            "rounds": args.rounds,
            "duration_s": args.duration,
            "connections": args.connections,
            "cpus": os.cpu_count(),
        },
        "rounds": rounds,
        "medians": {v: medians(r) for v, r in rounds.items()},
    }
    ok = report(result)
    path = write_result("webhook-floor", result)
    print(f"  results {path.relative_to(BENCH_DIR.parent)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
