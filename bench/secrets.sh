#!/usr/bin/env bash
# The secret gate against `detect-secrets scan` over the same files with the same plugins
# (its built-ins and our detectors, -p checks/secret_plugins.py). `opsctl check secrets
# --fresh` reads every file, as the CLI does; without --fresh it reads only files it has not
# seen (the usual case). Bar (issue 17): each <= 1.0x the CLI, the median of paired ratios of
# interleaved rounds (bench/secret_scan.py: fair on a shared machine). Usage: bench/secrets.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/secret_scan.py "$@"
