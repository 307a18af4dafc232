"""What the `notion` commands and `verify --notion` do: connect, init, turn runs into rows, sync."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from evidence.redact import Redactor
from evidence.store import BundleInfo, gates_run, list_bundles, resolve
from opsctl.config import Config
from opsctl.files import write_atomically
from opsctl.notion.gateway import (
    NotionError,
    NotionGateway,
    NotionSetupError,
    Pacing,
    SharedPacer,
    notion_client,
    pace_file,
)
from opsctl.notion.outbox import Outbox, Refused, RowChange
from opsctl.notion.schema import GATES, RUNS, TABLES
from opsctl.notion.sync import Database, NotionSync, SyncReport

TOKEN_VARIABLE = "NOTION_TOKEN"  # noqa: S105 - the variable's name, not its value
BASE_URL_VARIABLE = "NOTION_BASE_URL"


def notion_token(environ: Mapping[str, str]) -> str:
    """The integration token, or one line saying how to provide it."""
    token = environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        raise NotionSetupError(
            f"{TOKEN_VARIABLE} is not set; fix: export {TOKEN_VARIABLE}=<the internal "
            "integration secret from notion.so/profile/integrations> (or put it in .env)"
        )
    return token


def connect(config: Config, environ: Mapping[str, str], pacer: Pacing | None = None) -> NotionSync:
    """A NotionSync on notion-client, aimed at api.notion.com or NOTION_BASE_URL, paced with
    every other opsctl process of the same integration on this machine."""
    settings = config.notion
    token = notion_token(environ)
    client = notion_client(token, environ.get(BASE_URL_VARIABLE) or None, settings.timeout_s)
    shared = SharedPacer(pace_file(token, environ), rate=settings.requests_per_second)
    gateway = NotionGateway(client, pacer or shared)
    return NotionSync(gateway, Outbox(settings.outbox))


def init(
    sync: NotionSync,
    config: Config,
    parent: str,
    on_wait: Callable[[str], None] | None = None,
) -> list[str]:
    """Find, make or repair both databases under `parent`; store their ids and their columns'
    property ids in opsctl.toml. Holds the sender's lock: two inits would make four databases."""
    name = sync.whoami()
    lines = [f"integration: {name}"]
    ids: dict[str, str] = {}
    columns: dict[str, dict[str, str]] = {}
    with sync.outbox.sending(None, on_wait):
        for table in (GATES, RUNS):
            database, done = sync.ensure(
                table,
                parent,
                config.notion.database_id(table.name),
                config.notion.property_ids.get(table.name, {}),
            )
            ids[f"{table.name}_database"] = database.database_id
            columns[table.name] = dict(database.layout.ids)
            lines.append(f"{table.title}: {database.database_id} ({done})")
        store_ids(config.path, parent=parent, **ids)
        store_property_ids(config.path, columns)
    lines.append(f"saved the database ids and their columns' ids in {config.path} [notion]")
    return lines


def store_ids(path: Path, **values: str) -> None:
    """Write keys into opsctl.toml's [notion] table, keeping every comment and the layout."""
    import tomlkit

    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    if "notion" not in document:
        document.add(tomlkit.nl())
        document["notion"] = tomlkit.table()
    table: Any = document["notion"]
    for key, value in values.items():
        if key in table:
            table[key] = value
        else:
            _add_before_trailing(table, key, value)
    write_atomically(path, tomlkit.dumps(document))


def store_property_ids(path: Path, columns: Mapping[str, Mapping[str, str]]) -> None:
    """Write [notion] property_ids.<database>.<column> = <id>, replacing those stored before."""
    import tomlkit

    document = tomlkit.parse(path.read_text(encoding="utf-8"))
    table: Any = document["notion"]
    if "property_ids" in table:
        del table["property_ids"]
    for name, ids in columns.items():
        for column, property_id in ids.items():
            _add_before_trailing(table, tomlkit.key(["property_ids", name, column]), property_id)
    write_atomically(path, tomlkit.dumps(document))


def _add_before_trailing(table: Any, key: Any, value: Any) -> None:
    """Add `key` after the table's last value, not after the comments that end it (they
    introduce what comes next in the file)."""
    body = table.value.body
    trailing: list[Any] = []
    while body and body[-1][0] is None:  # comments and blank lines have no key
        trailing.insert(0, body.pop())
    table.add(key, value)
    body.extend(trailing)


def open_databases(sync: NotionSync, config: Config) -> dict[str, Database]:
    """The configured databases, their schemas checked (and missing columns added)."""
    databases = {}
    for table in TABLES.values():
        database_id = config.notion.database_id(table.name)
        if not database_id:
            raise NotionSetupError(
                f"{config.path}: [notion] {table.name}_database is not set; "
                "fix: run opsctl notion init --parent PAGE_ID"
            )
        databases[table.name] = sync.open(
            table, database_id, config.notion.property_ids.get(table.name, {})
        )
    return databases


