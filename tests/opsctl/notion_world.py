"""A project synced to the fake Notion API as `opsctl notion init` and `opsctl notion sync` do:
bundles written, the real planner and sync, and what Notion then holds, read as a person would."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import tomlkit

from checks.interface import CheckResult, Status
from evidence.bundle import BundleInputs, EvidenceWriter
from evidence.signoffs import Ledger
from opsctl.config import Config, load_config
from opsctl.notion.rows import changes_to_send, completed_runs, record_sent
from opsctl.notion.service import init, push
from opsctl.notion.sync import SyncReport
from opsctl.results import GateResult, RunResult
from tests.conftest import config_copy
from tests.fakes.notion_api import FakeNotion
from tests.fakes.notion_view import databases, render_page, render_rows, title_of
from tests.opsctl.test_notion import GATE_TITLES, connect

RUNS, GATES, PHASE = "opsctl runs", "opsctl gates", "opsctl phase"


@dataclass
class World:
    """A project folder (opsctl.toml, evidence-out/, the ledger) and the fake Notion it syncs to."""

    fake: FakeNotion
    path: Path
    parent: str = ""

    def config(self) -> Config:
        """opsctl.toml as it stands."""
        from checks.registry import CHECKS

        return load_config(self.path, CHECKS)

    def edit(self, change: Mapping[str, Any]) -> None:
        """Set keys of opsctl.toml: {"notion.evidence_url": "...", 'gates."P2.1".owner': ...}."""
        document = tomlkit.parse(self.path.read_text())
        for dotted, value in change.items():
            *tables, key = [part.strip('"') for part in _split(dotted)]
            table: Any = document
            for name in tables:
                table = table[name]
            table[key] = value
        self.path.write_text(tomlkit.dumps(document))

    def init(self) -> list[str]:
        """`opsctl notion init` under a fresh parent page."""
        self.parent = self.parent or self.fake.add_page("Clara ops")
        return init(connect(self.config(), self.fake), self.config(), self.parent)

    def run(
        self,
        env: str,
        started: str,
        statuses: Mapping[str, Status] | None = None,
        checks: Mapping[str, Sequence[CheckResult]] | None = None,
        **reasons: str,
    ) -> str:
        """Write a completed bundle of a run of every gate; returns its name."""
        gates = tuple(
            GateResult(
                gate_id,
                title,
                True,
                (statuses or {}).get(gate_id, Status.PASS),
                reasons.get(gate_id.replace(".", "_"), f"{title}: all good"),
                checks=tuple((checks or {}).get(gate_id, ())),
                duration_s=1.25,
            )
            for gate_id, title in GATE_TITLES.items()
        )
        run = RunResult(env, f"https://{env}.example.org", started, 12.5, gates)
        when = datetime.fromisoformat(started)
        ledger = Ledger(self.config().evidence.signoffs).entries()
        inputs = BundleInputs(run, "0.1.0", "abc1234", ended_at=started, signoffs=ledger)
        return EvidenceWriter(self.config().evidence.dir, now=lambda: when).write(inputs, []).name

    def sign(self, gate: str, item: str, by: str, at: str, note: str = "") -> None:
        """A sign-off in the ledger, at a given time."""
        Ledger(self.config().evidence.signoffs, now=lambda: at).append("sign", gate, by, item, note)

    def sync(self, secrets: Sequence[str] = ()) -> SyncReport:
        """`opsctl notion sync`: every run not sent yet, then the state."""
        config = self.config()
        sync = connect(config, self.fake)
        changes = changes_to_send(config, completed_runs(config, config.evidence.dir), secrets)
        report = push(config, changes, sync)
        record_sent(config, changes, sync.outbox)
        return report

    def rows(self, database: str) -> dict[str, dict[str, Any]]:
        """A database's rows by title: their properties as Notion returns them, plus `id`."""
        rows = databases(self.fake, self.parent)[database]
        return {title_of(r): {**r["properties"], "id": r["id"]} for r in rows}

    def page(self, database: str, title: str) -> str:
        """The page content of the row with this title, as text."""
        return render_page(self.fake, self.rows(database)[title]["id"])

    def view(self, columns: Mapping[str, Sequence[str]] | None = None) -> str:
        """Every database's rows, as text."""
        return render_rows(self.fake, self.parent, columns or {})


def _split(dotted: str) -> list[str]:
    """'gates."P2.1".owner' -> ['gates', '"P2.1"', 'owner'] (dots inside quotes kept)."""
    parts, current, quoted = [], "", False
    for char in dotted:
        if char == '"':
            quoted = not quoted
        if char == "." and not quoted:
            parts.append(current)
            current = ""
            continue
        current += char
    return [*parts, current]


def world(tmp_path: Path, fake: FakeNotion) -> World:
    """A copy of the repository's opsctl.toml with a fast pace, not yet initialised."""
    path = config_copy(tmp_path)
    made = World(fake, path)
    made.edit({"notion.requests_per_second": 100, "notion.timeout_s": 2})
    return made


def text(prop: Mapping[str, Any]) -> str:
    """A property's value as text (a select's name, a date's start, a relation's ids)."""
    kind = prop["type"]
    value = prop.get(kind)
    if kind in ("title", "rich_text"):
        return "".join(item["plain_text"] for item in value or [])
    if kind == "select":
        return str(value["name"]) if value else ""
    if kind == "date":
        return str(value["start"]) if value else ""
    if kind == "relation":
        return ",".join(sorted(item["id"] for item in value or []))
    if kind == "rollup":
        inner = value.get(value["type"])
        return str(inner.get("start", "")) if isinstance(inner, dict) else str(inner)
    return "" if value is None else str(value)
