"""The bot's resident memory under the Dockerfile's gunicorn: idle, after N webhooks, holding M."""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from make_requests import SignedRequest, bot_env, build_requests
from webhook import BenchError, check_bot_answers, git_commit, wait_for_health

from opsctl.devserver import DevServer, DevServerError

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
FREE_TIER_MB = 512  # Render's free instance (docs/twilio-render-schedule.md)


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10_000, help="signed webhooks (10000)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive clients (8)")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds idle before reading")
    parser.add_argument(
        "--hold", type=int, default=0, help="then hold this many slow webhook bodies open (0)"
    )
    return parser.parse_args(argv)


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) from /proc/<pid>/status and Pss from smaps_rollup, in kB.

    Master and worker share the pages they had at fork: their RSS double-counts them, the sum
    of their Pss does not (the kernel splits each shared page between its users)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="ascii")
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    out = {"rss_kb": int(fields["VmRSS"].split()[0]), "hwm_kb": int(fields["VmHWM"].split()[0])}
    rollup = Path(f"/proc/{pid}/smaps_rollup")
    if rollup.exists():
        for line in rollup.read_text(encoding="ascii").splitlines():
            if line.startswith("Pss:"):
                out["pss_kb"] = int(line.split()[1])
    return out


def children_of(pid: int) -> list[int]:
    """The direct children of `pid` (gunicorn's workers)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        # The command name in parentheses may hold spaces: the ppid is the 2nd field after it.
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


def snapshot(master: int) -> dict[str, Any]:
    """Memory of the master and each worker, and the total Pss in MB."""
    workers = {str(pid): memory_kb(pid) for pid in children_of(master)}
    record: dict[str, Any] = {"master": memory_kb(master), "workers": workers}
    pss = [record["master"].get("pss_kb", 0)] + [w.get("pss_kb", 0) for w in workers.values()]
    record["total_pss_mb"] = round(sum(pss) / 1024, 1)
    return record


def send_all(host: str, port: int, requests: list[SignedRequest], connections: int) -> int:
    """POST every request over `connections` keep-alive connections; return how many got 200."""
    ok = [0] * connections
    errors: list[str] = []

    def client(index: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            for request in requests[index::connections]:
                conn.request(
                    "POST",
                    "/webhook",
                    body=request.body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": request.signature,
                    },
                )
                response = conn.getresponse()
                response.read()
                ok[index] += response.status == 200
        except (OSError, http.client.HTTPException) as exc:
            errors.append(repr(exc))
        finally:
            conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise BenchError(f"{len(errors)} client(s) failed, first: {errors[0]}")
    return sum(ok)


def hold_slow_bodies(host: str, port: int, count: int) -> list[socket.socket]:
    """`count` connections that each sent a signed webhook's headers and a little of its body.

    A connection waiting for the rest of its body is the costliest kind to hold: the app has
    begun the request (the body's deadline, bot/serving.py, ends it; measure before that)."""
    head = (
        "POST /webhook HTTP/1.1\r\nHost: bench\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        "X-Twilio-Signature: AAAA\r\nContent-Length: 60000\r\n\r\nBody=a"
    ).encode("ascii")
    held = []
    for _ in range(count):
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(head)
        held.append(sock)
    return held


def measure(args: argparse.Namespace) -> dict[str, Any]:
    """Start the bot, read its memory idle, load it, read it again, stop it."""
    token = secrets.token_hex(16)
    env = bot_env(os.environ, token)
    probe, *load = build_requests(token, args.requests + 1)
    server = DevServer(env, port=0)
    try:
        url = server.start()
        wait_for_health(url, server)
        check_bot_answers(url, probe)
        time.sleep(args.settle)
        master = server.process.pid
        idle = snapshot(master)
        host, port = url.removeprefix("http://").rsplit(":", 1)
        started = time.monotonic()
        answered = send_all(host, int(port), load, args.connections)
        elapsed = time.monotonic() - started
        time.sleep(args.settle)
        loaded = snapshot(master)
        holding = None
        if args.hold:
            held = hold_slow_bodies(host, int(port), args.hold)
            time.sleep(args.settle)
            holding = snapshot(master)
            for sock in held:
                sock.close()
    finally:
        server.stop()
    if answered != len(load):
        raise BenchError(f"only {answered} of {len(load)} webhooks got 200")
    return {
        "timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "commit": git_commit(),
        "config": {
            "requests": args.requests,
            "connections": args.connections,
            "hold": args.hold,
            "gunicorn_cmd_args": os.environ.get("GUNICORN_CMD_ARGS", ""),
        },
        "idle": idle,
        "after_requests": loaded,
        "holding_slow_bodies": holding,
        "load_seconds": round(elapsed, 1),
    }


def print_report(result: dict[str, Any], path: Path) -> None:
    """One line per moment: master and worker RSS, and their total Pss against 512 MB."""
    print(
        f"bot memory: Dockerfile gunicorn, {result['config']['requests']} signed webhooks "
        f"over {result['config']['connections']} connections ({result['load_seconds']} s)"
    )
    moments = [
        ("idle", "idle"),
        (f"after {result['config']['requests']}", "after_requests"),
        (f"holding {result['config']['hold']}", "holding_slow_bodies"),
    ]
    for label, key in moments:
        record = result[key]
        if record is None:
            continue
        workers = ", ".join(
            f"worker {w['rss_kb'] / 1024:.1f} MB (peak {w['hwm_kb'] / 1024:.1f})"
            for w in record["workers"].values()
        )
        print(
            f"  {label:<12} master {record['master']['rss_kb'] / 1024:.1f} MB, {workers}; "
            f"total Pss {record['total_pss_mb']} MB of {FREE_TIER_MB}"
        )
    print(f"  results      {path.relative_to(REPO_ROOT)}")


def main(argv: list[str]) -> int:
    """Exit 0 when measured, 2 when the bot could not be measured."""
    args = parse_args(argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        result = measure(args)
    except (BenchError, DevServerError, OSError) as exc:
        print(f"bench: FAIL: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    results_dir = BENCH_DIR / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = result["timestamp"].replace("-", "").replace(":", "")
    path = results_dir / f"memory-{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print_report(result, path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
