"""summary.md: the verdict, then each gate as the phase plan tables it (criterion to evidence)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from urllib.parse import quote

from checks.interface import CheckResult
from evidence.formats.shared import check_files, failed_tests, own_reason
from evidence.signoffs import Signoff
from opsctl.results import GateResult, RunResult


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace("|", "\\|")
        .replace("\n", " ")
        .strip()
    )


def signoff_section(signoffs: Sequence[Signoff]) -> list[str]:
    """The 'Sign-offs and waivers' table (summary.md and PHASE-STATUS.md), or nothing."""
    if not signoffs:
        return []
    lines = [
        "## Sign-offs and waivers",
        "",
        "| Gate | What | By | When | Why |",
        "|---|---|---|---|---|",
    ]
    for entry in signoffs:
        what = f"signed: {entry.item}" if entry.kind == "sign" else "waived (DOCUMENTED-BLOCKED)"
        lines.append(
            f"| {entry.gate} | {_cell(what)} | {_cell(entry.by)} | {entry.at} | "
            f"{_cell(entry.note)} |"
        )
    return [*lines, ""]


def _done_when(check: CheckResult, definitions: Mapping[str, str]) -> str:
    if check.check_id.startswith("manual: "):
        return "signed off by a person (`opsctl gate sign`)"
    return definitions.get(check.check_id, "")


def _evidence(
    gate_id: str,
    check: CheckResult,
    transcripts: Mapping[str, str],
    files: Sequence[str],
) -> str:
    """The Evidence cell: the reason (once), the hint, then the files."""
    parts = [_cell(check.reason)]
    if check.hint and check.status.meaning.shows_hint:
        parts.append(f"hint: {_cell(check.hint)}")
    text = " — ".join(parts)
    links = " ".join(
        f"[{_cell(label)}]({quote(path)})"
        for label, path in check_files(gate_id, check, transcripts, files)
    )
    return f"{text} {links}".strip()


def _failed_tests(gate: GateResult) -> list[str]:
    """A list under the gate's table: each failed test of its checks, runnable as named."""
    lines = []
    for check in gate.checks:
        tests, more = failed_tests(check)
        if not tests:
            continue
        lines += [f"Failed tests of *{_cell(check.title)}* ({len(tests) + more}):", ""]
        for test, message in tests:
            why = f": {_cell(message)}" if message else ""
            lines.append(f"- `{_code(test)}`{why}")
        if more:
            lines.append(f"- and {more} more")
        lines.append("")
    return lines


def _code(text: str) -> str:
    """Text for a code span: a backtick would end it (pytest ids have none, but a name may)."""
    return text.replace("`", "'")


def render_summary(
    run: RunResult,
    definitions: Mapping[str, str],
    evidence_links: Mapping[str, str],
    signoffs: Sequence[Signoff] = (),
    outcome: str = "completed",
    files: Sequence[str] = (),
    made_by: str = "",
) -> str:
    """The bundle's summary.md. `evidence_links` maps 'GATE/CHECK' to its transcript in the
    bundle; `files` are the bundle's other files (the reports a check names are linked);
    `made_by` names the tool's version and the project's commit."""
    lines = [f"# Verification of `{run.env}`", "", f"**{run.verdict}**", ""]
    if outcome != "completed":
        lines += [f"> This run was **{outcome}**: the results below are incomplete.", ""]
    lines += [
        f"- Target: {run.target or '-'}",
        f"- Started: {run.started_at}, took {run.duration_s:.1f}s",
        *([f"- Made by: {made_by}"] if made_by else []),
        "",
    ]
    for gate in run.gates:
        kind = "blocking" if gate.blocking else "advisory"
        lines += [f"## {gate.gate_id} {gate.title} ({kind}): {gate.status.value}", ""]
        if len(gate.attempts) > 1:
            tries = ", ".join(f"{a.number}: {a.status.value}" for a in gate.attempts)
            lines += [f"Attempts: {tries}.", ""]
        reason = own_reason(gate)
        if reason:
            lines += [_cell(reason), ""]
        if not gate.checks:
            continue
        lines += ["| Criterion | Definition of done | Status | Evidence |", "|---|---|---|---|"]
        for check in gate.checks:
            lines.append(
                f"| {_cell(check.title)} | {_cell(_done_when(check, definitions))} | "
                f"{check.status.value}, {check.duration_s:.2f}s | "
                f"{_evidence(gate.gate_id, check, evidence_links, files)} |"
            )
        lines.append("")
        lines += _failed_tests(gate)
    lines += signoff_section(signoffs)
    return "\n".join(lines)
