"""The secret gate against `detect-secrets scan` on the same files, in interleaved rounds."""

# Each round runs detect-secrets' CLI (its built-ins and our detectors, -p
# checks/secret_plugins.py), `opsctl check secrets --fresh` (reads every file, as the CLI does)
# and `opsctl check secrets` (reads only files it has not seen: the usual case), in an order
# that alternates from round to round. On a shared 2-core machine a burst of load lands on one
# round, not on one command's whole block (hyperfine's way): the ratio of each round is paired,
# and the bar (issue 17: <= 1.0 each) applies to the median of those ratios.

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
BAR = 1.0
THEIRS = "detect-secrets scan"
OURS = ("opsctl check secrets --fresh", "opsctl check secrets")


def commands(files: list[str]) -> dict[str, list[str]]:
    """What each name runs; -i is not needed: the gate's exit code is read, never judged."""
    opsctl = str(BIN / "opsctl")
    return {
        THEIRS: [str(BIN / "detect-secrets"), "scan", "-p", "checks/secret_plugins.py", *files],
        OURS[0]: [opsctl, "check", "secrets", "--fresh"],
        OURS[1]: [opsctl, "check", "secrets"],
    }


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (its processes' user + system) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, cwd=ROOT, stdout=subprocess.DEVNULL, check=False, timeout=600)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(rounds: int) -> int:
    """Run the rounds, print medians, ratios and the bar; 1 when a bar is missed."""
    sys.path.insert(0, str(ROOT))
    from checks.secrets import files_to_scan

    files = files_to_scan(ROOT)
    print(f"files: {len(files)}; {rounds} interleaved rounds")
    runs = commands(files)
    for argv in runs.values():  # warm-up: disk cache, and the result cache ours reads
        timed(argv)
    walls: dict[str, list[float]] = {name: [] for name in runs}
    cpus: dict[str, list[float]] = {name: [] for name in runs}
    names = list(runs)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            wall, cpu = timed(runs[name])
            walls[name].append(wall)
            cpus[name].append(cpu)
    theirs = statistics.median(walls[THEIRS])
    print(f"{THEIRS + ':':<30} median {theirs:.2f} s (CPU {statistics.median(cpus[THEIRS]):.2f} s)")
    ok = True
    for name in OURS:
        ratio = statistics.median(
            ours / their for ours, their in zip(walls[name], walls[THEIRS], strict=True)
        )
        ok &= ratio <= BAR
        print(
            f"{name + ':':<30} median {statistics.median(walls[name]):.2f} s "
            f"(CPU {statistics.median(cpus[name]):.2f} s), ratio {ratio:.2f} "
            f"(median of paired rounds; bar: <= {BAR}) -> {'PASS' if ratio <= BAR else 'FAIL'}"
        )
    out = ROOT / "bench" / "results" / f"secrets-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"files": len(files), "wall_s": walls, "cpu_s": cpus}, indent=1))
    print(f"raw timings: {out.relative_to(ROOT)}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 9))
