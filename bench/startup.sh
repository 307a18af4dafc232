#!/usr/bin/env bash
# Start-up: `opsctl --version` against `python -c "import click"`; the bar is a ratio <= 1.5.
# Needs hyperfine (apt-get install hyperfine). Usage: bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
py=.venv/bin/python
mkdir -p bench/results
out=bench/results/startup-$(date -u +%Y%m%dT%H%M%SZ).json
hyperfine --warmup 5 --runs "$runs" --export-json "$out" \
  --command-name "opsctl --version" ".venv/bin/opsctl --version" \
  --command-name "python -c 'import click'" "$py -c 'import click'" >/dev/null
"$py" - "$out" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
opsctl, click = results["opsctl --version"], results["python -c 'import click'"]
ratio = opsctl["median"] / click["median"]
print(f"opsctl --version:        median {opsctl['median'] * 1000:.1f} ms")
print(f"python -c 'import click': median {click['median'] * 1000:.1f} ms")
print(f"ratio {ratio:.2f} (bar: <= 1.5) -> {'PASS' if ratio <= 1.5 else 'FAIL'}")
print(f"raw timings: {sys.argv[1]}")
sys.exit(0 if ratio <= 1.5 else 1)
PY
