#!/usr/bin/env bash
# opsctl verify over 1, 5 and 20 slow environments at once (bench/verify_envs.py): 20 under 2x one.
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/verify_envs.py "$@"
