#!/usr/bin/env bash
# Concurrency of opsctl verify against a target that delays every answer (bench/verify_concurrency.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/verify_concurrency.py "$@"
