"""`opsctl verify --notion` while another process sends to Notion: it says it waits, gives up
after [notion] verify_wait_s, keeps its changes queued, and the verdict's exit code stands."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from opsctl.cli import main
from opsctl.notion.outbox import Outbox
from tests.checks.test_verify_notion import NOTION, verify
from tests.fakes.bot_target import TargetSettings
from tests.fakes.notion_api import FakeNotion


@pytest.fixture
def env_file(tmp_path: Path) -> Path:
    path = tmp_path / "test.env"
    path.write_text(f"FAKE_TWILIO_TOKEN={TargetSettings().token}\n")
    return path


def test_verify_notion_waits_a_stated_time_then_leaves_its_changes_queued(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    env_file: Path,
    fake_notion: FakeNotion,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    config = fault_config(target("wrong_component"))  # a run that fails: exit 1
    with config.open("a") as handle:
        handle.write(NOTION.format(gates="", runs="") + "verify_wait_s = 1\n")
    monkeypatch.setenv("NOTION_TOKEN", fake_notion.token)
    monkeypatch.setenv("NOTION_BASE_URL", fake_notion.url)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path / "run"))
    assert (
        main(["notion", "init", "--parent", fake_notion.add_page(), "--config", str(config)]) == 0
    )
    capsys.readouterr()
    fake_notion.clear_requests()
    with Outbox(config.parent / "outbox.json").sending():  # another sync is sending
        code = verify(config, env_file, "--notion")
    out, err = capsys.readouterr()
    assert code == 1  # the verdict's, whatever Notion did
    assert out.splitlines()[0].startswith("FAIL")
    lines = err.splitlines()
    assert (
        f"notion: waiting for another opsctl process (pid {os.getpid()}) sending to Notion"
        in (lines[0])
    )
    assert lines[0].endswith(", at most 1 s")
    assert lines[-1].startswith("Notion sync pending: 5 change(s) kept in ")  # with the phase
    assert "kept sending to Notion for over 1 s; this run's changes are queued in" in lines[-1]
    assert "Traceback" not in err
    queued = json.loads((config.parent / "outbox.json").read_text())
    assert len(queued) == 5 and fake_notion.writes() == []
