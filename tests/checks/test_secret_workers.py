"""The secret scan's worker processes: detect-secrets' own findings, and nothing left behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from checks import children
from checks.interface import CheckError
from checks.secrets import (
    PLUGINS_FILE,
    ScanWorkers,
    new_findings,
    prestart_workers,
    scan,
    stop_prestarted_workers,
    write_baseline,
)
from tests.conftest import REPO_ROOT, process_alive

WORKER = b"checks.secret_worker"
Finding = tuple[str, int, str, str]
"""(file, line, type, hash of the secret)."""


def gone_within(pids: list[int], deadline_s: float) -> bool:
    """Poll until none of the pids runs, or the deadline passes."""
    end = time.monotonic() + deadline_s
    while any(process_alive(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.05)
    return not any(process_alive(pid) for pid in pids)


def processes(where: Callable[[int, int, bytes], bool]) -> list[int]:
    """The pids of live processes for which where(parent pid, process group, cmdline) holds."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid, pgrp = (int(field) for field in stat.rsplit(")", 1)[1].split()[1:3])
        if where(ppid, pgrp, cmdline) and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def workers_of(parent: int) -> list[int]:
    """The pids of the scan workers started by `parent` (the first one and its siblings)."""
    firsts = processes(lambda ppid, _, cmdline: ppid == parent and WORKER in cmdline)
    return firsts + processes(lambda ppid, *_: ppid in firsts)


def group(pgid: int) -> list[int]:
    """The pids of the live processes in a process group."""
    return processes(lambda _, pgrp, __: pgrp == pgid)


@pytest.fixture
def repository_with_secrets(tmp_path: Path) -> tuple[Path, list[str]]:
    """Thirty files, some holding secrets of several kinds at various lines (built here, so this
    file holds none for the repository's own scan to find)."""
    root = tmp_path / "repo"
    twilio = "0123456789abcdef" * 2
    aws = "AKIA" + "Z7Q2" * 4
    notion = "ntn_" + "a1B2" * 11 + "xy"
    entropy = base64.b64encode(b"hello world, this is a high entropy string!").decode()
    key_header = "-----BEGIN " + "RSA PRIVATE KEY-----"
    files = {
        "app/settings.py": f'"""Settings."""\n\nauth_token = "{twilio}"\nDEBUG = False\n',
        "deploy/aws.ini": "[default]\n" + "# filler\n" * 40 + f"aws_access_key_id = {aws}\n",
        "notes/notion.md": f"# Notion\n\nThe token: {notion}\n",
        "config/app.json": json.dumps({"db": {"password": "hunter2-but-longer"}}, indent=2),
        "blob.txt": f"x = '{entropy}'\n",
        "keys/id_rsa.txt": key_header + "\nMIIEpAIBAAKCAQEA\n",
    }
    for n in range(24):
        files[f"src/module_{n}.py"] = f"def f{n}(x: int) -> int:\n    return x + {n}\n" * (n + 1)
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root, sorted(files)


def ours(root: Path, files: list[str], serial_below: int) -> set[Finding]:
    collection = scan(root, files, serial_below=serial_below).collection
    return {(name, s.line_number, s.type, s.secret_hash) for name, s in collection}


