"""The secret scan never hangs beside threads that import modules (issue 11), serial or pooled."""

from __future__ import annotations

import hashlib
import importlib
import itertools
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from checks.interface import CheckError
from checks.secrets import scan

# Built at run time, so this file holds no token for the repository's own scan to find.
PLANTED_TOKEN = hashlib.md5(b"issue 11").hexdigest()  # noqa: S324 - md5 for 32 hex chars, not for security
PLANTED = ("app/settings.py", 3, "Twilio Auth Token")
SCAN_DEADLINE_S = 20.0
"""Six small files take milliseconds serially, about a second pooled: longer is a hang."""
SERIAL = 10**6
POOLED = 0

Finding = tuple[str, int, str]
Scan = Callable[[Path, list[str]], Any]


@pytest.fixture
def small_repository(tmp_path: Path) -> tuple[Path, list[str]]:
    """Six files, one of them with a Twilio auth token on line 3."""
    root = tmp_path / "repo"
    files = {
        "README.md": "# demo\n\nNothing to see.\n",
        "app/__init__.py": '"""The app."""\n',
        "app/settings.py": f'"""Settings."""\n\nauth_token = "{PLANTED_TOKEN}"\nDEBUG = False\n',
        "app/util.py": "def add(a: int, b: int) -> int:\n    return a + b\n",
        "deploy/render.yaml": "services:\n  - type: web\n    name: clara\n",
        "setup.cfg": "[metadata]\nname = demo\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root, sorted(files)


def findings_of(collection: Any) -> set[Finding]:
    """(file, line, type) of every secret the scan found."""
    return {(name, secret.line_number, secret.type) for name, secret in collection}


def yaml_modules() -> list[str]:
    """The names of yaml and its submodules now imported (a copy: other threads import)."""
    return [n for n in sys.modules.copy() if n == "yaml" or n.startswith("yaml.")]


@contextmanager
def busy_importers(modules_dir: Path) -> Iterator[Counter[str]]:
    """Threads that hold import locks most of the time, as opsctl's other checks can.

    One imports freshly written modules that take milliseconds to run; the other imports yaml
    afresh again and again, as the check that hung did (detect-secrets imports yaml lazily, so a
    worker forked while yaml's import lock is held waits for it for ever). Yields how many
    imports each has done; a thread that failed fails the test.
    """
    stop = threading.Event()
    imports: Counter[str] = Counter()
    failures: list[BaseException] = []
    saved_yaml = {name: sys.modules[name] for name in yaml_modules()}
    modules_dir.mkdir()
    sys.path.insert(0, str(modules_dir))

    def import_fresh_modules() -> None:
        for n in itertools.count():
            if stop.is_set():
                return
            name = f"slow_module_{n}"
            (modules_dir / f"{name}.py").write_text("import time\n\ntime.sleep(0.003)\n")
            # Only this folder's finder: importlib.invalidate_caches() iterates every finder of
            # sys.path_importer_cache, which the other thread's imports change meanwhile
            # ("dictionary changed size during iteration", seen once in ~10 runs).
            finder = sys.path_importer_cache.get(str(modules_dir))
            if finder is not None:
                finder.invalidate_caches()
            importlib.import_module(name)
            del sys.modules[name]
            imports["fresh"] += 1

    def import_yaml_afresh() -> None:
        while not stop.is_set():
            for name in yaml_modules():
                sys.modules.pop(name, None)
            importlib.import_module("yaml")
            imports["yaml"] += 1

    def recording_failures(work: Callable[[], None]) -> Callable[[], None]:
        def run() -> None:
            try:
                work()
            except BaseException as exc:  # reported by the test, not lost in a thread
                failures.append(exc)

        return run

    threads = [
        threading.Thread(target=recording_failures(work), daemon=True)
        for work in (import_fresh_modules, import_yaml_afresh)
    ]
    for thread in threads:
        thread.start()
    try:
        yield imports
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        sys.path.remove(str(modules_dir))
        for name in yaml_modules():
            sys.modules.pop(name, None)
        sys.modules.update(saved_yaml)
    assert not failures, f"an importing thread failed: {failures[0]!r}"


def scan_within(run_scan: Scan, root: Path, files: list[str], deadline_s: float) -> Any:
    """The scan's collection, from a thread given deadline_s to finish; fails the test if not."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["collection"] = run_scan(root, files)
        except BaseException as exc:  # reported below, in the test's own thread
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="secret-scan", daemon=True)
    thread.start()
    thread.join(deadline_s)
    if thread.is_alive():
        pytest.fail(
            f"the secret scan hung: not done after {deadline_s:g}s beside importing threads"
        )
    if "error" in outcome:
        raise outcome["error"]
    return outcome["collection"]


def scan_with_threshold(serial_below: int) -> Scan:
    """scan() with the threshold that picks its path (serial in the thread, or spawned workers)."""

    def run(root: Path, files: list[str]) -> Any:
        return scan(root, files, serial_below=serial_below).collection

    return run


def scans_beside_importers(
    run_scan: Scan, root: Path, files: list[str], modules_dir: Path, times: int
) -> list[set[Finding]]:
    """The findings of `times` scans in a row, each bounded, while other threads import."""
    with busy_importers(modules_dir) as imports:
        found = [
            findings_of(scan_within(run_scan, root, files, SCAN_DEADLINE_S)) for _ in range(times)
        ]
    assert imports["fresh"] and imports["yaml"], f"the importing threads did not run: {imports}"
    return found


@pytest.mark.parametrize(
    ("serial_below", "times"),
    [(SERIAL, 30), (POOLED, 6)],  # a pooled scan starts interpreters: fewer, to stay fast
    ids=["serial", "pooled"],
)
def test_scan_beside_importing_threads_never_hangs_and_finds_the_token(
    small_repository: tuple[Path, list[str]], tmp_path: Path, serial_below: int, times: int
) -> None:
    root, files = small_repository
    expected = findings_of(scan(root, files, serial_below=SERIAL).collection)
    assert PLANTED in expected

    found = scans_beside_importers(
        scan_with_threshold(serial_below), root, files, tmp_path / "modules", times
    )

    assert found == [expected] * times


def test_a_pooled_scan_past_its_deadline_is_a_check_error_and_leaves_no_worker(
    small_repository: tuple[Path, list[str]],
) -> None:
    root, files = small_repository
    before = child_processes()
    started = time.monotonic()

    with pytest.raises(CheckError, match=r"did not finish within 0s") as raised:
        scan(root, files, serial_below=POOLED, deadline_s=0.0)

    assert raised.value.hint
    assert time.monotonic() - started < 10
    assert child_processes() == before


def child_processes() -> set[int]:
    """The pids of this process's live children (the scan's workers are not multiprocessing's:
    active_children() would not see them)."""
    found = set()
    for entry in Path("/proc").iterdir():
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # not a process, or gone meanwhile
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == os.getpid() and state != "Z":
            found.add(int(entry.name))
    return found
