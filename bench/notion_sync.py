"""Requests per `opsctl notion sync` for 6 gates x N environments (--envs), at the configured pace.

Runs the real command (a subprocess, the repository's opsctl.toml: 3 requests per second)
against the tests' fake Notion API, which counts requests and enforces Notion's average
limit of 3 per second with a small burst (a 429 with Retry-After beyond it). Phases: init,
the first sync, a sync with nothing new, a sync after one gate of one environment changed.
Bars: the no-change sync sends its queries only (the upsert floor: no schema read, the schemas
are kept since init; no write), the one-gate change patches one Gates row and the environment's
phase row (and makes the new run's row), no 429 reaches the user (every command exits 0), and no
1-second window holds more than 3 requests.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from datetime import datetime
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # for tests.fakes

from checks.interface import Status  # noqa: E402
from evidence.bundle import BundleInputs, EvidenceWriter  # noqa: E402
from opsctl.results import GateResult, RunResult  # noqa: E402
from tests.fakes.notion_api import FakeNotion, Recorded  # noqa: E402

GATES = ("P2.1", "P2.2", "P2.3", "P2.4", "P2.5", "P2.6")
ENVS = ("local", "render", "staging")


def env_names(count: int) -> tuple[str, ...]:
    """The three configured environments, or `count` made-up ones (render always among them)."""
    if count == len(ENVS):
        return ENVS
    return ("render", *(f"env{i:02d}" for i in range(1, count)))


def bundle(root: Path, env: str, started: str, failing: str = "") -> None:
    gates = tuple(
        GateResult(
            g, f"gate {g}", True, Status.FAIL if g == failing else Status.PASS, "seen", (), (), 1.0
        )
        for g in GATES
    )
    run = RunResult(env, f"https://{env}.example.org", started, 9.0, gates)
    when = datetime.fromisoformat(started)
    EvidenceWriter(root, now=lambda: when).write(BundleInputs(run, "bench", "0000000", started), [])


def schema_reads(requests: list[Recorded]) -> int:
    """Reads of a database or of its schema (GET /v1/databases/..., /v1/data_sources/...)."""
    return sum(
        r.method == "GET" and r.path.startswith(("/v1/databases/", "/v1/data_sources/"))
        for r in requests
    )


def queries(requests: list[Recorded]) -> int:
    """Queries of a data source's rows."""
    return sum(r.method == "POST" and r.path.endswith("/query") for r in requests)


def busiest_second(requests: list[Recorded]) -> int:
    """The most requests that started within any 1-second window."""
    times = sorted(r.at for r in requests)
    best, start = 0, 0
    for end, at in enumerate(times):
        while at - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", type=int, default=3, help="the fake's token-bucket burst")
    parser.add_argument(
        "--limit",
        type=float,
        default=3.0,
        help="the fake's sustained rate limit (below 3, Notion answers 429s the sync must absorb)",
    )
    parser.add_argument("--envs", type=int, default=3, help="environments with a bundle each")
    args = parser.parse_args()
    failures = []
    with tempfile.TemporaryDirectory() as tmp, FakeNotion() as fake:
        folder = Path(tmp)
        config = folder / "opsctl.toml"
        config.write_text((REPO_ROOT / "opsctl.toml").read_text())
        for env in env_names(args.envs):
            bundle(folder / "evidence-out", env, "2026-11-20T10:00:00+00:00")
        print(f"{args.envs} environment(s) x {len(GATES)} gates")
        fake.rate_limit(per_second=args.limit, burst=args.burst)
        environ = {**os.environ, "NOTION_TOKEN": fake.token, "NOTION_BASE_URL": fake.url}
        common = ["--config", str(config), "--env-file", "/dev/null"]
        opsctl = [str(Path(sys.executable).with_name("opsctl"))]

        def phase(name: str, *argv: str) -> list[Recorded]:
            """Run one opsctl command; print its requests; return them all."""
            fake.clear_requests()
            done = subprocess.run(
                [*opsctl, *argv, *common], env=environ, capture_output=True, text=True, check=False
            )
            requests = list(fake.requests)
            writes = [r for r in fake.writes() if r.status < 300]
            creates = sum(r.method == "POST" for r in writes)
            reads = sum(r.status < 300 for r in requests) - len(writes)
            limited = sum(r.status == 429 for r in requests)
            span = (requests[-1].at - requests[0].at) if len(requests) > 1 else 0.0
            print(
                f"{name:<16} exit {done.returncode}  {len(requests):>3} requests "
                f"({reads:>2} reads: {schema_reads(requests):>2} of a schema, "
                f"{queries(requests):>2} queries; {len(writes):>2} writes: "
                f"{creates:>2} creates, {len(writes) - creates} patches)  "
                f"{limited} refused with 429  busiest 1 s window {busiest_second(requests)}  "
                f"{span:5.1f} s  {(len(requests) - 1) / span if span else 0:.2f} req/s"
            )
            if done.returncode != 0:
                failures.append(f"{name}: exit {done.returncode}: {done.stderr.strip()}")
            if busiest_second(requests) > 3:
                failures.append(f"{name}: more than 3 requests in one second")
            return requests

        phase("init", "notion", "init", "--parent", fake.add_page("Clara ops"))
        phase("first sync", "notion", "sync")
        unchanged = phase("no-change sync", "notion", "sync")
        floor = queries(unchanged)
        print(
            f"  (no-change sync: {len(unchanged)} requests against the upsert floor of "
            f"{floor} queries, one per database per 50 keys: ratio "
            f"{len(unchanged) / floor if floor else float('inf'):.1f}, bar 1.0)"
        )
        if len(unchanged) != floor:
            failures.append(
                f"the no-change sync sent {len(unchanged) - floor} requests besides its "
                f"{floor} queries ({schema_reads(unchanged)} schema reads)"
            )
        bundle(folder / "evidence-out", "render", "2026-11-21T10:00:00+00:00", failing="P2.3")
        changed = phase("one-gate change", "notion", "sync", "--env", "render")
        patches = [r for r in changed if r.method == "PATCH" and r.status < 300]
        if len(patches) != 2:
            failures.append(f"the one-gate change patched {len(patches)} rows, not 2")
        print(
            "  (the one-gate change comes with a new run: its Runs row is the one create; the "
            "patches are the gate and the phase row)"
        )
    for failure in failures:
        print(f"FAILED: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
