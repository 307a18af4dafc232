"""What summary.md and report.html both read off a result: a gate's own reason, a check's files
and failed tests."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from checks.interface import CheckResult, Status
from opsctl.results import GateResult

REPORTS = "reports/"


def own_reason(gate: GateResult) -> str:
    """The gate's reason, or '' when its checks' rows already say it: a check's own reason
    ('CHECK: its reason'), or a passed gate's count of its rows ('4 checks passed')."""
    if gate.checks and gate.status is Status.PASS:
        return ""
    return "" if repeats_a_check(gate, gate.checks) else gate.reason


def repeats_a_check(gate: GateResult, shown: Iterable[CheckResult]) -> bool:
    """Whether the gate's reason is only one of the `shown` checks' own ('CHECK: its reason'),
    which its row already says."""
    return gate.reason in {f"{check.check_id}: {check.reason}" for check in shown}


def reports_named(check: CheckResult, files: Iterable[str]) -> list[str]:
    """The bundle's reports that the check's reason or hint names ('see tests-report.html in
    the evidence'), as paths in the bundle."""
    text = f"{check.reason}\n{check.hint}"
    named = []
    for path in files:
        if not path.startswith(REPORTS):
            continue
        name = re.escape(path.removeprefix(REPORTS))
        if re.search(rf"(?<![\w.-]){name}(?![\w.-])", text):
            named.append(path)
    return named


def check_files(
    gate_id: str, check: CheckResult, transcripts: Mapping[str, str], files: Sequence[str]
) -> list[tuple[str, str]]:
    """(label, path in the bundle) for a check's row: its transcript, the reports it wrote, then
    any other report its reason or hint names."""
    links = []
    transcript = transcripts.get(f"{gate_id}/{check.check_id}")
    if transcript:
        links.append(("transcript", transcript))
    written = [REPORTS + name for name in check.reports if REPORTS + name in files]
    named = [path for path in reports_named(check, files) if path not in written]
    links += [(path.removeprefix(REPORTS), path) for path in [*written, *named]]
    return links


def failed_tests(check: CheckResult) -> tuple[list[tuple[str, str]], int]:
    """([(test id, first line of its failure)], how many more failed) from the tests check's
    details; nothing for any other check."""
    named: Any = check.details.get("failed_tests") or []
    more: Any = check.details.get("failed_tests_more") or 0
    listed = [
        (str(item.get("test", "")), str(item.get("message", "")))
        for item in named
        if isinstance(item, Mapping)
    ]
    return listed, int(more) if isinstance(more, int) else 0
