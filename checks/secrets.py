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
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
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
# Fewer files than this are scanned in the calling thread: the workers are a fresh interpreter
# importing detect-secrets (~0.3 s of CPU) and forks of it, which pays off from about a dozen
# files of this repository's mix (2 cores, median of 3: 8 files 0.80 s in the thread, 0.96 s
# in workers; 16 files 1.39 s, 1.23 s; 40 files 3.96 s, 2.49 s).
# Above it the scan also stays out of this process, where it would hold the GIL against the
# other checks' threads (the latency measurements among them).
SERIAL_BELOW = 12
# Under the check's 120 s budget, so a stuck scan ends as our one-line error, not a timeout.
SCAN_DEADLINE_S = 110.0
# Files whose findings the cache keeps (~100 bytes each without findings).
KEPT_FILES_MAX = 20_000
# Bytes of files a worker holds ahead (~0.4 s of scanning at ~120 kB/s): it does not wait for
# this process to be scheduled to send the next path, however loaded the machine (detect-
# secrets' own pool queues every task at once). The queue is largest first: when it runs dry,
# the workers hold small files and finish close together (measured: 0.002-0.07 s apart).
AHEAD_BYTES = 48 * 1024
# Bytes of paths unread in a worker's pipe, at most: under the pipe's 64 KiB buffer (Linux),
# so writing the next path never blocks.
AHEAD_PIPE_BYTES = 32 * 1024
# Idle workers told their scan is over exit within this (they only have to read end of file).
GRACE_S = 1.0
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
        self._finished = False
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
        """Stop the workers: after a finished scan, the end of their paths (they are idle and
        exit, the first one after reaping the others, so their CPU time is accounted for);
        otherwise, or if they linger, SIGKILL to their group. The first is reaped."""
        if self._finished:
            self._close_pipes()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._leader.wait(timeout=GRACE_S)
        if self._leader.poll() is None:  # not reaped: its group id is still its own
            children.kill_group(self._leader)
        self._close_pipes()
        # Not reaped in time is still killed: nothing of it runs any more.
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._leader.wait(timeout=REAP_TIMEOUT_S)

    def findings(
        self, paths: list[str], deadline_s: float
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """(path, its findings as PotentialSecret.json() gives them) as each file is done. The
        first paths go out now, not at the first result asked for: the workers start on them
        while the caller does what else it has to."""
        deadline = time.monotonic() + deadline_s
        # Largest first, so no worker is left with a big file at the end (scan time ~ size).
        sized = sorted(((_size_or_zero(p), p) for p in paths), reverse=True)
        waiting = deque((size, (json.dumps(path) + "\n").encode()) for size, path in sized)
        ahead = {channel: _Ahead() for channel in self._channels}
        for channel in self._channels:
            _send_ahead(channel, ahead[channel], waiting)
        return self._replies(ahead, waiting, len(paths), deadline, deadline_s)

    def _replies(
        self,
        ahead: dict[_Channel, _Ahead],
        waiting: deque[tuple[int, bytes]],
        remaining: int,
        deadline: float,
        deadline_s: float,
    ) -> Iterator[tuple[str, list[dict[str, Any]]]]:
        """Each reply as it comes, the next paths sent to whoever answered."""
        count = remaining
        partial = {channel: b"" for channel in self._channels}
        with selectors.DefaultSelector() as selector:
            for channel in self._channels:
                selector.register(channel.replies, selectors.EVENT_READ, channel)
            while remaining:
                left = deadline - time.monotonic()
                ready = selector.select(left) if left > 0 else []
                if not ready:  # never wait for ever: past the deadline, the scan is an error
                    raise _scan_timeout(count, deadline_s)
                for key, _ in ready:
                    channel = key.data
                    chunk = os.read(channel.replies, 1 << 16)
                    if not chunk:
                        raise _worker_lost()
                    *lines, partial[channel] = (partial[channel] + chunk).split(b"\n")
                    for line in lines:
                        reply = json.loads(line)
                        if reply == secret_worker.READY:
                            continue
                        remaining -= 1
                        ahead[channel].done()
                        _send_ahead(channel, ahead[channel], waiting)
                        yield reply[0], reply[1]
        self._finished = True


@dataclass
class _Ahead:
    """What a worker was sent and has not answered yet, oldest first: (file size, line)."""

    sent: deque[tuple[int, bytes]] = field(default_factory=deque)
    file_bytes: int = 0
    line_bytes: int = 0

    def add(self, size: int, line: bytes) -> None:
        self.sent.append((size, line))
        self.file_bytes += size
        self.line_bytes += len(line)

    def done(self) -> None:
        """Its oldest path was answered (a worker answers in the order it is sent)."""
        size, line = self.sent.popleft()
        self.file_bytes -= size
        self.line_bytes -= len(line)


def _send_ahead(channel: _Channel, ahead: _Ahead, waiting: deque[tuple[int, bytes]]) -> None:
    """Send the worker paths until it holds AHEAD_BYTES of files (one path at least)."""
    while waiting and (
        not ahead.sent
        or (
            ahead.file_bytes < AHEAD_BYTES
            and ahead.line_bytes + len(waiting[0][1]) <= AHEAD_PIPE_BYTES
        )
    ):
        size, line = waiting.popleft()
        unwritten = line
        try:
            while unwritten:  # never blocks: see AHEAD_PIPE_BYTES
                unwritten = unwritten[os.write(channel.paths, unwritten) :]
        except BrokenPipeError:
            raise _worker_lost() from None
        ahead.add(size, line)


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

    root: Path
    found: Mapping[str, Sequence[Mapping[str, Any]]]
    """File -> its findings in the order found, each as PotentialSecret.json() gives it less
    the filename (hashes, never a value); only files with findings."""
    scanned: int

    @property
    def collection(self) -> Any:
        """The findings as detect-secrets' SecretsCollection (which keeps one of each secret
        a file holds twice, as its own scan does)."""
        from detect_secrets import SecretsCollection
        from detect_secrets.core.potential_secret import PotentialSecret

        collection = SecretsCollection(root=str(self.root))
        for name, secrets in self.found.items():
            for data in secrets:
                secret = PotentialSecret.load_secret_from_dict({**data, "filename": name})
                collection[name].add(secret)
        return collection


def scan(
    root: Path,
    files: list[str],
    *,
    cache: ResultCache | None = None,
    serial_below: int = SERIAL_BELOW,
    deadline_s: float = SCAN_DEADLINE_S,
    workers: ScanWorkers | None = None,
) -> Scan:
    """The files' findings (paths relative to root). With a cache, a file whose bytes were
    scanned before by the same scanner is not scanned again: its findings are those kept for
    its sha256 (hashes of secrets and line numbers, as in the baseline; never a value), the
    way pre-commit and ruff skip what did not change. `workers`: started by the caller (and
    stopped by it), used whatever the number of files to read. This thread imports
    detect-secrets only to scan in it: a clean tree's scan in workers, or from the cache,
    costs this process no detect-secrets import (~0.1 s)."""
    paths = {name: os.path.join(root, name) for name in files}
    fingerprint = scanner_fingerprint() if cache is not None else ""
    digests = {name: _content_digest(path) for name, path in paths.items()}
    entry = cache.get(ID, fingerprint) if cache is not None else None
    known: dict[str, list[dict[str, Any]]] = dict(entry.get("files", {})) if entry else {}
    to_scan = [name for name in files if known.get(digests[name] or "") is None]
    targets = [paths[name] for name in to_scan]
    found: dict[str, list[Mapping[str, Any]]] = {}
    for name in files:
        kept = known.get(digests[name] or "")
        if kept:
            found[name] = list(kept)
    # Never SecretsCollection.scan_files: its multiprocessing.Pool forks this process, whose
    # other threads (the checks run concurrently) may hold a module's import lock; a forked
    # child that imports that module (detect-secrets imports yaml lazily) waits for ever, and so
    # does the pool (issue 11). So: a few files in this thread, more in worker processes.
    read: dict[str, list[Mapping[str, Any]]] = {name: [] for name in to_scan}
    own = workers is None and len(targets) >= serial_below
    with ScanWorkers(os.cpu_count() or 1) if own else nullcontext(workers) as workers:
        replies: Iterable[tuple[str, Sequence[Mapping[str, Any]]]]
        if workers is not None:
            replies = workers.findings(targets, deadline_s)
        elif not targets:
            replies = []  # all from the cache
        else:
            with our_settings():
                replies = [
                    (path, [s.json() for s in _scan_one_file(path)])
                    for path in _within(targets, deadline_s)
                ]
        for path, secrets in replies:
            name = os.path.relpath(path, root)  # as SecretsCollection.scan_files keys them
            read[name] = [{k: v for k, v in s.items() if k != "filename"} for s in secrets]
            if secrets:
                found[name] = read[name]
    if cache is not None and to_scan:
        # Content-addressed, so one entry serves every checkout (and branch) scanned with this
        # scanner; past KEPT_FILES_MAX, only this scan's files are kept.
        for name, secrets in read.items():
            if digests.get(name) is not None:
                known[str(digests[name])] = [dict(s) for s in secrets]
        if len(known) > KEPT_FILES_MAX:
            current = {str(d) for d in digests.values() if d is not None}
            known = {d: f for d, f in known.items() if d in current}
        cache.put(ID, fingerprint, {"files": known})
    return Scan(root, {name: found[name] for name in files if name in found}, len(to_scan))


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
    root: Path,
    files: list[str],
    cache: ResultCache | None = None,
    workers: ScanWorkers | None = None,
) -> tuple[list[tuple[str, int, str]], int]:
    """(file, line, type) of each finding not in the baseline (values are never returned), and
    how many files were read anew rather than taken from the cache."""
    done = scan(root, files, cache=cache, workers=workers)
    if not done.found:  # nothing found: nothing new, whatever the baseline accepts
        return [], done.scanned
    from detect_secrets import SecretsCollection

    current = done.collection
    baseline_path = root / BASELINE
    if baseline_path.is_file():
        old = SecretsCollection.load_from_baseline(json.loads(baseline_path.read_text()))
        current = current - old
    found = [(filename, secret.line_number or 0, secret.type) for filename, secret in current]
    return sorted(found), done.scanned


