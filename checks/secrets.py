"""Secret scan: detect-secrets as a library over the repository's files, against the baseline."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks.interface import Check, CheckContext, CheckError, CheckResult, ResultCache, Status
from checks.repo_files import tracked_files

ID = "secrets"
BASELINE = ".secrets.baseline"
PLUGINS_FILE = Path(__file__).with_name("secret_plugins.py")
OUR_PLUGINS = ("TwilioAuthTokenDetector", "GoogleApiKeyDetector", "NotionTokenDetector")
# Never scanned: lock hashes and binary assets are high-entropy by nature.
EXCLUDED_SUFFIXES = (".mp3", ".png", ".lock")
EXCLUDED_PREFIXES = ("requirements/",)
# Fewer files than this are scanned in the calling thread: a spawned worker is a fresh
# interpreter importing detect-secrets (~0.5 s), which pays off from about 20 files of this
# repository's mix (2 cores: 16 files 0.67 s serial, 0.74 s pooled; 24 files 1.75 s, 1.30 s).
# Above it the scan also stays out of this process, where it would hold the GIL against the
# other checks' threads (the latency measurements among them).
SERIAL_BELOW = 20
# Under the check's 120 s budget, so a stuck scan ends as our one-line error, not a timeout.
SCAN_DEADLINE_S = 110.0
# Files whose findings the cache keeps (~100 bytes each without findings).
KEPT_FILES_MAX = 20_000


def scan_settings() -> dict[str, Any]:
    """Every built-in plugin and ours; no filter that calls vendors' APIs."""
    from detect_secrets.settings import default_settings

    with default_settings() as settings:
        plugins: list[dict[str, Any]] = settings.json()["plugins_used"]
    return {
        "plugins_used": [
            *plugins,
            *({"name": n, "path": PLUGINS_FILE.as_uri()} for n in OUR_PLUGINS),
        ]
    }


@contextmanager
def our_settings() -> Iterator[None]:
    """detect-secrets configured with our plugins for the duration."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    config = scan_settings()
    with transient_settings(config):
        # detect-secrets caches its plugin classes and its cache_bust() misses this cache.
        get_mapping_from_secret_type_to_class.cache_clear()
        try:
            yield
        finally:
            get_mapping_from_secret_type_to_class.cache_clear()


def files_to_scan(root: Path, leave_out: Path | None = None) -> list[str]:
    """The repository's text files, relative, minus what cannot hold a written secret and the
    result cache (`leave_out`, when it sits inside the tree: it holds hashes of findings)."""
    return [
        p.as_posix()
        for p in tracked_files(root)
        if may_hold_secrets(p)
        and not (leave_out is not None and (root / p).resolve().is_relative_to(leave_out.resolve()))
    ]


def may_hold_secrets(path: Path) -> bool:
    """Whether a file of the repository is scanned (the pre-commit hook excludes the same)."""
    return (
        not path.as_posix().startswith(EXCLUDED_PREFIXES)
        and path.suffix not in EXCLUDED_SUFFIXES
        and path.name != BASELINE
    )


def _scan_one_file(path: str) -> list[Any]:
    """The PotentialSecrets of one file, as detect-secrets' own pool worker returns them."""
    from detect_secrets.core import scan as detect_scan

    return list(detect_scan.scan_file(path))


def _configure_worker(settings: dict[str, Any]) -> None:
    """In a spawned worker: the parent's settings (our plugins' file URL among them)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import configure_settings_from_baseline

    configure_settings_from_baseline(settings)
    get_mapping_from_secret_type_to_class.cache_clear()  # as in our_settings()


def _size_or_zero(path: str) -> int:
    """The file's size; 0 if it is gone since listed (detect-secrets then skips it)."""
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _scan_timeout(count: int, deadline_s: float) -> CheckError:
    """The error of a scan past its deadline."""
    return CheckError(
        f"the secret scan of {count} files did not finish within {deadline_s:g}s",
        "is the machine overloaded? run `opsctl check secrets` alone to see if it is just slow",
    )


