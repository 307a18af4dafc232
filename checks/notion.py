"""Notion current: both databases reachable with our columns, and no change waiting to be sent."""

from __future__ import annotations

import asyncio

from checks.interface import Check, CheckContext, CheckResult, NotionSettings, Status


class NotionCheck(Check):
    """Read-only look at the Notion databases `opsctl notion sync` keeps (it repairs nothing)."""

    id = "notion"
    title = "Notion gate status current"
    statuses = Check.statuses | {Status.WARN}
    done_when = (
        "Gates and Runs databases reachable with every column typed as expected; outbox empty"
    )
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        settings = ctx.notion
        if settings is None or not (settings.gates_database and settings.runs_database):
            return self.result(
                Status.ERROR,
                "Notion is not set up: no database ids in opsctl.toml [notion]",
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
        from opsctl.notion.gateway import NotionError, NotionGateway, Pacer, notion_client
        from opsctl.notion.outbox import Outbox
        from opsctl.notion.schema import GATES, RUNS, drift
        from opsctl.notion.sync import NotionSync

        client = notion_client(settings.token, settings.base_url or None, settings.timeout_s)
        sync = NotionSync(
            NotionGateway(client, Pacer(settings.requests_per_second)), Outbox(settings.outbox)
        )
        problems, missing = [], []
        try:
            databases = {
                table.name: sync.database(table, database_id)
                for table, database_id in (
                    (GATES, settings.gates_database),
                    (RUNS, settings.runs_database),
                )
            }
            for database in databases.values():
                found = drift(database.table, sync.properties(database))
                problems += [
                    f"{database.table.title!r} column {c.name!r} is {actual}, expected {c.type}"
                    for c, actual in found.wrong_type
                ]
                missing += [f"{database.table.title!r} {c.name}" for c in found.missing]
            rows = sync.count_rows(databases[GATES.name], "Environment", env)
        except NotionError as error:
            return self.result(Status.ERROR, str(error), "see the message; then opsctl notion init")
        pending = len(sync.outbox.pending())
        details = {"gate_rows": rows, "pending": pending, "missing_columns": missing}
        if problems:
            return self.result(
                Status.FAIL, "; ".join(problems), "fix the column types in Notion", details=details
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
        return self.result(
            Status.PASS,
            f"2 databases with every column as expected, {rows} gate row(s) for {env}, "
            "nothing waiting in the outbox",
            details=details,
        )
