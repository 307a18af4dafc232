#!/usr/bin/env bash
# The keep-alive daemon under /usr/bin/time for a minute (bench/warmup.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/warmup.py "$@"
