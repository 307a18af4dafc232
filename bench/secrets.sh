#!/usr/bin/env bash
# The secret gate against `detect-secrets scan` over the same files with the same plugins
# (its built-ins and our detectors, -p checks/secret_plugins.py). `opsctl check secrets
# --fresh` reads every file, as the CLI does; without --fresh it reads only files it has not
# seen (the usual case). Bar (issue 17): each <= 1.0x the CLI, medians of one hyperfine run.
# Needs hyperfine. Usage: bench/secrets.sh [RUNS]
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
# -i: the gate exits 1 when it finds something; that is a result, not a failed benchmark.
hyperfine -i --warmup 1 --runs "$runs" --export-json "$out" \
  --command-name "detect-secrets scan" \
  "xargs -a $list .venv/bin/detect-secrets scan -p checks/secret_plugins.py >/dev/null" \
  --command-name "opsctl check secrets --fresh" ".venv/bin/opsctl check secrets --fresh" \
  --command-name "opsctl check secrets" ".venv/bin/opsctl check secrets" >/dev/null
"$py" - "$out" <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
theirs = r["detect-secrets scan"]
print(f"detect-secrets scan:          median {theirs:.2f} s")
ok = True
for name in ("opsctl check secrets --fresh", "opsctl check secrets"):
    ratio = r[name] / theirs
    ok &= ratio <= 1.0
    print(f"{name + ':':<30} median {r[name]:.2f} s, ratio {ratio:.2f} (bar: <= 1.0) -> "
          + ("PASS" if ratio <= 1.0 else "FAIL"))
print(f"raw timings: {sys.argv[1]}")
sys.exit(0 if ok else 1)
PY
