#!/usr/bin/env bash
# Start-up against `python -c "import click"` (the floor of any click CLI), medians of one
# hyperfine run: `opsctl --version` and `opsctl --help` (bar <= 1.5x), `opsctl gates`, which
# loads opsctl.toml (bar <= 2x; issue 17). Needs hyperfine. Usage: bench/startup.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-40}
py=.venv/bin/python
mkdir -p bench/results
out=bench/results/startup-$(date -u +%Y%m%dT%H%M%SZ).json
# As on any installed machine: bytecode written (PYTHONDONTWRITEBYTECODE would have every
# run compile the changed modules again), and this opsctl.toml's schema check remembered.
"$py" -m compileall -q opsctl checks bot evidence >/dev/null
.venv/bin/opsctl gates >/dev/null
hyperfine -N --warmup 5 --runs "$runs" --export-json "$out" \
  --command-name "python -c 'import click'" "$py -c 'import click'" \
  --command-name "opsctl --version" ".venv/bin/opsctl --version" \
  --command-name "opsctl --help" ".venv/bin/opsctl --help" \
  --command-name "opsctl gates" ".venv/bin/opsctl gates" >/dev/null
"$py" - "$out" <<'PY'
import json, sys
results = {r["command"]: r for r in json.load(open(sys.argv[1]))["results"]}
click = results["python -c 'import click'"]["median"]
print(f"python -c 'import click': median {click * 1000:.1f} ms")
ok = True
for name, bar in (("opsctl --version", 1.5), ("opsctl --help", 1.5), ("opsctl gates", 2.0)):
    median = results[name]["median"]
    ratio = median / click
    ok &= ratio <= bar
    verdict = "PASS" if ratio <= bar else "FAIL"
    print(f"{name + ':':<25} median {median * 1000:.1f} ms, ratio {ratio:.2f} (bar: <= {bar}) -> {verdict}")
print(f"raw timings: {sys.argv[1]}")
sys.exit(0 if ok else 1)
PY
