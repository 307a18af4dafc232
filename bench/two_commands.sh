#!/usr/bin/env bash
# The README's two commands, timed: `make run` without a reusable test result (first), `make run`
# again with nothing changed (the tests gate reuses its pass: the same as `make run` after
# `make test`, which keeps the pass it ran), and `make test`; optionally the
# same commands in another checkout (BEFORE, e.g. a `git worktree` of an older commit with its
# own .venv) in the same hyperfine run, so the ratios come from one measurement.
# Needs hyperfine (apt-get install hyperfine) and the venv (`make test` builds it).
# Usage: bench/two_commands.sh [RUNS] [BEFORE_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
before=${2:-}
mkdir -p bench/results
out=bench/results/two-commands-$(date -u +%Y%m%dT%H%M%SZ).json
make --quiet .venv/.installed-from-lock
# hyperfine takes one --prepare per command (or one for all): `true` where nothing is needed.
commands=(
  --command-name "make run (first)" --prepare "rm -rf .opsctl/cache" "make --quiet run"
  --command-name "make run (again)" --prepare "make --quiet run >/dev/null" "make --quiet run"
  --command-name "make test" --prepare true "make --quiet test"
)
if [ -n "$before" ]; then
  commands+=(
    --command-name "make run (before)" --prepare true "make --quiet -C $before run"
    --command-name "make test (before)" --prepare true "make --quiet -C $before test"
  )
fi
hyperfine --runs "$runs" --export-json "$out" --output=null "${commands[@]}" >/dev/null
.venv/bin/python - "$out" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
for name, r in results.items():
    print(f"{name:20} median {r['median']:7.1f} s  (min {r['min']:.1f}, max {r['max']:.1f})")
def ratio(a, b):
    if a in results and b in results:
        print(f"{a} / {b}: {results[a]['median'] / results[b]['median']:.2f}")
ratio("make run (again)", "make run (first)")
ratio("make test", "make test (before)")
ratio("make run (first)", "make run (before)")
print(f"raw timings: {sys.argv[1]}")
PY
