"""A run of repository checks only loads no HTTP stack: no httpx, no client, no TLS context."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.checks.test_secret_workers import secrets_only_config
from tests.conftest import REPO_ROOT

# Run opsctl's own entry point, then write every module the process holds as it exits (a
# module imported in any thread, whatever stream its output was captured to at the time).
_WRAPPER = """
import atexit, sys
out = sys.argv.pop(1)
atexit.register(lambda: open(out, "w").write("\\n".join(sorted(sys.modules))))
from opsctl.cli import main
sys.exit(main(sys.argv[1:]))
"""


def imported_by(command: list[str], cwd: Path, out: Path) -> tuple[int, set[str]]:
    """The exit code of `opsctl COMMAND` and every module it had imported by its end."""
    done = subprocess.run(
        [sys.executable, "-c", _WRAPPER, str(out), *command],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, set(out.read_text().split("\n"))


def test_opsctl_check_of_a_repository_check_imports_no_httpx(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text('"""App."""\n')
    config = secrets_only_config(tmp_path, root)

    code, modules = imported_by(
        ["check", "secrets", "--env", "repo", "--config", str(config), "--progress", "none"],
        REPO_ROOT,
        tmp_path / "modules.txt",
    )

    assert code == 0
    assert "checks.secrets" in modules  # the check ran, in this process
    assert not {m for m in modules if m.split(".")[0] in {"httpx", "httpcore", "h11"}}