def run_changes(
    data: Mapping[str, Any], run_id: str, evidence_link: str, secrets: Iterable[str]
) -> list[RowChange]:
    """One Gates row per gate and one Runs row, from a run's data (run.json), secrets redacted."""
    redactor = Redactor(secrets)
    env, started = str(data["env"]), str(data["started_at"])

    def clean(values: dict[str, Any]) -> dict[str, Any]:
        return {k: redactor.redact(v) if isinstance(v, str) else v for k, v in values.items()}

    rows = [
        RowChange(
            GATES.name,
            redactor.redact(f"{env}/{gate['id']}"),
            clean(
                {
                    "Gate": f"{gate['id']} {gate['title']}",
                    "Environment": env,
                    "Status": gate["status"],
                    "Last run": started,
                    "Duration": round(float(gate.get("duration_s", 0.0)), 2),
                    "Blocking": bool(gate.get("blocking", True)),
                    "Reason": gate.get("reason", ""),
                    "Evidence": evidence_link or None,
                }
            ),
            started,
        )
        for gate in gates_run(data)  # a gate left out by --only/--skip keeps its row as it is
    ]
    counts: dict[str, int] = {}
    for gate in data.get("gates", []):
        counts[gate["status"]] = counts.get(gate["status"], 0) + 1
    line = str(data.get("verdict", {}).get("line", ""))
    verdict = line.split(":")[0] if data.get("outcome", "completed") == "completed" else ""
    rows.append(
        RowChange(
            RUNS.name,
            redactor.redact(run_id),
            clean(
                {
                    "Environment": env,
                    "Verdict": verdict or "INTERRUPTED",
                    "Summary": line,
                    "Started": started,
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
                    "Evidence": evidence_link or None,
                }
            ),
            started,
        )
    )
    return rows


def evidence_link(config: Config, bundle: Path) -> str:
    """Where the PMO can open the run's report: the published copy, else the file on disk."""
    if config.notion.evidence_url:
        return f"{config.notion.evidence_url}/{bundle.name}/report.html"
    return (bundle.resolve() / "report.html").as_uri()


def push(
    config: Config,
    new: list[RowChange],
    sync: NotionSync | None = None,
    environ: Mapping[str, str] | None = None,
    wait_s: float | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> SyncReport:
    """Queue `new` (on disk before anything can fail), then send the queue to Notion.

    Whatever fails (no token, Notion down, a wrong column), the queue stays in the outbox and
    the report says why. `sync` defaults to one built from `environ` (NOTION_TOKEN...).
    Another process sending is waited for at most `wait_s` (None: as long as it takes).
    """
    outbox = sync.outbox if sync is not None else Outbox(config.notion.outbox)
    outbox.add(new)
    try:
        sync = sync or connect(config, environ or {})
        databases = open_databases(sync, config)
    except NotionError as error:
        report = SyncReport(pending=len(outbox.pending()), error=str(error))
        report.exit_code = error.exit_code
        if sync is not None:
            report.notes = list(sync.notes)
            report.count(sync.gateway)
        return report
    return sync.sync(databases, wait_s, on_wait)


def status_lines(outbox: Outbox) -> list[str]:
    """What waits for Notion and what Notion refused (with why): `opsctl notion status`."""
    pending, refused = outbox.pending(), outbox.refused()
    lines = [f"{len(pending)} change(s) waiting in {outbox.path}"]
    lines += [f"  {_row(c)}{_unconfirmed(c)}" for c in pending]
    if refused:
        lines.append(
            f"{len(refused)} change(s) refused by Notion, set aside in {outbox.refused_path} "
            "(fix the cause, then: opsctl notion sync --retry-refused):"
        )
        lines += [f"  {_row(r.change)}: refused {r.at}: {_why(r)}" for r in refused]
    else:
        lines.append("nothing refused by Notion")
    return lines


def _row(change: RowChange) -> str:
    return f"{change.table} {change.key} (run of {change.as_of})"


def _unconfirmed(change: RowChange) -> str:
    if not change.unconfirmed_create:
        return ""
    return f", its create of {change.unconfirmed_create} unanswered: waiting to see it land"


def _why(refused: Refused) -> str:
    return refused.why if refused.code in refused.why else f"{refused.code}: {refused.why}"


def newest_bundles(root: Path, env_names: Iterable[str], ref: str | None) -> list[BundleInfo]:
    """The bundle named by `ref`, or the newest bundle of each environment (or of those named)."""
    wanted = set(env_names)
    if ref:
        bundle = resolve(root, ref)
        if bundle.outcome != "completed":
            raise NotionSetupError(
                f"bundle {bundle.name} is {bundle.outcome}: it is never synced; "
                "fix: name a completed bundle, or run opsctl verify again"
            )
        if wanted and bundle.env not in wanted:
            raise NotionSetupError(
                f"bundle {bundle.name} is for {bundle.env}, not {', '.join(sorted(wanted))}; "
                "fix: drop --env or name a bundle of that environment"
            )
        return [bundle]
    newest: dict[str, BundleInfo] = {}
    for bundle in list_bundles(root):  # newest first
        if bundle.outcome != "completed":
            continue  # an interrupted run is evidence of nothing: it is never pushed
        if (not wanted or bundle.env in wanted) and bundle.env not in newest:
            newest[bundle.env] = bundle
    missing = sorted(wanted - set(newest))
    if missing:
        raise NotionSetupError(
            f"no completed evidence bundle for {missing[0]} under {root}; "
            f"fix: run opsctl verify --env {missing[0]}"
        )
    return list(newest.values())
