"""JSON, schema `opsctl.verify/v1` (evidence/schemas/verify-v1.json): the run as data."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from checks.interface import CheckResult
from opsctl.results import GateResult, RunResult, Verdict

SCHEMA_ID = "opsctl.verify/v1"
ENVIRONMENTS_SCHEMA_ID = "opsctl.verify-envs/v1"
"""`verify` over several environments: the overall verdict, and each run as opsctl.verify/v1."""


def _check(result: CheckResult) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": result.check_id,
        "title": result.title,
        "status": result.status.value,
        "reason": result.reason,
        "hint": result.hint,
        "duration_s": result.duration_s,
        "details": dict(result.details),
    }
    if result.reports:  # added within v1: absent when the check wrote none
        data["reports"] = list(result.reports)
    return data


def _gate(gate: GateResult) -> dict[str, Any]:
    return {
        "id": gate.gate_id,
        "title": gate.title,
        "blocking": gate.blocking,
        "status": gate.status.value,
        "reason": gate.reason,
        "duration_s": gate.duration_s,
        "checks": [_check(c) for c in gate.checks],
        "attempts": [
            {"number": a.number, "status": a.status.value, "checks": [_check(c) for c in a.checks]}
            for a in gate.attempts
        ],
    }


def as_data(run: RunResult) -> dict[str, Any]:
    """The run as JSON-ready data."""
    verdict = run.judgement
    return {
        "schema": SCHEMA_ID,
        "env": run.env,
        "target": run.target,
        "started_at": run.started_at,
        "duration_s": run.duration_s,
        "verdict": {"line": verdict.line, "exit_code": int(verdict.exit_code)},
        "scope": {
            "partial": run.scope.partial,
            "only": list(run.scope.only),
            "skip": list(run.scope.skip),
            "not_run": list(run.scope.not_run),
        },
        "gates": [_gate(g) for g in run.gates],
    }


def environments_data(runs: Sequence[RunResult], verdict: Verdict) -> dict[str, Any]:
    """Several environments' runs as one JSON-ready document: the overall verdict where a single
    run has its own (`.verdict.exit_code` is the exit code either way), then every run whole."""
    return {
        "schema": ENVIRONMENTS_SCHEMA_ID,
        "envs": [run.env for run in runs],
        "verdict": {"line": verdict.line, "exit_code": int(verdict.exit_code)},
        "runs": [as_data(run) for run in runs],
    }


def render_environments(runs: Sequence[RunResult], verdict: Verdict) -> str:
    """environments_data as pretty JSON with a trailing newline."""
    return json.dumps(environments_data(runs, verdict), indent=2, ensure_ascii=False) + "\n"


def render_json(run: RunResult) -> str:
    """Pretty JSON with a trailing newline."""
    return json.dumps(as_data(run), indent=2, ensure_ascii=False) + "\n"
