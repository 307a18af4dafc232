"""What each Notion row should hold, from the evidence bundles: every run, each gate's status
since the run that set it, and the phase of each environment."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence.phase_status import CLOSED
from evidence.redact import Redactor
from evidence.signoffs import Ledger, Signoff, signed_items, waiver_of
from evidence.store import gates_run, list_bundles
from opsctl.config import Config, Gate
from opsctl.files import write_atomically
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.notion.pages import gate_page, run_page, version
from opsctl.notion.schema import GATES, PHASE, RUNS


@dataclass(frozen=True)
class Run:
    """One completed verification run: its key (the bundle's name), run.json, its public link."""

    key: str
    data: Mapping[str, Any]
    link: str = ""
    """Where the published report is ('' when bundles are not published)."""

    @property
    def env(self) -> str:
        """The environment it verified."""
        return str(self.data["env"])

    @property
    def started(self) -> str:
        """When it started (ISO 8601)."""
        return str(self.data["started_at"])


@dataclass(frozen=True)
class Context:
    """What rows need beside the runs: opsctl.toml's gates, the sign-offs, the phase's name."""

    gates: Mapping[str, Gate] = field(default_factory=dict)
    signoffs: Sequence[Signoff] = ()
    phase: str = ""
    """The phase's name; '' writes no phase rows."""
    streaks: bool = True
    """The runs given are their environments' history: a gate's Set by names the first run of
    its status's streak. Without it (one run alone) Set by is not claimed."""


@dataclass(frozen=True)
class GateState:
    """One gate of one environment after a run: as the newest run saw it, since which run."""

    set_by: Run
    """The first run of the current streak of this status: the one that set it."""
    first: Mapping[str, Any]
    """The gate as that run recorded it (status, reason, duration)."""
    last: Run
    """The newest run that ran it."""

    @property
    def status(self) -> str:
        """PASS, FAIL..."""
        return str(self.first["status"])


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def evidence_link(evidence_url: str, bundle: str) -> str:
    """The published report of a bundle, or '' when bundles are not published (a file:// path
    on the machine that ran the sync opens nowhere else)."""
    return f"{evidence_url.rstrip('/')}/{bundle}/report.html" if evidence_url else ""


def completed_runs(config: Config, root: Path) -> list[Run]:
    """Every completed bundle under `root`, oldest first (an interrupted run proves nothing)."""
    bundles = [b for b in list_bundles(root) if b.outcome == "completed"]
    return [
        Run(b.name, b.data, evidence_link(config.notion.evidence_url, b.name))
        for b in sorted(bundles, key=lambda b: (_instant(b.started_at), b.name))
    ]


def context_of(config: Config, signoffs: Sequence[Signoff]) -> Context:
    """The context opsctl.toml and the ledger give."""
    return Context(dict(config.gates), tuple(signoffs), config.notion.phase)


# --- the changes --------------------------------------------------------------------------------


def planned_changes(
    runs: Sequence[Run], unsent: Iterable[str], secrets: Iterable[str], context: Context
) -> list[RowChange]:
    """Per environment, oldest first: each unsent run's row, then the gates it ran and the phase
    as they stood after it. An environment with nothing unsent has its gates and phase queued as
    they stand (a sync then only reads them, and puts right what a person changed)."""
    wanted, changes = set(unsent), []
    for env_runs in _by_env(runs).values():
        state: dict[str, GateState] = {}
        sent_any = False
        for run in env_runs:
            ran = _advance(state, run)
            if run.key in wanted:
                changes += [_run_row(run, context), *_state_rows(run, state, ran, context)]
                sent_any = True
        if not sent_any:
            changes += _state_rows(env_runs[-1], state, list(state), context)
    redactor = Redactor(secrets)
    return [_redacted(change, redactor) for change in changes]


def run_changes(
    data: Mapping[str, Any], run_id: str, link: str, secrets: Iterable[str]
) -> list[RowChange]:
    """One run's row and its gates' rows, from its data alone (no history, no phase)."""
    run = Run(run_id, data, link)
    return planned_changes([run], [run_id], secrets, Context(streaks=False))


def _by_env(runs: Sequence[Run]) -> dict[str, list[Run]]:
    found: dict[str, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (_instant(r.started), r.key)):
        found.setdefault(run.env, []).append(run)
    return found


def _advance(state: dict[str, GateState], run: Run) -> list[str]:
    """Take in one run's gates (those it ran); returns their ids."""
    ran = []
    for gate in gates_run(run.data):  # a gate left out by --only/--skip keeps its state
        before = state.get(gate["id"])
        if before is not None and before.status == gate["status"]:
            state[gate["id"]] = GateState(before.set_by, before.first, run)
        else:
            state[gate["id"]] = GateState(run, gate, run)
        ran.append(str(gate["id"]))
    return ran


def _redacted(change: RowChange, redactor: Redactor) -> RowChange:
    return replace(
        change,
        key=redactor.redact(change.key),
        values=redactor.redact_data(dict(change.values)),
        page=redactor.redact(change.page),  # JSON text: the JSON-escaped forms go too
    )


def _run_row(run: Run, context: Context) -> RowChange:
    data, counts = run.data, _counts(run.data)
    line = str(data.get("verdict", {}).get("line", ""))
    verdict = line.split(":")[0] if data.get("outcome", "completed") == "completed" else ""
    gate_keys = [f"{run.env}/{g['id']}" for g in gates_run(data)]
    values = {
        "Environment": run.env,
        "Verdict": verdict or "INTERRUPTED",
        "Summary": line,
        "Started": run.started,
        "Duration": round(float(data.get("duration_s", 0.0)), 2),
        "Exit code": data.get("verdict", {}).get("exit_code"),
        "Passed": counts.get("PASS", 0),
        "Warnings": counts.get("WARN", 0),
        "Failed": counts.get("FAIL", 0),
        "Errors": counts.get("ERROR", 0),
        "Skipped": counts.get("SKIP", 0),
        "Blocked": counts.get("BLOCKED", 0) + counts.get("DOCUMENTED-BLOCKED", 0),
        "Git commit": data.get("git_commit", ""),
        "Target": data.get("target", ""),
        "Evidence": run.link or None,
        "Gates": gate_keys,
    }
    return RowChange(
        RUNS.name, run.key, values, run.started, page=_json(run_page(data, run.key, run.link))
    )


def _counts(data: Mapping[str, Any]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for gate in data.get("gates", []):
        counts[gate["status"]] = counts.get(gate["status"], 0) + 1
    return counts


def _state_rows(
    run: Run, state: Mapping[str, GateState], ran: Sequence[str], context: Context
) -> list[RowChange]:
    """The rows of the gates in `ran` (in the plan's order: a gate after those it needs), then
    the phase, as they stand after `run`."""
    order = list(context.gates)
    ids = sorted(ran, key=lambda g: (order.index(g) if g in order else len(order), g))
    rows = [_gate_row(run.env, g, state[g], context) for g in ids]
    if context.phase:
        rows.append(_phase_row(run, state, context))
    return rows


def _gate_row(env: str, gate_id: str, state: GateState, context: Context) -> RowChange:
    gate, first = context.gates.get(gate_id), state.first
    values: dict[str, Any] = {
        "Gate": f"{gate_id} {first.get('title', '')}".strip(),
        "Environment": env,
        "Status": state.status,
        "Since": state.set_by.started,
        "Duration": round(float(first.get("duration_s", 0.0)), 2),
        "Blocking": bool(first.get("blocking", True)),
        "Reason": first.get("reason", ""),
        "Evidence": state.set_by.link or None,
    }
    if context.streaks:
        values["Set by"] = [state.set_by.key]
    page: tuple[dict[str, Any], ...] = ()
    if gate is not None:
        page = gate_page(gate)
        values |= {
            "Needs": [f"{env}/{need}" for need in gate.needs],
            "Owner": gate.owner,
            "Criteria": ", ".join(c.id for c in gate.criteria),
            "Page version": version(page),
            **signoff_values(gate, context.signoffs),
        }
    return RowChange(GATES.name, f"{env}/{gate_id}", values, state.last.started, page=_json(page))


def _json(blocks: Sequence[Mapping[str, Any]]) -> str:
    return json.dumps(list(blocks), ensure_ascii=False) if blocks else ""


def signoff_values(gate: Gate, entries: Sequence[Signoff]) -> dict[str, Any]:
    """Sign-offs as properties: what was signed by whom and when, who signed, the latest date."""
    signed, waiver = signed_items(list(entries), gate.id), waiver_of(list(entries), gate.id)
    lines = []
    for item in gate.manual:
        entry = signed.get(item)
        note = f" ({entry.note})" if entry is not None and entry.note else ""
        lines.append(
            f"{item}: signed by {entry.by} on {entry.at}{note}" if entry else f"{item}: not signed"
        )
    if waiver is not None:
        lines.append(f"waived by {waiver.by} on {waiver.at}: {waiver.note}")
    done = [e for e in signed.values() if e.item in gate.manual] + ([waiver] if waiver else [])
    return {
        "Sign-offs": "; ".join(lines),
        "Signed by": ", ".join(sorted({e.by for e in done})),
        "Signed on": max((e.at for e in done), key=_instant, default=None),
    }


def _phase_row(run: Run, state: Mapping[str, GateState], context: Context) -> RowChange:
    """The phase of the run's environment: closed when every gate is PASS or DOCUMENTED-BLOCKED
    (checks/statuses.py: closes_phase); a gate never run keeps it open."""
    env, gates = run.env, list(context.gates.values())
    open_gates = [g for g in gates if g.id not in state or state[g.id].status not in CLOSED]
    done = len(gates) - len(open_gates)
    progress = f"{done} of {len(gates)} gates done"
    values = {
        "Phase": f"{context.phase} · {env}",
        "Environment": env,
        "State": "open" if open_gates else "closed",
        "Done": done,
        "Gates": len(gates),
        "Progress": f"{progress}: open" if open_gates else f"{progress}: closed",
        "Blocked by": [f"{env}/{g.id}" for g in open_gates if g.id in state],
        "Why open": "; ".join(_why_open(g, state.get(g.id)) for g in open_gates),
        "Last verified": run.started,
        "Last run": [run.key],
        "Evidence": run.link or None,
    }
    return RowChange(PHASE.name, f"{env}/{context.phase}", values, run.started)


def _why_open(gate: Gate, state: GateState | None) -> str:
    if state is None:
        return f"{gate.id} {gate.title}: NOT RUN"
    reason = f": {state.first.get('reason')}" if state.first.get("reason") else ""
    return f"{gate.id} {gate.title}: {state.status} since {state.set_by.started}{reason}"


# --- which runs are sent ------------------------------------------------------------------------


class SentRuns:
    """The newest run of each environment whose row Notion holds, in a file beside the outbox:
    the runs after it are the ones a sync sends (all of them, in order, not only the newest)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def marks(self) -> dict[str, str]:
        """Environment -> when its newest sent run started."""
        try:
            return dict(json.loads(self.path.read_text(encoding="utf-8")))
        except (FileNotFoundError, ValueError):
            return {}  # lost or broken: every run is queued again, found in Notion, left alone

    def unsent(self, runs: Sequence[Run]) -> list[str]:
        """The keys of the runs started after their environment's mark, oldest first."""
        marks = self.marks()
        return [
            run.key
            for run in runs
            if run.env not in marks or _instant(run.started) > _instant(marks[run.env])
        ]

    def record(self, queued: Sequence[RowChange], still_pending: Iterable[RowChange]) -> None:
        """Mark the run rows that left the outbox (sent, or set aside as refused)."""
        waiting = {(c.table, c.key) for c in still_pending}
        marks = self.marks()
        for change in queued:
            if change.table != RUNS.name or (change.table, change.key) in waiting:
                continue
            env = str(change.values.get("Environment", ""))
            if env not in marks or _instant(change.as_of) > _instant(marks[env]):
                marks[env] = change.as_of
        if marks != self.marks():
            write_atomically(self.path, json.dumps(marks, indent=1, sort_keys=True) + "\n")


def sent_runs(config: Config) -> SentRuns:
    """The record of sent runs, beside the outbox."""
    return SentRuns(config.notion.outbox.with_name("notion-sent.json"))


# --- what a sync sends ---------------------------------------------------------------------------


def changes_to_send(
    config: Config, runs: Sequence[Run], secrets: Iterable[str], only: str = ""
) -> list[RowChange]:
    """The changes for `runs` (completed, oldest first): those not sent yet, or only the one
    named, with the gates, the phase and the sign-offs as they stand."""
    unsent = [only] if only else sent_runs(config).unsent(runs)
    ledger = Ledger(config.evidence.signoffs).entries()
    return planned_changes(runs, unsent, secrets, context_of(config, ledger))


def verify_changes(config: Config, run: Run, root: Path, secrets: Iterable[str]) -> list[RowChange]:
    """After `opsctl verify --notion`: the run's environment's unsent runs, this one last (also
    when it left no bundle)."""
    earlier = [r for r in completed_runs(config, root) if r.env == run.env and r.key != run.key]
    return changes_to_send(config, [*earlier, run], secrets)


def record_sent(config: Config, queued: Sequence[RowChange], outbox: Outbox) -> None:
    """After a sync: the run rows that left the outbox are sent; the next sync starts after."""
    sent_runs(config).record(queued, outbox.pending())
