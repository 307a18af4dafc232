"""`opsctl verify --notion`: the verdict and exit code never depend on Notion; the sync is kept."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from opsctl.cli import main
from tests.fakes.bot_target import TargetSettings
from tests.fakes.notion_api import FakeNotion

NOTION = """
[notion]
outbox = "outbox.json"
requests_per_second = 100
timeout_s = 1
gates_database = "{gates}"
runs_database = "{runs}"
"""


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.env"
    path.write_text(f"FAKE_TWILIO_TOKEN={TargetSettings().token}\n")
    return path


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def verify(config: Path, env_file: Path, *extra: str) -> int:
    """`opsctl verify` without progress lines: the output's first line is the verdict."""
    args = ["--config", str(config), "--env-file", str(env_file), "--progress", "none", *extra]
    return main(["verify", "--env", "fault", *args])


def test_verify_notion_with_notion_down_keeps_the_verdict_and_queues_the_sync(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = fault_config(target("wrong_component"))  # a run that fails: exit 1
    with config.open("a") as handle:
        handle.write(NOTION.format(gates="1" * 32, runs="2" * 32))
    monkeypatch.setenv("NOTION_TOKEN", "ntn_" + "d" * 46)  # pragma: allowlist secret
    monkeypatch.setenv("NOTION_BASE_URL", f"http://127.0.0.1:{closed_port()}")
    # Neither run writes a bundle: an unsent bundle would be queued as a run row of its own.
    without = verify(config, env_file, "--no-evidence")
    first = capsys.readouterr().out.splitlines()[0]
    with_notion = verify(config, env_file, "--notion", "--no-evidence")
    out, err = capsys.readouterr()
    assert with_notion == without == 1
    assert out.splitlines()[0] == first  # the same verdict line
    assert "Notion sync pending: " in err and "could not be reached" in err
    assert "Traceback" not in err
    queued = json.loads((config.parent / "outbox.json").read_text())
    gates = [c for c in queued if c["table"] == "gates"]
    runs = [c for c in queued if c["table"] == "runs"]
    assert len(runs) == 1 and runs[0]["values"]["Verdict"] == "FAIL"
    assert runs[0]["key"].endswith("Z_fault") and runs[0]["values"]["Evidence"] is None
    assert {c["key"] for c in gates} == {"fault/P2.1", "fault/P2.2", "fault/P2.6"}


def test_verify_notion_syncs_after_the_verdict(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = fault_config(target())
    with config.open("a") as handle:
        handle.write(NOTION.format(gates="", runs=""))
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    parent = fake_notion.add_page()
    assert main(["notion", "init", "--parent", parent, "--config", str(config)]) == 0
    code = verify(config, env_file, "--notion")
    err = capsys.readouterr().err
    assert code == 0
    # 3 gates, the run and the phase; the run row then links its gates (made after it).
    assert "notion: synced: 5 created, 0 updated, 0 unchanged, 1 linked to rows made" in err
    [gates] = [
        d
        for d in fake_notion.databases_under(parent)
        if d["title"][0]["plain_text"] == "opsctl gates"
    ]
    rows = fake_notion.rows(gates["data_sources"][0]["id"])
    assert len(rows) == 3
    assert json.loads((config.parent / "outbox.json").read_text()) == []
