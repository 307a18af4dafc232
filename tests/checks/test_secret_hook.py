"""The pre-commit secret hook: the staged files only, every finding named, no value shown."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from checks.secrets import BASELINE, PLUGINS_FILE, may_hold_secrets

ROOT = Path(__file__).resolve().parents[2]
# Built here, not written in the file: the scan of this repository must not find them.
TWILIO_TOKEN = "0123456789abcdef" * 2
NOTION_TOKEN = "ntn_" + "a1B2" * 11 + "xy"


def secret_hook() -> dict[str, str]:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text(encoding="utf-8"))
    hooks = [hook for repo in config["repos"] for hook in repo["hooks"]]
    (hook,) = [hook for hook in hooks if hook["id"] == "secret-scan"]
    return dict(hook)


@pytest.mark.parametrize(
    "path",
    [
        "requirements/toolkit.txt",
        "bot/static/cache/es/imv.mp3",
        "docs/shot.png",
        "uv.lock",
        ".secrets.baseline",
        "sub/.secrets.baseline",
        "bot/webhook.py",
        "README.md",
        "deploy/requirements.txt",
        "render.yaml",
    ],
)
def test_the_hook_leaves_out_exactly_what_the_check_leaves_out(path: str) -> None:
    excluded = re.search(secret_hook()["exclude"], path) is not None
    assert excluded == (not may_hold_secrets(Path(path)))


def test_the_hook_is_given_the_staged_files() -> None:
    hook = secret_hook()
    assert hook.get("pass_filenames", True) and not hook.get("always_run", False)


def run_hook(folder: Path, *files: str) -> subprocess.CompletedProcess[str]:
    entry = secret_hook()["entry"].split()
    assert entry[0] == "scripts/venv-run"
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(
        [*entry[1:], *files], cwd=folder, env=env, capture_output=True, text=True, timeout=60
    )


def test_every_finding_is_named_and_no_value_is_shown(tmp_path: Path) -> None:
    # The baseline names our detectors' file relative to the repository root.
    shutil.copy(ROOT / BASELINE, tmp_path / BASELINE)
    (tmp_path / "checks").mkdir()
    shutil.copy(PLUGINS_FILE, tmp_path / "checks" / PLUGINS_FILE.name)
    (tmp_path / "clean.py").write_text("GREETING = 'hola'\n", encoding="utf-8")
    (tmp_path / "leak.py").write_text(
        f'AUTH_TOKEN = "{TWILIO_TOKEN}"\nnotion = "{NOTION_TOKEN}"\n', encoding="utf-8"
    )
    assert run_hook(tmp_path, "clean.py").returncode == 0
    done = run_hook(tmp_path, "clean.py", "leak.py")
    shown = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Twilio Auth Token" in shown and "Location:    leak.py:1" in shown
    assert "Notion Integration Token" in shown and "Location:    leak.py:2" in shown
    assert TWILIO_TOKEN not in shown and NOTION_TOKEN not in shown