def _in_this_thread(paths: list[str], deadline_s: float) -> Iterator[list[Any]]:
    """Each file's secrets, scanned one after the other here."""
    deadline = time.monotonic() + deadline_s
    for path in paths:
        if time.monotonic() > deadline:
            raise _scan_timeout(len(paths), deadline_s)
        yield _scan_one_file(path)


def _in_spawned_workers(paths: list[str], deadline_s: float) -> Iterator[list[Any]]:
    """Each file's secrets, as a pool of spawned workers (one per core) finishes it."""
    from detect_secrets.settings import get_settings

    deadline = time.monotonic() + deadline_s
    # "spawn" execs a fresh interpreter: it inherits no thread and no held lock. A worker reads
    # its tasks from a pipe only the parent can write to, so it exits on EOF when the parent
    # dies (even by SIGKILL). The caller's main module must be import-safe (`if __name__ ==
    # "__main__"`), as for any spawned process; if not, workers die at start and the deadline
    # ends the scan.
    context = multiprocessing.get_context("spawn")
    workers = min(os.cpu_count() or 1, len(paths))
    # Largest first, so no worker is left with a big file at the end (scan time ~ size).
    by_size = sorted(paths, key=_size_or_zero, reverse=True)
    with context.Pool(workers, _configure_worker, (get_settings().json(),)) as pool:
        results = pool.imap_unordered(_scan_one_file, by_size)
        for _ in by_size:
            try:  # never wait for ever: a worker lost mid-task loses its result for good
                yield results.next(timeout=max(0.0, deadline - time.monotonic()))
            except multiprocessing.TimeoutError:
                raise _scan_timeout(len(paths), deadline_s) from None
    # Leaving the block terminates the pool: no worker outlives the scan.


def scanner_fingerprint() -> str:
    """What a file's findings depend on besides its content: detect-secrets' version, the
    plugins and their settings, our detectors' code."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(version("detect-secrets").encode())
    settings = scan_settings()
    for plugin in settings["plugins_used"]:
        plugin.pop("path", None)  # where our file is does not matter, what it says does
    digest.update(json.dumps(settings, sort_keys=True).encode())
    digest.update(PLUGINS_FILE.read_bytes())
    return digest.hexdigest()


def _content_digest(path: str) -> str | None:
    """sha256 of the file's bytes; None when it cannot be read (it is then scanned, not kept)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()
    except OSError:
        return None


@dataclass(frozen=True)
class Scan:
    """A scan's findings, and how many files were read anew (the rest came from the cache)."""

    collection: Any
    scanned: int


def scan(
    root: Path,
    files: list[str],
    *,
    cache: ResultCache | None = None,
    serial_below: int = SERIAL_BELOW,
    deadline_s: float = SCAN_DEADLINE_S,
) -> Scan:
    """The files' findings (paths relative to root). With a cache, a file whose bytes were
    scanned before by the same scanner is not scanned again: its findings are those kept for
    its sha256 (hashes of secrets and line numbers, as in the baseline; never a value), the
    way pre-commit and ruff skip what did not change."""
    from detect_secrets import SecretsCollection
    from detect_secrets.core.potential_secret import PotentialSecret

    collection = SecretsCollection(root=str(root))
    paths = {name: os.path.join(root, name) for name in files}
    fingerprint = scanner_fingerprint() if cache is not None else ""
    digests = {name: _content_digest(path) for name, path in paths.items()}
    entry = cache.get(ID, fingerprint) if cache is not None else None
    known: dict[str, list[dict[str, Any]]] = dict(entry.get("files", {})) if entry else {}
    to_scan = []
    for name in files:
        kept = known.get(digests[name] or "")
        if kept is None:
            to_scan.append(name)
            continue
        for data in kept:
            collection[name].add(PotentialSecret.load_secret_from_dict({**data, "filename": name}))
    # Never SecretsCollection.scan_files: its multiprocessing.Pool forks this process, whose
    # other threads (the checks run concurrently) may hold a module's import lock; a forked
    # child that imports that module (detect-secrets imports yaml lazily) waits for ever, and so
    # does the pool (issue 11). So: a few files in this thread, more in spawned workers.
    found_by_name: dict[str, list[Any]] = {name: [] for name in to_scan}
    with our_settings():
        targets = [paths[name] for name in to_scan]
        if len(targets) < serial_below:
            found = _in_this_thread(targets, deadline_s)
        else:
            found = _in_spawned_workers(targets, deadline_s)
        for secrets in found:
            for secret in secrets:  # keyed as SecretsCollection.scan_files keys them
                name = os.path.relpath(secret.filename, root)
                collection[name].add(secret)
                found_by_name.setdefault(name, []).append(secret)
    if cache is not None and to_scan:
        # Content-addressed, so one entry serves every checkout (and branch) scanned with this
        # scanner; past KEPT_FILES_MAX, only this scan's files are kept.
        for name, secrets in found_by_name.items():
            if digests.get(name) is not None:
                known[str(digests[name])] = [
                    {k: v for k, v in s.json().items() if k != "filename"} for s in secrets
                ]
        if len(known) > KEPT_FILES_MAX:
            current = {str(d) for d in digests.values() if d is not None}
            known = {d: f for d, f in known.items() if d in current}
        cache.put(ID, fingerprint, {"files": known})
    return Scan(collection, len(to_scan))


