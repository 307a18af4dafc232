"""What the `notion` commands and `verify --notion` do: connect, init, turn runs into rows, sync."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from evidence.store import BundleInfo, list_bundles, resolve
from opsctl.config import Config
from opsctl.files import write_atomically
from opsctl.notion import rows
from opsctl.notion.gateway import (
    NotionError,
    NotionGateway,
    NotionSetupError,
    Pacing,
    SharedPacer,
    notion_client,
    pace_file,
)
from opsctl.notion.kept import KeptSchemas
from opsctl.notion.outbox import Outbox, Refused, RowChange
from opsctl.notion.rows import run_changes as run_changes
from opsctl.notion.sync import Database, NotionSync, SyncReport
from opsctl.notion.team import configured_tables

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
        sync.kept.drop()  # init reads every schema; one it cannot read must not be used later
        databases = {}
        for table in configured_tables(config.notion).values():
            database, done = sync.ensure(
                table,
                parent,
                config.notion.database_id(table.name),
                config.notion.property_ids.get(table.name, {}),
            )
            ids[f"{table.name}_database"] = database.database_id
            databases[table.name] = database
            lines.append(f"{table.title}: {database.database_id} ({done})")
        linked = sync.link(databases)  # relations and rollups: every database exists now
        columns.update({name: dict(db.layout.ids) for name, db in linked.items()})
        lines += sync.notes
        store_ids(config.path, {"parent": parent, **ids}, columns)
        # Kept for the settings just written: the next sync sends its queries only.
        sync.keep(linked, {name: (db.database_id, columns[name]) for name, db in linked.items()})
    lines.append(f"saved the database ids and their columns' ids in {config.path} [notion]")
    return lines


def store_ids(
    path: Path, values: Mapping[str, str], property_ids: Mapping[str, Mapping[str, str]]
) -> None:
    """Write keys into opsctl.toml's [notion] table, and property_ids.<database>.<column> =
    <id> in place of those stored before, keeping every comment and the layout: one read of
    the file, one atomic write of both."""
    import tomllib

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
    if "property_ids" in table:
        del table["property_ids"]
    # tomlkit re-validates (deep-copies) a table's dotted keys at each one added: forty-odd
    # ids one by one took 0.4 s of CPU, most of `notion init`. So one marker key goes where
    # the ids belong, and its line becomes theirs, each key and value written by tomlkit.
    marker = f"opsctl-property-ids-{uuid.uuid4().hex}"
    _add_before_trailing(table, marker, "")
    lines = [
        f"{tomlkit.key(['property_ids', name, column]).as_string()} = "
        f"{tomlkit.string(property_id).as_string()}"
        for name, ids in property_ids.items()
        for column, property_id in ids.items()
    ]
    text = tomlkit.dumps(document).replace(f'{marker} = ""\n', "".join(f"{x}\n" for x in lines))
    # The splice must say exactly what was meant: the ids, and nothing else moved.
    written = tomllib.loads(text)["notion"]
    if marker in text or written.get("property_ids", {}) != property_ids:
        raise RuntimeError(f"writing the column ids into {path} went wrong; nothing was written")
    write_atomically(path, text)


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
    """The configured databases, their schemas checked (and missing columns added), or as kept
    from the last read for the same settings (kept.py: no request)."""
    databases = {}
    for table in configured_tables(config.notion).values():
        database_id = config.notion.database_id(table.name)
        if not database_id:
            raise NotionSetupError(
                f"{config.path}: [notion] {table.name}_database is not set; "
                "fix: run opsctl notion init --parent PAGE_ID"
            )
        databases[table.name] = sync.open(
            table, database_id, config.notion.property_ids.get(table.name, {})
        )
    linked = sync.link(databases)
    sync.keep(linked)
    return linked


def evidence_link(config: Config, bundle: Path) -> str:
    """Where the PMO can open the run's report: the published copy, or '' (never a file://
    path: it opens only on the machine that ran the sync)."""
    return rows.evidence_link(config.notion.evidence_url, bundle.name)


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
    kept = KeptSchemas(outbox.schema_path, outbox.files_locked)
    checked = [f"{name} {at}" for name, at in kept.checked()]
    if checked:
        lines.append(
            f"Notion schemas last read: {', '.join(checked)} (kept in {kept.path}; read again "
            "by opsctl notion init, or by a sync when Notion refuses a change on them)"
        )
    else:
        lines.append("no Notion schema kept: the next sync reads them")
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
