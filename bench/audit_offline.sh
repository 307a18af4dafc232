#!/usr/bin/env bash
# The offline dependency audit of both lock files against the whole advisory folder.
# Bar: under 2 s for the whole command. Needs hyperfine. Usage: bench/audit_offline.sh [DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-../shared/advisories}
runs=${2:-10}
[ -d "$dir" ] || { echo "no advisories at $dir: pass the folder as the first argument"; exit 2; }
echo "advisories: $(find "$dir" -name '*.yaml' | wc -l) files; pins: $(cat requirements/*.txt | grep -c '==')"
mkdir -p bench/results
out=bench/results/audit-offline-$(date -u +%Y%m%dT%H%M%SZ).json
hyperfine --warmup 1 --runs "$runs" --export-json "$out" \
  --command-name "opsctl check deps --advisories" \
  ".venv/bin/opsctl check deps --advisories $dir" >/dev/null
.venv/bin/python - "$out" <<'PY'
import json, sys
result = json.load(open(sys.argv[1]))["results"][0]
median = result["median"]
print(f"opsctl check deps (offline): median {median:.2f} s, max {result['max']:.2f} s")
print(f"bar: under 2 s -> {'PASS' if median < 2 else 'FAIL'}")
sys.exit(0 if median < 2 else 1)
PY
