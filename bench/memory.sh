#!/usr/bin/env bash
# The bot's resident memory, idle and after 10,000 signed webhooks (bench/memory.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/memory.py "$@"
