"""Benchmark POST /webhook: the Dockerfile's gunicorn on loopback, loaded by wrk, signed forms."""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx
from make_requests import (
    SignedRequest,
    bot_env,
    build_requests,
    write_lua,
)

from opsctl.devserver import DevServer, DevServerError

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUR_P95_MS, RUNBOOK_P95_MS, RUNBOOK_ERROR_PCT = 50.0, 800.0, 1.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
T = TypeVar("T")


class BenchError(Exception):
    """The benchmark could not measure a working bot; the message says what went wrong."""


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    add_load_options(parser, duration_s=15)
    parser.add_argument(
        "--requests", type=int, help="distinct requests to prepare (30000, or 2000 a second)"
    )
    args = parser.parse_args(argv)
    args.requests = args.requests or max(30_000, 2_000 * args.duration)
    return args


def add_load_options(parser: argparse.ArgumentParser, duration_s: int) -> None:
    """The wrk load every webhook benchmark takes: duration, connections, threads, verbosity."""
    parser.add_argument(
        "--duration", type=int, default=duration_s, help=f"seconds of load each ({duration_s})"
    )
    parser.add_argument("--connections", type=int, default=50, help="concurrent connections (50)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (2)")
    parser.add_argument("--verbose", action="store_true", help="also print wrk's own output")


def wait_for_health(url: str, server: DevServer, budget: float = 30.0) -> None:
    """Return once GET /health answers 200; raise if the bot dies or stays unhealthy."""
    deadline = time.monotonic() + budget
    last = "no answer"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise BenchError("gunicorn exited: " + " | ".join(server.lines[-3:]))
        try:
            response = httpx.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text.strip()}"
        except httpx.HTTPError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise BenchError(f"GET /health did not answer 200 within {budget:g}s: {last}")


def check_bot_answers(url: str, probe: SignedRequest) -> None:
    """One signed request must get 200 TwiML; unsigned and mis-signed ones must get 403."""
    response = httpx.post(
        f"{url}/webhook",
        content=probe.body,
        headers={**FORM, "X-Twilio-Signature": probe.signature},
        timeout=10,
    )
    if response.status_code != 200 or "<Body>" not in response.text:
        raise BenchError(f"signed request got {response.status_code}: {response.text[:200]!r}")
    # One character changed: "x" in place of the first, unless it is one (1 signature in 64).
    wrong = ("y" if probe.signature.startswith("x") else "x") + probe.signature[1:]
    for label, headers in (
        ("unsigned", FORM),
        ("mis-signed", {**FORM, "X-Twilio-Signature": wrong}),
    ):
        response = httpx.post(f"{url}/webhook", content=probe.body, headers=headers, timeout=10)
        if response.status_code != 403:
            raise BenchError(f"{label} request got {response.status_code}, expected 403")


def run_wrk(url: str, data: Path, args: argparse.Namespace) -> tuple[list[str], dict[str, float]]:
    """Run wrk with bench/webhook.lua; return its command and the BENCH figures it printed."""
    command = [
        "wrk",
        "--latency",
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{args.duration}s",
        "-s",
        str(BENCH_DIR / "webhook.lua"),
        f"{url}/webhook",
        "--",
        str(data),
        str(args.threads),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=args.duration + 120, check=False
    )
    if args.verbose:
        print(done.stdout, done.stderr, sep="")
    figures = {m[1]: float(m[2]) for m in re.finditer(r"^BENCH (\w+)=([\d.]+)$", done.stdout, re.M)}
    if done.returncode != 0 or "requests" not in figures:
        raise BenchError(f"wrk failed (exit {done.returncode}): {done.stderr or done.stdout}")
    return command, figures


def server_counts(url: str) -> dict[str, int]:
    """What the bot itself counted: /webhook responses by status, and repeated MessageSids."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    counts: dict[str, int] = {}
    for m in re.finditer(r"^clara_http_requests_total\{(.*)\} ([\d.e+]+)$", text, re.M):
        if 'route="/webhook"' in m[1]:
            status = re.search(r'status="(\d+)"', m[1])
            counts[f"status_{status[1] if status else '?'}"] = int(float(m[2]))
    duplicates = re.search(r"^clara_webhook_duplicates_total ([\d.e+]+)$", text, re.M)
    counts["duplicates"] = int(float(duplicates[1])) if duplicates else -1
    return counts


def summarise(figures: dict[str, float]) -> dict[str, Any]:
    """Milliseconds, requests/s, errors and both verdicts from wrk's figures."""
    requests = int(figures["requests"])
    errors = {k[7:]: int(v) for k, v in figures.items() if k.startswith("errors_")}
    error_count = sum(errors.values())
    error_pct = 100.0 * error_count / max(requests, 1)
    p95 = figures["p95_us"] / 1000
    return {
        **{f"{p}_ms": round(figures[f"{p}_us"] / 1000, 2) for p in ("p50", "p95", "p99", "mean")},
        "max_ms": round(figures["max_us"] / 1000, 2),
        "requests": requests,
        "requests_per_s": round(requests / (figures["duration_us"] / 1e6), 1),
        "errors": errors,
        "error_count": error_count,
        "error_rate_pct": round(error_pct, 3),
        "distinct_requests_ran_out": bool(figures["wrapped"]),
        "verdicts": {
            "ours": {
                "bar": "p95 <= 50 ms and 0 errors",
                "pass": p95 <= OUR_P95_MS and not error_count,
            },
            "runbook": {
                "bar": "p95 < 800 ms and < 1 % errors",
                "pass": p95 < RUNBOOK_P95_MS and error_pct < RUNBOOK_ERROR_PCT,
            },
        },
    }