def detect_secrets_cli(root: Path, files: list[str]) -> set[Finding]:
    """What `detect-secrets scan -p checks/secret_plugins.py FILES` reports."""
    cli = str(Path(sys.executable).parent / "detect-secrets")
    done = subprocess.run(
        [cli, "scan", "-p", str(PLUGINS_FILE), *files],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    results = json.loads(done.stdout)["results"]
    return {
        (name, s["line_number"], s["type"], s["hashed_secret"])
        for name, secrets in results.items()
        for s in secrets
    }


def test_the_workers_find_what_detect_secrets_own_cli_finds(
    repository_with_secrets: tuple[Path, list[str]],
) -> None:
    root, files = repository_with_secrets

    pooled = ours(root, files, serial_below=0)

    expected = detect_secrets_cli(root, files)
    assert {(f, line, kind) for f, line, kind, _ in expected} >= {
        ("app/settings.py", 3, "Twilio Auth Token"),
        ("deploy/aws.ini", 42, "AWS Access Key"),
        ("notes/notion.md", 3, "Notion Integration Token"),
        ("keys/id_rsa.txt", 1, "Private Key"),
    }
    assert pooled == expected
    assert ours(root, files, serial_below=10**6) == expected  # in this thread: the same


def test_a_worker_that_dies_mid_scan_is_an_error_at_once_and_its_siblings_die_too(
    repository_with_secrets: tuple[Path, list[str]],
) -> None:
    root, files = repository_with_secrets
    paths = [str(root / name) for name in files]
    with ScanWorkers(2) as workers:
        both = wait_for_group(workers.pid, 2)
        (sibling,) = set(both) - {workers.pid}
        os.kill(sibling, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(CheckError, match=r"worker stopped before the scan was done") as raised:
            list(workers.findings(paths, deadline_s=60))
        assert time.monotonic() - started < 10  # its end of file says so, not the deadline
        assert raised.value.hint
    assert gone_within(both, 5)


def wait_for_group(pgid: int, count: int) -> list[int]:
    """The group's pids once it has `count` of them (the first worker forks the others)."""
    end = time.monotonic() + 30
    while len(members := group(pgid)) < count and time.monotonic() < end:
        time.sleep(0.02)
    assert len(members) == count, f"process group {pgid}: {members}"
    return members


# A process that starts workers and waits: opsctl's place, without opsctl's watchdog (only the
# workers' own means of dying with it are left: the death signal and the end of their stdin).
PARENT = """
import sys, time
sys.path.insert(0, sys.argv[1])
from checks.secrets import ScanWorkers
workers = ScanWorkers(2)
print(workers.pid, flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(children._prctl is None, reason="no prctl: Linux only")
def test_workers_die_with_their_parent_killed_by_sigkill() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, str(REPO_ROOT)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        pids = wait_for_group(int(parent.stdout.readline()), 2)
        parent.kill()
        parent.wait(10)
        assert gone_within(pids, 5), "a scan worker outlived its SIGKILLed parent"
    finally:
        parent.kill()
        parent.wait(10)


@pytest.mark.skipif(children._prctl is None, reason="no prctl: Linux only")
def test_sigkill_of_opsctl_mid_scan_leaves_no_worker(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    # Enough lines that the scan takes seconds: it is killed while its workers are busy.
    lines = "".join(
        f"value_{n} = compute({n}, 'some text for the keyword plugin')\n" for n in range(3000)
    )
    for n in range(30):
        (root / f"module_{n}.py").write_text(lines)
    config = secrets_only_config(tmp_path, root)
    command = ["check", "secrets", "--env", "repo", "--config", str(config), "--fresh"]
    opsctl = subprocess.Popen(
        [sys.executable, "-m", "opsctl.cli", *command, "--progress", "none"],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        end = time.monotonic() + 60
        while len(workers := workers_of(opsctl.pid)) < 2 and time.monotonic() < end:
            assert opsctl.poll() is None, (
                f"opsctl ended before its workers started: {opsctl.communicate()[1]}"
            )
            time.sleep(0.05)
        assert len(workers) >= 2, "no scan workers seen"
        time.sleep(0.5)  # into the scan: the workers are busy with files
        assert opsctl.poll() is None, "the scan finished before opsctl could be killed"
        opsctl.kill()
        opsctl.wait(10)
        assert gone_within(workers, 5), "a scan worker outlived opsctl killed by SIGKILL"
    finally:
        opsctl.kill()
        opsctl.wait(10)


def test_workers_started_ahead_that_no_scan_took_are_stopped() -> None:
    prestart_workers()
    started = workers_of(os.getpid())
    assert started, "no workers started ahead"

    stop_prestarted_workers()

    assert gone_within(started, 5)
    assert workers_of(os.getpid()) == []


def test_what_the_baseline_accepts_is_not_new_and_what_comes_after_is(
    repository_with_secrets: tuple[Path, list[str]],
) -> None:
    root, files = repository_with_secrets
    found, _ = new_findings(root, files)
    assert ("app/settings.py", 3, "Twilio Auth Token") in found

    write_baseline(root)
    assert new_findings(root, files) == ([], len(files))

    late_token = hashlib.sha256(b"late").hexdigest()[:32]  # built: this file holds none
    (root / "app" / "late.py").write_text(f'auth_token = "{late_token}"\n')
    assert new_findings(root, [*files, "app/late.py"])[0] == [
        ("app/late.py", 1, "Hex High Entropy String"),
        ("app/late.py", 1, "Twilio Auth Token"),
    ]


def secrets_only_config(folder: Path, root: Path) -> Path:
    """An opsctl.toml whose one gate is the secret scan of the repository at `root`."""
    config = folder / "opsctl.toml"
    config.write_text(
        textwrap.dedent(
            f"""\
            [environments.repo]
            base_url = "http://127.0.0.1:9"

            [repository]
            root = "{root}"

            [gates.SEC]
            title = "Security"
            checks = ["secrets"]
            """
        )
    )
    return config
