"""The HTML report, rendered by headless Chromium: the verdict and every failing reason visible."""

from __future__ import annotations

import re
import shutil
import subprocess
from html import unescape
from pathlib import Path

import pytest

from checks.interface import Status
from evidence.formats.html import latency_chart, render_html
from tests.evidence.test_formats import sample_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def test_report_is_self_contained() -> None:
    html = render_html(sample_run())
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "no CDN, no network"
    assert "<svg" in html and "cold start" in html


def test_latency_chart_without_measurements() -> None:
    assert latency_chart(None) == "<p>No latencies were measured in this run.</p>"


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="Debian's chromium is not installed (apt-get install chromium; .ci/run installs it)",
)
def test_chromium_shows_the_verdict_and_every_failing_reason(tmp_path: Path) -> None:
    run = sample_run()
    page = tmp_path / "report.html"
    page.write_text(render_html(run))
    profile = tmp_path / "profile"
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    # The DOM as Chromium built it, tags stripped: what a reader sees.
    visible = unescape(
        re.sub(r"<[^>]+>", " ", re.sub(r"<style>.*?</style>", "", done.stdout, flags=re.S))
    )
    visible = re.sub(r"\s+", " ", visible)
    assert run.verdict in visible
    failing = [c for g in run.gates for c in g.checks if c.status in (Status.FAIL, Status.ERROR)]
    assert failing
    for check in failing:
        assert check.reason in visible
        assert check.hint in visible
    screenshot = tmp_path / "report.png"
    shot = subprocess.run(
        [
            str(CHROMIUM),
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--screenshot={screenshot}",
            "--window-size=1000,900",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shot.returncode == 0 and screenshot.stat().st_size > 5000