def print_report(result: dict[str, Any], path: Path) -> None:
    """The short human-readable report."""
    r, cfg = result["results"], result["config"]
    verdict = {True: "PASS", False: "FAIL"}
    print(
        f"POST /webhook: {cfg['connections']} connections, {cfg['duration_s']} s, "
        f"{cfg['wrk_threads']} wrk threads; Dockerfile gunicorn, LOG_LEVEL=WARNING"
        + (f", GUNICORN_CMD_ARGS={cfg['gunicorn_cmd_args']!r}" if cfg["gunicorn_cmd_args"] else "")
    )
    ms = "   ".join(f"{p} {r[p + '_ms']:.1f} ms" for p in ("p50", "p95", "p99"))
    print(f"  latency     {ms}")
    print(f"  throughput  {r['requests_per_s']:.1f} requests/s ({r['requests']} requests)")
    detail = ", ".join(f"{k} {v}" for k, v in r["errors"].items())
    print(f"  errors      {r['error_count']} ({r['error_rate_pct']:.2f} %): {detail}")
    server = result["server"]
    statuses = ", ".join(f"{k[7:]} x{v}" for k, v in server.items() if k.startswith("status_"))
    print(
        f"  bot counted {statuses} (with the probes); repeated MessageSids {server['duplicates']}"
    )
    if r["distinct_requests_ran_out"]:
        print("  warning     wrk ran out of distinct requests and repeated some: raise --requests")
    for name, label in (("ours", "our bar    "), ("runbook", "runbook bar")):
        v = r["verdicts"][name]
        print(f"  {label} {v['bar']}: {verdict[v['pass']]}")
    print(f"  results     {path.relative_to(REPO_ROOT)}")


def git_commit() -> str:
    """The checked-out commit, or 'unknown'."""
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "unknown"


def benchmark(args: argparse.Namespace) -> dict[str, Any]:
    """Start the bot, check it answers, load it with wrk, stop it; return the result record."""
    token = secrets.token_hex(16)
    env = bot_env(os.environ, token)
    probe, *load = build_requests(token, args.requests + 1)
    load_before = os.getloadavg()
    server = DevServer(env, port=0)
    try:
        url = server.start()
        wait_for_health(url, server)
        check_bot_answers(url, probe)
        with tempfile.TemporaryDirectory(prefix="bench-webhook-") as tmp:
            data = Path(tmp) / "requests.lua"
            write_lua(load, data)
            lines_before = len(server.lines)
            command, figures = run_wrk(url, data, args)
        counts = server_counts(url)
        server_log = server.lines[lines_before:]
    finally:
        server.stop()
    if counts["duplicates"]:
        raise BenchError(f"the bot saw {counts['duplicates']} repeated MessageSids")
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "command": command,
        "config": {
            "duration_s": args.duration,
            "connections": args.connections,
            "wrk_threads": args.threads,
            "distinct_requests": args.requests,
            "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
            "log_level": "WARNING",
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in load_before],
        },
        "results": summarise(figures),
        "server": counts,
        "server_log_during_load": server_log[-20:],
    }


def measured_or_exit_code(measure: Callable[[], T], tools: Sequence[str] = ("wrk",)) -> T | int:
    """Run `measure` as every webhook benchmark does: its result, or the exit code of why not
    (2 when a tool is missing or the bot or wrk did not work, one line on stderr; 130 on Ctrl-C
    or SIGTERM, which stop gunicorn too, even when started where SIGINT is ignored)."""
    for tool in tools:
        if shutil.which(tool) is None:
            print(f"bench: {tool} is not installed (apt-get install {tool})", file=sys.stderr)
            return 2
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        return measure()
    except (BenchError, DevServerError, httpx.HTTPError) as exc:
        print(f"bench: FAIL: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130


def write_result(name: str, result: dict[str, Any]) -> Path:
    """Keep a run as bench/results/NAME-<UTC timestamp>.json; its path."""
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = result["timestamp"].replace("-", "").replace(":", "")
    path = results_dir / f"{name}-{stamp}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path


def main(argv: list[str]) -> int:
    """Exit 0 when our bar passes, 1 when it does not, 2 when the bot or wrk did not work."""
    args = parse_args(argv)
    result = measured_or_exit_code(lambda: benchmark(args))
    if isinstance(result, int):
        return result
    path = write_result("webhook", result)
    print_report(result, path)
    return 0 if result["results"]["verdicts"]["ours"]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
