"""summary.md: the verdict, then each gate as the phase plan tables it (criterion to evidence)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from checks.interface import CheckResult
from evidence.signoffs import Signoff
from opsctl.results import RunResult


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


def render_summary(
    run: RunResult,
    definitions: Mapping[str, str],
    evidence_links: Mapping[str, str],
    signoffs: Sequence[Signoff] = (),
    outcome: str = "completed",
) -> str:
    """The bundle's summary.md. `evidence_links` maps 'GATE/CHECK' to a path in the bundle."""
    lines = [f"# Verification of `{run.env}`", "", f"**{run.verdict}**", ""]
    if outcome != "completed":
        lines += [f"> This run was **{outcome}**: the results below are incomplete.", ""]
    lines += [
        f"- Target: {run.target or '-'}",
        f"- Started: {run.started_at}, took {run.duration_s:.1f}s",
        "",
    ]
    for gate in run.gates:
        kind = "blocking" if gate.blocking else "advisory"
        lines += [f"## {gate.gate_id} {gate.title} ({kind}): {gate.status.value}", ""]
        if len(gate.attempts) > 1:
            tries = ", ".join(f"{a.number}: {a.status.value}" for a in gate.attempts)
            lines += [f"Attempts: {tries}.", ""]
        if not gate.checks:
            lines += [_cell(gate.reason), ""]
            continue
        lines += ["| Criterion | Definition of done | Status | Evidence |", "|---|---|---|---|"]
        for check in gate.checks:
            link = evidence_links.get(f"{gate.gate_id}/{check.check_id}", "")
            evidence = f"[transcript]({link})" if link else _cell(check.reason)
            lines.append(
                f"| {_cell(check.title)} | {_cell(_done_when(check, definitions))} | "
                f"{check.status.value}: {_cell(check.reason)} | {evidence} |"
            )
        lines.append("")
    lines += signoff_section(signoffs)
    return "\n".join(lines)