def write_baseline(root: Path) -> tuple[Path, int]:
    """Refresh .secrets.baseline from a scan now (hashes only, never values)."""
    from detect_secrets.core import baseline

    collection = scan(root, files_to_scan(root)).collection
    with our_settings():
        data = baseline.format_for_output(collection)
    data.pop("generated_at", None)  # a baseline that did not change makes no diff
    for plugin in data["plugins_used"]:  # relative, so the file reads the same on every machine
        if "path" in plugin:
            plugin["path"] = (
                "file://" + PLUGINS_FILE.relative_to(Path(__file__).parents[1]).as_posix()
            )
    path = root / BASELINE
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path, sum(len(v) for v in data["results"].values())


def new_findings(
    root: Path, files: list[str], cache: ResultCache | None = None
) -> tuple[list[tuple[str, int, str]], int]:
    """(file, line, type) of each finding not in the baseline (values are never returned), and
    how many files were read anew rather than taken from the cache."""
    from detect_secrets import SecretsCollection

    done = scan(root, files, cache=cache)
    current = done.collection
    baseline_path = root / BASELINE
    if baseline_path.is_file():
        old = SecretsCollection.load_from_baseline(json.loads(baseline_path.read_text()))
        current = current - old
    found = [(filename, secret.line_number or 0, secret.type) for filename, secret in current]
    return sorted(found), done.scanned


class SecretScanCheck(Check):
    """No secret in the repository's files beyond those accepted in .secrets.baseline."""

    id = ID
    title = "no new secrets in the repository"
    done_when = "detect-secrets (and our Twilio, Google, Notion detectors) finds nothing new"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        root = ctx.repository().root
        files = files_to_scan(root, ctx.cache.location if ctx.cache is not None else None)
        if not files:
            raise CheckError(f"no files to scan under {root}", "is this the repository root?")
        findings, read = await asyncio.to_thread(new_findings, root, files, ctx.cache)
        # What was looked at, honestly: files unchanged since a kept scan were not read again.
        scope = f"scanned {len(files)} files" + (
            f" ({len(files) - read} unchanged since a kept scan)" if read < len(files) else ""
        )
        report = "\n".join(f"{f}:{line}: {kind}" for f, line, kind in findings)
        ctx.reports["secret-scan.txt"] = f"{scope}; {len(findings)} new finding(s)\n{report}\n"
        details = {
            "files_scanned": len(files),
            "files_read_anew": read,
            "findings": [{"file": f, "line": line, "type": kind} for f, line, kind in findings],
        }
        if findings:
            first = findings[0]
            return self.result(
                Status.FAIL,
                f"{len(findings)} new secret(s), first {first[2]} at {first[0]}:{first[1]}",
                "remove it and rotate it; a false positive: `# pragma: allowlist secret` "
                "or `opsctl secrets baseline`",
                details=details,
            )
        return self.result(Status.PASS, f"{scope}: no new secrets", details=details)

    def budget_s(self, ctx: CheckContext) -> float:
        return 120.0
