#!/usr/bin/env bash
# The secret gate (`opsctl check secrets`) against `detect-secrets scan` over the same files.
# Bar: ratio of medians <= 1.2. Needs hyperfine. Usage: bench/secrets.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
py=.venv/bin/python
list=$(mktemp)
trap 'rm -f "$list"' EXIT
"$py" -c 'from pathlib import Path; from checks.secrets import files_to_scan
print("\n".join(files_to_scan(Path("."))))' > "$list"
echo "files: $(wc -l < "$list")"
mkdir -p bench/results
out=bench/results/secrets-$(date -u +%Y%m%dT%H%M%SZ).json
hyperfine --warmup 1 --runs "$runs" --export-json "$out" \
  --command-name "opsctl check secrets" ".venv/bin/opsctl check secrets" \
  --command-name "detect-secrets scan" "xargs -a $list .venv/bin/detect-secrets scan >/dev/null" >/dev/null
"$py" - "$out" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
ours, theirs = r["opsctl check secrets"]["median"], r["detect-secrets scan"]["median"]
print(f"opsctl check secrets: median {ours:.2f} s")
print(f"detect-secrets scan:  median {theirs:.2f} s")
print(f"ratio {ours / theirs:.2f} (bar: <= 1.2) -> {'PASS' if ours / theirs <= 1.2 else 'FAIL'}")
sys.exit(0 if ours / theirs <= 1.2 else 1)
PY
