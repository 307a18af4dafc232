"""Read the bundles under an evidence root: list, resolve, verify the manifest, prune."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from evidence.bundle import MANIFEST, PARTIAL_PREFIX, sha256_of
from evidence.phase_status import NOT_RUN, GateRow
from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode
from opsctl.results import SKIPPED_BY_REQUEST


class BundleNotFound(OpsctlError):
    """No bundle by that name."""

    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class BundleInfo:
    """What `evidence list` shows of a bundle."""

    name: str
    path: Path
    env: str
    started_at: str
    verdict: str
    outcome: str
    counts: dict[str, int]
    data: dict[str, Any]


def list_bundles(root: Path) -> list[BundleInfo]:
    """Complete bundles (with a manifest), newest first; half-written folders are hidden."""
    if not root.is_dir():
        return []
    found = []
    for folder in root.iterdir():
        if folder.name.startswith(".") or not (folder / MANIFEST).is_file():
            continue
        try:
            data = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # `evidence verify` names what is wrong with it
        counts: dict[str, int] = {}
        for gate in data.get("gates", []):
            counts[gate["status"]] = counts.get(gate["status"], 0) + 1
        found.append(
            BundleInfo(
                folder.name,
                folder,
                data.get("env", "?"),
                data.get("started_at", ""),
                data.get("verdict", {}).get("line", ""),
                data.get("outcome", "?"),
                counts,
                data,
            )
        )
    return sorted(found, key=lambda b: (b.started_at, b.name), reverse=True)


def resolve(root: Path, ref: str) -> BundleInfo:
    """'latest', a bundle's folder name, or a path to it."""
    bundles = list_bundles(root)
    if ref == "latest" and bundles:
        return bundles[0]
    for bundle in bundles:
        if ref in (bundle.name, str(bundle.path)) or Path(ref).resolve() == bundle.path.resolve():
            return bundle
    known = ", ".join(b.name for b in bundles[:5]) or "none yet: run opsctl verify"
    raise BundleNotFound(
        f"no evidence bundle {ref!r} under {root}; fix: use latest or one of: {known}"
    )


def verify_bundle(folder: Path) -> list[str]:
    """Problems with the bundle's files against its manifest ([] when intact)."""
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return [f"{MANIFEST} is missing"]
    expected: dict[str, str] = {}
    for line in manifest.read_text(encoding="utf-8").splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    actual = {
        p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p != manifest
    }
    problems = [f"missing: {name}" for name in sorted(set(expected) - actual)]
    problems += [f"added: {name}" for name in sorted(actual - set(expected))]
    problems += [
        f"changed: {name}"
        for name in sorted(set(expected) & actual)
        if sha256_of(folder / name) != expected[name]
    ]
    return problems


def prune(root: Path, keep: int, stale_partial_s: float = 3600.0) -> list[Path]:
    """Keep the newest `keep` bundles of each environment; drop abandoned half-written folders."""
    removed = []
    seen: dict[str, int] = {}
    for bundle in list_bundles(root):
        seen[bundle.env] = seen.get(bundle.env, 0) + 1
        if seen[bundle.env] > keep:
            shutil.rmtree(bundle.path)
            removed.append(bundle.path)
    for partial in root.glob(f"{PARTIAL_PREFIX}*") if root.is_dir() else ():
        if time.time() - partial.stat().st_mtime > stale_partial_s:  # a run killed long ago
            shutil.rmtree(partial, ignore_errors=True)
            removed.append(partial)
    return removed


def gates_run(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The gates a bundle's run was asked to run (those it left out by --only/--skip are not)."""
    not_run = set(data.get("scope", {}).get("not_run", []))
    return [
        g
        for g in data.get("gates", [])
        if g["id"] not in not_run
        and not (g["status"] == "SKIP" and g.get("reason") == SKIPPED_BY_REQUEST)
    ]


def phase_rows(
    root: Path, relative_to: Path, configured: Sequence[tuple[str, str]]
) -> dict[str, list[GateRow]]:
    """Per environment, each configured gate from the newest COMPLETED run that ran it (its
    time and link), dated from the start of its streak; a gate no such run ran is NOT RUN.
    Interrupted bundles are listed by `evidence list` but never counted here."""
    by_env: dict[str, list[BundleInfo]] = {}
    for bundle in list_bundles(root):  # newest first
        by_env.setdefault(bundle.env, []).append(bundle)
    rows: dict[str, list[GateRow]] = {}
    for env, bundles in by_env.items():
        # Each completed bundle's gates once, by id (newest bundle first).
        ran = [
            (b, {g["id"]: g for g in gates_run(b.data)})
            for b in bundles
            if b.outcome == "completed"
        ]
        rows[env] = []
        for gate_id, title in configured:
            history = [(b, gates[gate_id]) for b, gates in ran if gate_id in gates]
            if not history:
                rows[env].append(GateRow(gate_id, title, NOT_RUN, "", "", ""))
                continue
            newest, gate = history[0]
            since = newest
            for older, older_gate in history[1:]:
                if older_gate["status"] != gate["status"]:
                    break
                since = older
            link = (newest.path / "summary.md").resolve()
            try:
                shown = link.relative_to(relative_to.resolve()).as_posix()
            except ValueError:
                shown = link.as_posix()
            rows[env].append(
                GateRow(
                    gate_id, title, gate["status"], since.started_at[:10], newest.started_at, shown
                )
            )
    return rows
