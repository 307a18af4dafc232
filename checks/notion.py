"""Notion current: the configured databases reachable with our columns, the environment's newest
run, its gates and its phase in them, and no change waiting to be sent."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from checks.interface import Check, CheckContext, CheckResult, NotionSettings, Status

if TYPE_CHECKING:
    from opsctl.notion.sync import Database, NotionSync

DATABASES = ("gates", "runs", "phase")


class NotionCheck(Check):
    """Read-only look at the Notion databases `opsctl notion sync` keeps (it repairs nothing)."""

    id = "notion"
    title = "Notion gate status current"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "the configured databases (ours or the team's) reachable with every column typed as "
        "expected; the newest run of the environment, its gate rows and its phase row in them; "
        "outbox empty"
    )
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        settings = ctx.notion
        ids = {} if settings is None else _database_ids(settings)
        if settings is None or not all(ids.values()):
            unset = [name for name, found in ids.items() if not found] or list(DATABASES)
            return self.result(
                Status.ERROR,
                f"Notion is not set up: no {', '.join(unset)} database id in opsctl.toml [notion]",
                "run opsctl notion init --parent PAGE_ID",
            )
        if not settings.token:
            return self.result(
                Status.ERROR,
                "NOTION_TOKEN is not set: cannot look at Notion",
                "export NOTION_TOKEN (the integration's secret) or put it in .env",
            )
        return await asyncio.to_thread(self._inspect, settings, ctx.env_name)

    def _inspect(self, settings: NotionSettings, env: str) -> CheckResult:
        from opsctl.notion.gateway import NotionError

        sync = _sync(settings)
        try:
            databases, problems, missing = _open(sync, settings)
            found = _rows_of(sync, databases, settings, env) if not problems else {}
        except NotionError as error:
            return self.result(Status.ERROR, str(error), "see the message; then opsctl notion init")
        pending = len(sync.outbox.pending())
        details = {**found, "pending": pending, "missing_columns": missing}
        if problems:
            return self.result(
                Status.FAIL, "; ".join(problems), "fix the columns in Notion", details=details
            )
        if missing or pending:
            what = [f"{pending} change(s) waiting in {settings.outbox}"] if pending else []
            what += [f"missing columns: {', '.join(missing)}"] if missing else []
            return self.result(
                Status.WARN,
                "; ".join(what),
                "run opsctl notion sync (it adds columns too)",
                details=details,
            )
        return self._judge_rows(settings, env, found, details)

    def _judge_rows(
        self, settings: NotionSettings, env: str, found: dict[str, Any], details: dict[str, Any]
    ) -> CheckResult:
        """PASS only with the newest run, gate rows and the phase row there: 0 rows is no PASS."""
        newest = settings.newest_runs.get(env, "")
        if not newest:
            return self.result(
                Status.WARN,
                f"no completed run of {env} to look for in Notion yet",
                f"run opsctl verify --env {env}, then opsctl notion sync",
                details=details,
            )
        absent = [what for what, there in _expected(newest, env, found).items() if not there]
        if absent:
            return self.result(
                Status.FAIL,
                f"Notion lacks {', '.join(absent)}",
                f"run opsctl notion sync --env {env}",
                details=details,
            )
        return self.result(
            Status.PASS,
            f"{len(DATABASES)} databases with every column as expected; the newest run of {env} "
            f"({newest}), {found['gate_rows']} gate row(s) and the phase row "
            f"({found['phase']}) are there; nothing waiting in the outbox",
            details=details,
        )


def _database_ids(settings: NotionSettings) -> dict[str, str]:
    return {
        "gates": settings.gates_database,
        "runs": settings.runs_database,
        "phase": settings.phase_database,
    }


def _sync(settings: NotionSettings) -> NotionSync:
    from opsctl.notion.gateway import NotionGateway, Pacer, notion_client
    from opsctl.notion.outbox import Outbox
    from opsctl.notion.sync import NotionSync

    client = notion_client(settings.token, settings.base_url or None, settings.timeout_s)
    return NotionSync(
        NotionGateway(client, Pacer(settings.requests_per_second)), Outbox(settings.outbox)
    )


def _open(
    sync: NotionSync, settings: NotionSettings
) -> tuple[dict[str, Database], list[str], list[str]]:
    """The databases, their columns found (read-only); retyped columns, missing columns."""
    from dataclasses import replace

    from opsctl.notion.gateway import NotionSetupError
    from opsctl.notion.links import can_exist
    from opsctl.notion.schema import TABLES, resolve
    from opsctl.notion.team import check_team, mapped

    tables = {name: mapped(TABLES[name], settings.columns.get(name, {})) for name in DATABASES}
    databases, problems, missing = {}, [], []
    for name, database_id in _database_ids(settings).items():
        table = tables[name]
        database = sync.database(table, database_id)
        source = sync.gateway.send(
            f"reading the {table.title!r} schema",
            sync.client.data_sources.retrieve,
            data_source_id=database.data_source_id,
        )
        properties = dict(source.get("properties", {}))
        pinned = dict(settings.property_ids.get(name, {}))
        if table.names:  # the team's database: every mapped column, with our type
            title = "".join(t.get("plain_text", "") for t in source.get("title", []))
            try:
                pinned = check_team(table, title or table.title, properties)
            except NotionSetupError as error:
                problems.append(str(error).split("; fix:")[0])
                continue
        layout = resolve(table, properties, pinned)
        problems += [
            f"{table.title!r} column {column.name!r} is {actual}, expected {column.type}"
            for column, _, actual in layout.retyped
        ]
        missing += [
            f"{table.title!r} {c.name}" for c in layout.missing if can_exist(table, c, tables)
        ]
        databases[name] = replace(database, layout=layout)
    return databases, problems, missing


def _rows_of(
    sync: NotionSync, databases: dict[str, Database], settings: NotionSettings, env: str
) -> dict[str, Any]:
    """What Notion holds for `env`: the newest run's row, its gate rows, its phase row."""
    newest = settings.newest_runs.get(env, "")
    runs = sync.rows_with_key(databases["runs"], "equals", newest) if newest else []
    gates = sync.rows_with_key(databases["gates"], "starts_with", f"{env}/")
    phase = sync.rows_with_key(databases["phase"], "equals", f"{env}/{settings.phase}")
    state = _phase_state(databases["phase"], phase)
    return {"run_row": bool(runs), "gate_rows": len(gates), "phase": state}


def _phase_state(database: Database, rows: list[dict[str, Any]]) -> str:
    from opsctl.notion.values import from_property

    if not rows:
        return ""
    props = database.layout.ours(rows[0])["properties"]
    table = database.table
    parts = [from_property(table.column(c), props.get(c)) for c in ("Progress",) if c in props]
    return str(parts[0]) if parts and parts[0] else "there"


def _expected(newest: str, env: str, found: dict[str, Any]) -> dict[str, bool]:
    return {
        f"the row of the newest run of {env} ({newest})": bool(found.get("run_row")),
        f"gate rows for {env} (0 found)": bool(found.get("gate_rows")),
        f"the phase row of {env}": bool(found.get("phase")),
    }