# Workers started ahead of a scan that will read every file (prestart_workers); the next
# repository scan takes them. A list: its pop() is atomic, whichever thread the scan runs in.
_prestarted: list[ScanWorkers] = []


def prestart_workers() -> None:
    """Start the workers of a repository scan about to read every file (`--fresh`), so that
    their start overlaps the caller's own; the next scan takes them and stops them. Call from
    a thread that lives until they are stopped (the main thread): see checks/children.py."""
    if not _prestarted:
        _prestarted.append(ScanWorkers(os.cpu_count() or 1))


def stop_prestarted_workers() -> None:
    """Stop the workers prestart_workers started that no scan took."""
    while _prestarted:
        _prestarted.pop().close()


def _scan_repository(
    root: Path, cache: ResultCache | None
) -> tuple[list[str], list[tuple[str, int, str]], int]:
    """The repository's files, new_findings over them, how many were read anew. When the cache
    holds nothing for this scanner (--fresh, a first run, a new detect-secrets), every file
    will be read: the workers start first (if they were not started ahead), and import
    detect-secrets while the files are listed and digested. This thread owns them to the end."""
    starting: ScanWorkers | AbstractContextManager[None]
    if _prestarted:
        starting = _prestarted.pop()
    elif cache is None or cache.get(ID, scanner_fingerprint()) is None:
        starting = ScanWorkers(os.cpu_count() or 1)
    else:
        starting = nullcontext()
    with starting as workers:
        files = files_to_scan(root, cache.location if cache is not None else None)
        if not files:
            raise CheckError(f"no files to scan under {root}", "is this the repository root?")
        findings, read = new_findings(root, files, cache, workers)
    return files, findings, read


class SecretScanCheck(Check):
    """No secret in the repository's files beyond those accepted in .secrets.baseline."""

    id = ID
    title = "no new secrets in the repository"
    done_when = "detect-secrets (and our Twilio, Google, Notion detectors) finds nothing new"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        root = ctx.repository().root
        files, findings, read = await asyncio.to_thread(_scan_repository, root, ctx.cache)
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
