#!/usr/bin/env bash
# The bot's POST /webhook beside a minimal Flask app under the same gunicorn (bench/README.md).
# Usage: bench/webhook_floor.sh [--rounds 3] [--duration 10]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/webhook_floor.py "$@"
