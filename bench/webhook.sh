#!/usr/bin/env bash
# Benchmark POST /webhook with wrk (see bench/README.md). Usage: bench/webhook.sh [--duration 15]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/webhook.py "$@"
