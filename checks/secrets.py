"""Secret scan: detect-secrets as a library over the repository's files, against the baseline."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import selectors
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from checks import children, secret_worker
from checks.interface import Check, CheckContext, CheckError, CheckResult, ResultCache, Status
from checks.repo_files import tracked_files
from checks.secret_worker import OUR_PLUGINS, PLUGINS_FILE, scan_settings

__all__ = ["OUR_PLUGINS", "PLUGINS_FILE", "scan_settings"]  # defined with the worker, used here

ID = "secrets"
BASELINE = ".secrets.baseline"
# Never scanned: lock hashes and binary assets are high-entropy by nature.
EXCLUDED_SUFFIXES = (".mp3", ".png", ".lock")
EXCLUDED_PREFIXES = ("requirements/",)
# Fewer files than this are scanned in the calling thread: a worker is a fresh interpreter
# importing detect-secrets (~0.2 s), which pays off from about 20 files of this repository's
# mix (2 cores: 16 files 0.67 s serial, 0.74 s pooled; 24 files 1.75 s, 1.30 s).
# Above it the scan also stays out of this process, where it would hold the GIL against the
# other checks' threads (the latency measurements among them).
SERIAL_BELOW = 20
# Under the check's 120 s budget, so a stuck scan ends as our one-line error, not a timeout.
SCAN_DEADLINE_S = 110.0
# Files whose findings the cache keeps (~100 bytes each without findings).
KEPT_FILES_MAX = 20_000
# Paths a worker holds at once: the next one is waiting when it finishes one, and a worker
# holds at most one more file than its share when the largest-first queue runs dry.
PATHS_PER_WORKER = 2
# A killed worker is reaped within this (SIGKILL cannot be ignored: it is a formality).
REAP_TIMEOUT_S = 5.0


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


def _within(paths: list[str], deadline_s: float) -> Iterator[str]:
    """The paths one after the other, as long as the deadline is not past."""
    deadline = time.monotonic() + deadline_s
    for path in paths:
        if time.monotonic() > deadline:
            raise _scan_timeout(len(paths), deadline_s)
        yield path


# Where the `checks` package this module came from lives: the workers import the same one.
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
_WORKER_MAIN = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from checks.secret_worker import main; main()"
)


@dataclass(frozen=True)
class _Channel:
    """This process's ends of one worker's pipes."""

    paths: int
    """Where its paths are written (it reads the other end)."""
    replies: int
    """Where its findings are read."""


class ScanWorkers:
    """Worker processes (checks/secret_worker.py), one per core, that scan the files sent to
    them; leaving the `with` block kills them.

    Not multiprocessing: its "fork" start may hang in a process that runs threads (issue 11);
    a "spawn" worker re-runs the parent's main module (all of opsctl's CLI) before its first
    task, and so does a forkserver's unless it preloads that module (and it lingers until
    opsctl exits). Here one child, started from the thread that then waits for it (the death
    signal of checks/children.py), imports detect-secrets and forks the others from its single
    thread, all in one process group. They read their paths from pipes only this process
    writes to: at the end of them (the scan is over, or opsctl died, SIGKILL included) they
    exit. opsctl's watchdog (checks/children.py) catches any left over.
    """

    def __init__(self, count: int) -> None:
        self._channels: list[_Channel] = []
        theirs: list[int] = []
        try:
            for _ in range(max(1, count)):
                paths_read, paths_write = os.pipe()
                replies_read, replies_write = os.pipe()
                theirs += [paths_read, replies_write]
                self._channels.append(_Channel(paths_write, replies_read))
            self._leader = children.popen(
                [sys.executable, "-c", _WORKER_MAIN, _PACKAGE_ROOT, *map(str, theirs)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=theirs,
            )
        except BaseException:
            self._close_pipes()
            raise
        finally:
            for fd in theirs:
                os.close(fd)

    def __enter__(self) -> ScanWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def pid(self) -> int:
        """The first worker's process id (and its process group's: the others are in it)."""
        return self._leader.pid

    def _close_pipes(self) -> None:
        for channel in self._channels:
            for fd in (channel.paths, channel.replies):
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._channels = []

    def close(self) -> None:
        """Kill every worker and reap the first (the others are its children)."""
        children.kill_group(self._leader)
        self._close_pipes()
        # Not reaped in time is still killed: nothing of it runs any more.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._leader.wait(timeout=REAP_TIMEOUT_S)

    def findings(
        self, paths: list[str], deadline_s: float
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(path, its findings as PotentialSecret.json() gives them) as each file is done."""
        deadline = time.monotonic() + deadline_s
        # Largest first, so no worker is left with a big file at the end (scan time ~ size).
        waiting = deque(sorted(paths, key=_size_or_zero, reverse=True))
        partial = {channel.replies: b"" for channel in self._channels}
        remaining = len(paths)
        with selectors.DefaultSelector() as selector:
            for channel in self._channels:
                selector.register(channel.replies, selectors.EVENT_READ, channel)
                for _ in range(PATHS_PER_WORKER):
                    _send_next(channel, waiting)
            while remaining:
                left = deadline - time.monotonic()
                ready = selector.select(left) if left > 0 else []
                if not ready:  # never wait for ever: past the deadline, the scan is an error
                    raise _scan_timeout(len(paths), deadline_s)
                for key, _ in ready:
                    channel = key.data
                    chunk = os.read(channel.replies, 1 << 16)
                    if not chunk:
                        raise _worker_lost()
                    *lines, partial[channel.replies] = (partial[channel.replies] + chunk).split(
                        b"\n"
                    )
                    for line in lines:
                        reply = json.loads(line)
                        if reply == secret_worker.READY:
                            continue
                        remaining -= 1
                        _send_next(channel, waiting)
                        yield reply[0], reply[1]


