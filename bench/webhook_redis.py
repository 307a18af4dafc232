"""POST /webhook with the shared store: two bots behind one Redis against one bot alone.

One run, three variants, each a fresh set of servers loaded by wrk with distinct signed
requests for the same time: one bot with its in-process store, one bot with REDIS_URL, and two
bots sharing one Redis (each loaded by its own wrk with half the connections, both at once:
no proxy in between to measure). Throughput is summed over the bots; p95 of two bots is the
larger of the two (wrk's percentiles cannot be merged), an upper bound. Prints a table, writes
bench/results/webhook-redis-<time>.json. Exit 0 measured, 2 could not measure. Needs wrk and
Debian's redis-server (issue 18).
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
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

VARIANTS = ("one bot, memory", "one bot, Redis", "two bots, one Redis")


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_load_options(parser, duration_s=10)
    args = parser.parse_args(argv)
    args.requests = max(30_000, 3_000 * args.duration)
    return args


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    """redis-server on a free loopback port, no persistence; (process, REDIS_URL)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    process = subprocess.Popen(
        [
            "redis-server",
            *("--bind", "127.0.0.1", "--port", str(port)),
            *("--save", "", "--appendonly", "no", "--dir", str(folder)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return process, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise BenchError(f"redis-server did not answer on 127.0.0.1:{port}")


def load_bots(
    variant: str, args: argparse.Namespace, redis_url: str, data_dir: Path
) -> dict[str, Any]:
    """Start the variant's bots, load each with its own wrk at once, stop them."""
    bots = 2 if variant.startswith("two") else 1
    token = secrets.token_hex(16)
    env = bot_env(os.environ, token)
    if "Redis" in variant:
        env["REDIS_URL"] = redis_url
    share = argparse.Namespace(
        **{
            **vars(args),
            "connections": args.connections // bots,
            "threads": max(1, args.threads // bots),
        }
    )
    servers = [DevServer(env, port=0) for _ in range(bots)]
    try:
        urls = [server.start() for server in servers]
        datas = []
        for n, (server, url) in enumerate(zip(servers, urls, strict=True)):
            wait_for_health(url, server)
            probe, *load = build_requests(token, args.requests // bots + 1)
            check_bot_answers(url, probe)
            data = data_dir / f"{variant[:3]}-{n}.lua"
            write_lua(load, data)
            datas.append(data)
        with ThreadPoolExecutor(bots) as pool:
            pairs = zip(urls, datas, strict=True)
            runs = list(pool.map(lambda pair: run_wrk(pair[0], pair[1], share), pairs))
        health = [httpx.get(url + "/health", timeout=5).json()["status"] for url in urls]
    finally:
        for server in servers:
            server.stop()
    figures = [f for _, f in runs]
    errors = sum(v for f in figures for k, v in f.items() if k.startswith("errors_"))
    if errors:
        raise BenchError(f"{variant}: {int(errors)} errors under load")
    if health != ["ok"] * bots:
        raise BenchError(f"{variant}: /health said {health} after the load")
    return {
        "bots": bots,
        "requests": int(sum(f["requests"] for f in figures)),
        "requests_per_s": round(sum(f["requests"] / (f["duration_us"] / 1e6) for f in figures), 1),
        "p50_ms": round(max(f["p50_us"] for f in figures) / 1000, 2),
        "p95_ms": round(max(f["p95_us"] for f in figures) / 1000, 2),
    }


def report(result: dict[str, Any]) -> None:
    """The table, one line per variant."""
    cfg = result["config"]
    print(
        f"POST /webhook, {cfg['connections']} connections in all, {cfg['duration_s']} s each, "
        f"distinct signed requests, Dockerfile gunicorn, {cfg['cpus']} CPUs"
    )
    print(f"  {'variant':<22} {'req/s':>8} {'p50 ms':>7} {'p95 ms':>7}")
    for variant in VARIANTS:
        m = result["variants"][variant]
        print(
            f"  {variant:<22} {m['requests_per_s']:>8.0f} {m['p50_ms']:>7.1f} {m['p95_ms']:>7.1f}"
        )
    print("  (two bots: throughput summed, p50/p95 the larger of the two bots')")


def main(argv: list[str]) -> int:
    """Exit 0 once measured, 2 when it could not measure."""
    args = parse_args(argv)

    def measure() -> dict[str, dict[str, Any]]:
        variants: dict[str, dict[str, Any]] = {}
        with tempfile.TemporaryDirectory(prefix="bench-redis-") as tmp:
            redis, url = start_redis(Path(tmp))
            try:
                for variant in VARIANTS:
                    variants[variant] = load_bots(variant, args, url, Path(tmp))
            finally:
                redis.kill()
                redis.wait(5)
        return variants

    variants = measured_or_exit_code(measure, tools=("wrk", "redis-server"))
    if isinstance(variants, int):
        return variants
    result = {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "config": {
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "cpus": os.cpu_count(),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        },
        "variants": variants,
    }
    report(result)
    path = write_result("webhook-redis", result)
    print(f"  results {path.relative_to(BENCH_DIR.parent)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
