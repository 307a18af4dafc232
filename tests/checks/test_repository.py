"""Repository gates against planted faults in a small throwaway repository, and on this one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest

from checks.deployfiles import DeployFilesCheck
from checks.deps import DependencyAuditCheck
from checks.hygiene import HygieneCheck
from checks.interface import (
    AcceptedRisk,
    Check,
    CheckContext,
    CheckResult,
    Expectations,
    RepoSettings,
    Status,
)
from checks.lint import LintCheck
from checks.secrets import SecretScanCheck
from checks.testsuite import INSIDE_TEST_RUN, TestSuiteCheck
from opsctl.runner import Runner
from tests.conftest import REPO_ROOT, SHARED_DIR

ADVISORIES = SHARED_DIR / "advisories"
PLANTED_TOKEN = "0123456789abcdef0123456789abcdef"  # pragma: allowlist secret
needs_advisories = pytest.mark.skipif(
    not ADVISORIES.is_dir(), reason=f"the offline advisories are not at {ADVISORIES}"
)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(root), *args], check=True, capture_output=True)


@pytest.fixture
def small_repo(tmp_path: Path) -> Path:
    """A tiny project shaped like ours: code, tests, a lock, deploy files, assets; under git."""
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text(
        '"""App."""\n\n\ndef add(a: int, b: int) -> int:\n    """Sum."""\n    return a + b\n'
    )
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(
        "from app import add\n\n\ndef test_add() -> None:\n    assert add(2, 2) == 4\n"
    )
    (root / "pyproject.toml").write_text(
        '[tool.ruff]\nline-length = 100\n[tool.ruff.lint]\nselect = ["E", "F", "S"]\n'
        'ignore = ["S101"]\n[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
    )
    (root / ".gitignore").write_text(".env\n.venv/\n__pycache__/\nevidence-out/\n")
    (root / "requirements").mkdir()
    (root / "requirements" / "app.txt").write_text("requests==2.32.3\nflask==3.1.3\n")
    for name in ("render.yaml", "Dockerfile", ".hadolint.yaml"):
        shutil.copy(REPO_ROOT / name, root / name)
    shutil.copytree(REPO_ROOT / "bot" / "data", root / "bot" / "data")
    shutil.copytree(REPO_ROOT / "bot" / "static", root / "bot" / "static")
    git(root, "init", "-q")
    git(root, "add", "-A")
    return root


def settings(root: Path, **changes: object) -> RepoSettings:
    base = RepoSettings(
        root=root,
        advisories=ADVISORIES,
        lock_files=("requirements/app.txt",),
        coverage_min=50,
        cov_packages=("app",),
        today=date(2026, 11, 22),
    )
    return RepoSettings(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def run(check: Check, repo: RepoSettings) -> tuple[CheckResult, dict[str, str]]:
    """One check through the runner (as opsctl runs it); returns the result and its reports."""
    reports: dict[str, str] = {}

    async def go() -> CheckResult:
        async with httpx.AsyncClient() as client:
            ctx = CheckContext(
                "repo", "", "", Expectations(), client, {}, repo=repo, reports=reports
            )
            return await Runner({check.id: check}).run_check("G", check.id, ctx)

    return asyncio.run(go()), reports


# --- this repository ---------------------------------------------------------------------


@needs_advisories
@pytest.mark.parametrize(
    "check",
    [SecretScanCheck(), HygieneCheck(), DependencyAuditCheck(), LintCheck(), DeployFilesCheck()],
    ids=lambda c: c.id,
)
def test_this_repository_passes(check: Check) -> None:
    schema = SHARED_DIR / "schemas" / "render.yaml.json"
    result, _ = run(
        check, RepoSettings(root=REPO_ROOT, advisories=ADVISORIES, render_schema=schema)
    )
    assert result.status is Status.PASS, result.reason
    assert any(char.isdigit() for char in result.reason), "a PASS says how much it looked at"


# --- a clean small repository ------------------------------------------------------------


@needs_advisories
def test_a_clean_small_repository_passes_every_gate(
    small_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)  # its tests are not ours: no recursion
    for check in (
        SecretScanCheck(),
        HygieneCheck(),
        DependencyAuditCheck(),
        LintCheck(),
        TestSuiteCheck(),
        DeployFilesCheck(),
    ):
        result, _ = run(check, settings(small_repo))
        assert result.status is Status.PASS, (check.id, result.reason)
    tests, reports = run(TestSuiteCheck(), settings(small_repo))
    assert tests.reason.startswith("1 tests, 0 failed, 0 errors, 0 skipped; coverage 100.0 %")
    assert {"tests-junit.xml", "tests-report.html"} <= set(reports)
    assert "<html" in reports["tests-report.html"].lower()


# --- planted faults ------------------------------------------------------------------------


def test_planted_twilio_token_fails_naming_file_and_line_never_the_value(small_repo: Path) -> None:
    (small_repo / "app" / "settings.py").write_text(
        f'"""Settings."""\n\nTIMEOUT = 5\nTWILIO_AUTH_TOKEN = "{PLANTED_TOKEN}"\n'
    )
    git(small_repo, "add", "-A")
    result, reports = run(SecretScanCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert "at app/settings.py:4" in result.reason
    found = {(f["file"], f["line"], f["type"]) for f in result.details["findings"]}
    assert ("app/settings.py", 4, "Twilio Auth Token") in found
    everything = (
        json.dumps(result.details) + result.reason + result.hint + "".join(reports.values())
    )
    assert PLANTED_TOKEN not in everything


def test_planted_token_never_reaches_output_or_evidence(small_repo: Path, tmp_path: Path) -> None:
    (small_repo / "app" / "keys.py").write_text(f'TWILIO_AUTH_TOKEN = "{PLANTED_TOKEN}"\n')
    git(small_repo, "add", "-A")
    config = tmp_path / "opsctl.toml"
    config.write_text(
        '[environments.repo]\nbase_url = "http://127.0.0.1:9"\n\n'
        f'[repository]\nroot = "{small_repo}"\n'
        '\n[gates.SEC]\ntitle = "Security"\nchecks = ["secrets", "hygiene"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "opsctl.cli", "verify", "--env", "repo", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL: gate SEC Security: secrets: ")
    assert PLANTED_TOKEN not in done.stdout + done.stderr
    bundle_files = [p for p in (tmp_path / "evidence-out").rglob("*") if p.is_file()]
    assert any(p.name == "secret-scan.txt" for p in bundle_files)
    for path in bundle_files:
        assert PLANTED_TOKEN.encode() not in path.read_bytes(), path


@needs_advisories
def test_vulnerable_pin_fails_naming_advisories_and_fixes(small_repo: Path) -> None:
    (small_repo / "requirements" / "app.txt").write_text("requests==2.19.0\n")
    result, reports = run(DependencyAuditCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert "requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)" in result.reason
    assert "requests 2.19.0: PYSEC-2023-74 (fixed in 2.31.0)" in result.reason
    snapshot_commit = "3ccb612573e2511ab5cad7dafecd838605c80cda"  # pragma: allowlist secret
    assert snapshot_commit in result.details["snapshot"]
    assert "dependency-audit.json" in reports


@needs_advisories
def test_accepted_risks_pass_until_they_expire(small_repo: Path) -> None:
    (small_repo / "requirements" / "app.txt").write_text("requests==2.19.0\n")
    risks = (
        AcceptedRisk("PYSEC-2018-28", "no redirects followed", date(2026, 12, 31)),
        AcceptedRisk("PYSEC-2023-74", "no proxies", date(2026, 12, 31)),
    )
    result, _ = run(DependencyAuditCheck(), settings(small_repo, accepted_risks=risks))
    assert result.status is Status.PASS and "2 accepted risk(s)" in result.reason
    later, _ = run(
        DependencyAuditCheck(), settings(small_repo, accepted_risks=risks, today=date(2027, 1, 1))
    )
    assert later.status is Status.FAIL
    assert "accepted risk expired 2026-12-31" in later.reason


def test_unreadable_offline_source_is_an_error(small_repo: Path, tmp_path: Path) -> None:
    result, _ = run(
        DependencyAuditCheck(), settings(small_repo, advisories=tmp_path / "no-such-folder")
    )
    assert result.status is Status.ERROR
    assert result.reason.startswith("cannot read the advisories at ")
    assert "--advisories" in result.hint


def test_lock_without_pins_is_an_error(small_repo: Path) -> None:
    (small_repo / "requirements" / "app.txt").write_text("# nothing pinned\n")
    result, _ = run(DependencyAuditCheck(), settings(small_repo))
    assert result.status is Status.ERROR and "no pinned dependency" in result.reason


def test_lint_error_fails_with_file_and_line(small_repo: Path) -> None:
    (small_repo / "app" / "bad.py").write_text(
        "import os\nimport subprocess\n\nsubprocess.call('ls', shell=True)\n"
    )
    result, reports = run(LintCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    findings = result.details["findings"]
    assert "app/bad.py:1: F401 `os` imported but unused" in findings
    assert any(f.startswith("app/bad.py:4: S602") for f in findings), findings
    assert "lint.txt" in reports


def test_nothing_to_lint_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("no code here\n")
    result, _ = run(LintCheck(), settings(tmp_path))
    assert result.status is Status.ERROR and result.reason.startswith("ruff linted no file")


def test_failing_test_fails(small_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)
    (small_repo / "tests" / "test_more.py").write_text(
        "def test_broken() -> None:\n    assert 1 == 2\n"
    )
    result, _ = run(TestSuiteCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert result.reason == "2 tests, 1 failed, 0 errors"


def test_a_repository_without_tests_fails(
    small_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)
    shutil.rmtree(small_repo / "tests")
    result, _ = run(TestSuiteCheck(), settings(small_repo))
    assert (result.status, result.reason) == (Status.FAIL, "no tests were collected")


def test_low_coverage_fails(small_repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)
    (small_repo / "app" / "unused.py").write_text(
        "def a() -> int:\n    return 1\n\n\ndef b() -> int:\n    return 2\n\n\n"
        "def c() -> int:\n    return 3\n"
    )
    result, _ = run(TestSuiteCheck(), settings(small_repo, coverage_min=90))
    assert result.status is Status.FAIL and "is under 90 %" in result.reason


def test_inside_our_own_test_run_the_tests_gate_skips(small_repo: Path) -> None:
    result, _ = run(TestSuiteCheck(), settings(small_repo))
    assert result.status is Status.SKIP and "would recurse" in result.reason


def test_render_yaml_missing_a_variable_fails(small_repo: Path) -> None:
    text = (small_repo / "render.yaml").read_text()
    (small_repo / "render.yaml").write_text(
        text.replace('      - key: LLM_TIMEOUT\n        value: "8"\n', "")
    )
    result, _ = run(DeployFilesCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert "render.yaml does not declare LLM_TIMEOUT" in result.reason


def test_dockerfile_running_as_root_fails(small_repo: Path) -> None:
    text = (small_repo / "Dockerfile").read_text()
    (small_repo / "Dockerfile").write_text(text.replace("USER 10001\n", ""))
    result, _ = run(DeployFilesCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert "the image runs as root" in json.dumps(result.details["problems"])


def test_a_tracked_env_file_fails_hygiene(small_repo: Path) -> None:
    (small_repo / ".env").write_text("X=1\n")
    git(small_repo, "add", "-f", ".env")
    result, _ = run(HygieneCheck(), settings(small_repo))
    assert result.status is Status.FAIL and ".env" in result.reason
