#!/usr/bin/env bash
# Requests per Notion sync, 6 gates x 3 environments, at the real pace (bench/notion_sync.py).
set -euo pipefail
cd "$(dirname "$0")/.."
exec "${PYTHON:-.venv/bin/python}" bench/notion_sync.py "$@"
