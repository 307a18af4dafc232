#!/usr/bin/env bash
# POST /webhook with the in-process store, with Redis, and two bots behind one Redis
# (bench/README.md). Needs wrk and redis-server. Usage: bench/webhook_redis.sh [--duration 10]
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/webhook_redis.py "$@"