def _send_next(channel: _Channel, waiting: deque[str]) -> None:
    """Give the worker the next path, if any is left."""
    if not waiting:
        return
    # A line is far below the pipe's buffer and a worker holds at most PATHS_PER_WORKER:
    # this write never blocks.
    data = (json.dumps(waiting.popleft()) + "\n").encode()
    try:
        while data:
            data = data[os.write(channel.paths, data) :]
    except BrokenPipeError:
        raise _worker_lost() from None


def _worker_lost() -> CheckError:
    """The error of a worker that exited before the scan was done."""
    return CheckError(
        "a secret-scan worker stopped before the scan was done",
        "its error is on stderr above; run the check again, and report it if a worker stops again",
    )


def scanner_fingerprint() -> str:
    """What a file's findings depend on besides its content: detect-secrets' version, our code
    that picks its plugins and settings (checks/secret_worker.py), our detectors' code. Read
    without importing detect-secrets (its settings follow from those): the usual run finds
    every file in the cache, and knows it before starting any worker."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    digest.update(version("detect-secrets").encode())
    for source in (Path(secret_worker.__file__), PLUGINS_FILE):
        digest.update(source.read_bytes())
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
    paths = {name: os.path.join(root, name) for name in files}
    fingerprint = scanner_fingerprint() if cache is not None else ""
    digests = {name: _content_digest(path) for name, path in paths.items()}
    entry = cache.get(ID, fingerprint) if cache is not None else None
    known: dict[str, list[dict[str, Any]]] = dict(entry.get("files", {})) if entry else {}
    to_scan = [name for name in files if known.get(digests[name] or "") is None]
    targets = [paths[name] for name in to_scan]
    # Never SecretsCollection.scan_files: its multiprocessing.Pool forks this process, whose
    # other threads (the checks run concurrently) may hold a module's import lock; a forked
    # child that imports that module (detect-secrets imports yaml lazily) waits for ever, and so
    # does the pool (issue 11). So: a few files in this thread, more in worker processes,
    # started first: they import detect-secrets while this thread does.
    with (
        ScanWorkers(os.cpu_count() or 1)
        if len(targets) >= serial_below
        else nullcontext() as workers
    ):
        from detect_secrets import SecretsCollection
        from detect_secrets.core.potential_secret import PotentialSecret

        collection = SecretsCollection(root=str(root))
        for name in files:
            for data in known.get(digests[name] or "", ()):
                secret = PotentialSecret.load_secret_from_dict({**data, "filename": name})
                collection[name].add(secret)
        found_by_name: dict[str, list[Any]] = {name: [] for name in to_scan}
        found: Iterable[tuple[str, list[Any]]]
        if workers is None:
            with our_settings():
                found = [(path, _scan_one_file(path)) for path in _within(targets, deadline_s)]
        else:
            found = (
                (path, [PotentialSecret.load_secret_from_dict(d) for d in secrets])
                for path, secrets in workers.findings(targets, deadline_s)
            )
        for path, secrets in found:
            name = os.path.relpath(path, root)  # as SecretsCollection.scan_files keys them
            for secret in secrets:
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
