"""The keep-alive's systemd units: valid for systemd, and hardened (exposure under 2.0).

systemd-analyze judges the units as shipped, with /opt/clara pointed at this checkout so that
the ExecStart binary exists. Skipped, with the reason, where systemd-analyze is not installed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from opsctl.exitcodes import ExitCode
from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
UNITS = sorted(p.name for p in DEPLOY.iterdir() if p.suffix in (".service", ".timer"))
SERVICES = [name for name in UNITS if name.endswith(".service")]
ANALYZE = shutil.which("systemd-analyze")
EXPOSURE_MAX = 2.0

pytestmark = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is not installed (apt-get install systemd)"
)


@pytest.fixture
def units(tmp_path: Path) -> Path:
    """Every unit of deploy/ in a folder, its paths on this checkout and this venv's opsctl."""
    opsctl = Path(sys.executable).parent / "opsctl"
    for name in UNITS:
        text = (DEPLOY / name).read_text()
        text = text.replace("/opt/clara/.venv/bin/opsctl", str(opsctl))
        (tmp_path / name).write_text(text.replace("/opt/clara", str(REPO_ROOT)))
    return tmp_path


def analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def test_the_units_are_a_daemon_and_a_timer_with_its_oneshot() -> None:
    assert UNITS == ["opsctl-warmup-once.service", "opsctl-warmup.service", "opsctl-warmup.timer"]
    timer = (DEPLOY / "opsctl-warmup.timer").read_text()
    assert "Unit=opsctl-warmup-once.service" in timer
    assert "OnUnitActiveSec=14min" in timer  # under the free tier's 15 idle minutes


def test_systemd_accepts_every_unit(units: Path) -> None:
    done = analyze("verify", "--man=no", *UNITS, cwd=units)
    assert done.returncode == 0, done.stderr
    # Anything it says about our units is a finding (its noise about the host's own is not).
    assert not [line for line in done.stderr.splitlines() if "opsctl-warmup" in line], done.stderr


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_is_hardened(service: str, units: Path) -> None:
    done = analyze("security", "--offline=yes", f"./{service}", cwd=units)
    found = re.search(r"Overall exposure level for \S+: ([\d.]+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) < EXPOSURE_MAX, done.stdout


@pytest.mark.parametrize("service", SERVICES)
def test_a_configuration_error_is_not_restarted_for_ever(service: str) -> None:
    text = (DEPLOY / service).read_text()
    assert "DynamicUser=yes" in text and "StateDirectory=opsctl-warmup" in text
    assert "--log-dir ${STATE_DIRECTORY}" in text  # the one place it may write
    if "Restart=always" in text:
        # opsctl's exit code for bad input (a configuration error): restarting cannot fix it.
        assert f"RestartPreventExitStatus={int(ExitCode.USAGE)}" in text
