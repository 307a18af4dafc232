"""Repository gates against planted faults in a small throwaway repository, and on this one."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path

import httpx
import pytest

from checks import secrets as secrets_module
from checks.deployfiles import SHIPPED_SCHEMA, DeployFilesCheck
from checks.deps import DependencyAuditCheck, offline_audit, read_pins
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
from opsctl.result_cache import FileResultCache, cache_for
from opsctl.runner import Runner
from tests.conftest import OSV_SNAPSHOT, REPO_ROOT, SHARED_DIR, run_opsctl, write_advisories
from tests.loopback import TLS

PLANTED_TOKEN = "0123456789abcdef0123456789abcdef"  # pragma: allowlist secret
FULL_ADVISORIES = SHARED_DIR / "advisories"
# A schema of our own for the deploy-files tests: a web service with only the keys our
# render.yaml uses (Render's own schema, shipped in checks/data, is tested below too).
SERVICE_KEYS = (
    "type name runtime plan dockerfilePath dockerContext healthCheckPath autoDeploy envVars"
)
CLOSED_SERVICES_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "services": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {key: {} for key in SERVICE_KEYS.split()},
                "additionalProperties": False,
            },
        }
    },
}


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
    write_advisories(tmp_path / "advisories")
    return root


def settings(root: Path, **changes: object) -> RepoSettings:
    """Settings for a small repository; advisories: the small OSV folder small_repo wrote."""
    base = RepoSettings(
        root=root,
        advisories=root.parent / "advisories",
        lock_files=("requirements/app.txt",),
        coverage_min=50,
        tests_min=1,  # its suite is one test
        cov_packages=("app",),
        today=date(2026, 11, 22),
    )
    return RepoSettings(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def run(
    check: Check, repo: RepoSettings, cache: FileResultCache | None = None
) -> tuple[CheckResult, dict[str, str]]:
    """One check through the runner (as opsctl runs it); returns the result and its reports."""
    reports: dict[str, str] = {}

    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "repo", "", "", Expectations(), client, {}, repo=repo, reports=reports, cache=cache
            )
            return await Runner({check.id: check}).run_check("G", check.id, ctx)

    return asyncio.run(go()), reports


# --- this repository ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "check",
    [SecretScanCheck(), HygieneCheck(), DependencyAuditCheck(), LintCheck(), DeployFilesCheck()],
    ids=lambda c: c.id,
)
def test_this_repository_passes(check: Check, offline_advisories: Path) -> None:
    # The cache opsctl itself uses here: the secret scan reads only what changed since.
    cache = cache_for(REPO_ROOT / "opsctl.toml", False, os.environ)
    result, _ = run(check, RepoSettings(root=REPO_ROOT, advisories=offline_advisories), cache)
    assert result.status is Status.PASS, result.reason
    assert any(char.isdigit() for char in result.reason), "a PASS says how much it looked at"


@pytest.mark.parametrize(
    "check",
    [
        SecretScanCheck(),
        HygieneCheck(),
        DependencyAuditCheck(),
        LintCheck(),
        DeployFilesCheck(),
        TestSuiteCheck(),
    ],
    ids=lambda c: c.id,
)
def test_a_repository_that_is_not_there_is_an_error_for_every_check(
    check: Check, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A wrong [repository] root: each repository check looked at nothing, so none may judge."""
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)  # the tests check too: it runs nothing
    result, _ = run(check, RepoSettings(root=tmp_path / "no-such-folder"))
    assert result.status is Status.ERROR
    assert result.reason == f"no repository at {tmp_path / 'no-such-folder'}"


def test_the_small_osv_folder_covers_our_locks(offline_advisories: Path) -> None:
    """Our own audit above looked at advisories of our pins, and judged them unaffected."""
    ours = {name for lock in RepoSettings.lock_files for name, _ in read_pins(REPO_ROOT / lock)}
    folders = {p.name for p in (offline_advisories / "vulns").iterdir()}
    assert {"requests", "flask", "jinja2", "gunicorn"} <= ours & folders


@pytest.mark.skipif(
    not (FULL_ADVISORIES / "vulns").is_dir(),
    reason=f"the full PyPA advisory database is not at {FULL_ADVISORIES} (set SHARED_DIR)",
)
def test_full_advisory_database_finds_nothing_in_our_locks() -> None:
    result, _ = run(
        DependencyAuditCheck(), RepoSettings(root=REPO_ROOT, advisories=FULL_ADVISORIES)
    )
    assert result.status is Status.PASS, result.reason
    snapshot_commit = "3ccb612573e2511ab5cad7dafecd838605c80cda"  # pragma: allowlist secret
    assert snapshot_commit in result.details["snapshot"]


def test_this_render_yaml_is_valid_against_the_shipped_schema_by_default() -> None:
    result, _ = run(DeployFilesCheck(), RepoSettings(root=REPO_ROOT))
    assert result.status is Status.PASS, result.reason
    assert "valid against Render's Blueprint schema (shipped copy)" in result.reason
    assert result.details["schema"] == str(SHIPPED_SCHEMA)


def test_the_shipped_schema_is_the_one_its_source_note_names() -> None:
    """checks/data/SOURCE.md records the copy's sha256: a refresh updates both."""
    note = (SHIPPED_SCHEMA.parent / "SOURCE.md").read_text()
    digest = hashlib.sha256(SHIPPED_SCHEMA.read_bytes()).hexdigest()
    assert f"`{digest}`" in note
    assert json.loads(SHIPPED_SCHEMA.read_text())["$id"] == (
        "https://render.com/schema/render.yaml.json"
    )


# --- a clean small repository ------------------------------------------------------------


def test_a_clean_small_repository_passes_every_gate(
    small_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)  # its tests are not ours: no recursion
    outcomes = {
        check.id: run(check, settings(small_repo))
        for check in (
            SecretScanCheck(),
            HygieneCheck(),
            DependencyAuditCheck(),
            LintCheck(),
            TestSuiteCheck(),
            DeployFilesCheck(),
        )
    }
    for check_id, (result, _) in outcomes.items():
        assert result.status is Status.PASS, (check_id, result.reason)
    tests, reports = outcomes["tests"]
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


def test_the_secret_scan_reads_again_only_what_changed(
    small_repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = FileResultCache(tmp_path / "cache")
    first, _ = run(SecretScanCheck(), settings(small_repo), cache)
    files = first.details["files_scanned"]
    assert (first.status, first.details["files_read_anew"]) == (Status.PASS, files)
    assert first.reason == f"scanned {files} files: no new secrets"

    again, _ = run(SecretScanCheck(), settings(small_repo), cache)
    assert again.details["files_read_anew"] == 0
    assert (
        again.reason
        == f"scanned {files} files ({files} unchanged since a kept scan): no new secrets"
    )

    # A token planted in a file the cache knows: that file is read again and the token found.
    (small_repo / "app" / "__init__.py").write_text(f'TWILIO_AUTH_TOKEN = "{PLANTED_TOKEN}"\n')
    planted, _ = run(SecretScanCheck(), settings(small_repo), cache)
    assert planted.status is Status.FAIL and "at app/__init__.py:1" in planted.reason
    assert planted.details["files_read_anew"] == 1
    # Found from the cache too, the next time; and the cache holds hashes, never the value.
    kept, _ = run(SecretScanCheck(), settings(small_repo), cache)
    assert (kept.status, kept.details["files_read_anew"]) == (Status.FAIL, 0)
    assert kept.details["findings"] == planted.details["findings"]
    cached = "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert "Twilio Auth Token" in cached and PLANTED_TOKEN not in cached

    # Another scanner (our detectors edited) trusts nothing kept by the old one.
    edited = tmp_path / "secret_plugins.py"
    edited.write_text(secrets_module.PLUGINS_FILE.read_text() + "\n# edited\n")
    monkeypatch.setattr(secrets_module, "PLUGINS_FILE", edited)
    rescanned, _ = run(SecretScanCheck(), settings(small_repo), cache)
    assert rescanned.details["files_read_anew"] == files
    assert rescanned.details["findings"] == planted.details["findings"]
    # Without a cache (--fresh keeps but does not reuse), everything is read.
    fresh, _ = run(
        SecretScanCheck(), settings(small_repo), FileResultCache(tmp_path / "cache", reuse=False)
    )
    assert fresh.details["files_read_anew"] == files


def test_planted_token_never_reaches_output_or_evidence(small_repo: Path, tmp_path: Path) -> None:
    (small_repo / "app" / "keys.py").write_text(f'TWILIO_AUTH_TOKEN = "{PLANTED_TOKEN}"\n')
    git(small_repo, "add", "-A")
    config = tmp_path / "opsctl.toml"
    config.write_text(
        '[environments.repo]\nbase_url = "http://127.0.0.1:9"\n\n'
        f'[repository]\nroot = "{small_repo}"\n'
        '\n[gates.SEC]\ntitle = "Security"\nchecks = ["secrets", "hygiene"]\n'
    )
    # --progress none: the final text alone, whose first line is the verdict.
    done = run_opsctl("verify", "--env", "repo", "--config", str(config), "--progress", "none")
    assert done.returncode == 1
    assert done.stdout.startswith("FAIL: gate SEC Security: secrets: ")
    assert PLANTED_TOKEN not in done.stdout + done.stderr
    bundle_files = [p for p in (tmp_path / "evidence-out").rglob("*") if p.is_file()]
    assert any(p.name == "secret-scan.txt" for p in bundle_files)
    for path in bundle_files:
        assert PLANTED_TOKEN.encode() not in path.read_bytes(), path


def test_vulnerable_pin_fails_naming_advisories_and_fixes(small_repo: Path) -> None:
    (small_repo / "requirements" / "app.txt").write_text("requests==2.19.0\n")
    result, reports = run(DependencyAuditCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    assert "requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)" in result.reason
    assert "requests 2.19.0: PYSEC-2023-74 (fixed in 2.31.0)" in result.reason
    assert "PYSEC-2099-1" not in json.dumps(result.details), "withdrawn: ignored"
    assert result.details["snapshot"] == OSV_SNAPSHOT
    assert "dependency-audit.json" in reports


def test_offline_matching_follows_osv(offline_advisories: Path) -> None:
    """Ranges (fixed, last_affected, several in one), versions lists, withdrawn, GIT ranges."""
    pins = [
        ("requests", "2.19.0"),  # both real advisories; the withdrawn one is ignored
        ("requests", "2.31.0"),  # fixed: nothing
        ("requests", "2.2.1"),  # before PYSEC-2023-74 was introduced
        ("flask", "2.3.1"),  # the second range of two
        ("flask", "2.2.5"),  # between the ranges
        ("jinja2", "3.1.4"),  # last_affected: included
        ("jinja2", "3.1.5"),  # after it
        ("gunicorn", "19.4.0"),  # in the versions list
        ("gunicorn", "19.6.0"),  # not in it
    ]
    found = {(f.package, f.version, f.advisory) for f in offline_audit(offline_advisories, pins)}
    assert found == {
        ("requests", "2.19.0", "PYSEC-2018-28"),
        ("requests", "2.19.0", "PYSEC-2023-74"),
        ("requests", "2.2.1", "PYSEC-2018-28"),
        ("flask", "2.3.1", "PYSEC-2023-62"),
        ("jinja2", "3.1.4", "PYSEC-2099-2"),
        ("gunicorn", "19.4.0", "PYSEC-2099-3"),
    }


def test_a_version_in_the_first_of_two_ranges_is_affected(offline_advisories: Path) -> None:
    found = offline_audit(offline_advisories, [("flask", "2.2.4")])
    assert {(f.package, f.version, f.advisory) for f in found} == {
        ("flask", "2.2.4", "PYSEC-2023-62")
    }


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


def plant_env_docker(root: Path) -> None:
    """`env: docker` (Render's old spelling of runtime) in the web service of render.yaml."""
    text = (root / "render.yaml").read_text()
    assert text.count("    runtime: docker\n") == 1
    (root / "render.yaml").write_text(
        text.replace("    runtime: docker\n", "    runtime: docker\n    env: docker\n")
    )


def write_schema(path: Path, schema: object) -> Path:
    path.write_text(json.dumps(schema))
    return path


def test_render_yaml_with_an_unknown_key_fails_naming_it_and_where(
    small_repo: Path, tmp_path: Path
) -> None:
    schema = write_schema(tmp_path / "closed.json", CLOSED_SERVICES_SCHEMA)
    clean, _ = run(DeployFilesCheck(), settings(small_repo, render_schema=schema))
    assert clean.status is Status.PASS, clean.reason
    assert f"valid against the schema {schema}" in clean.reason
    assert clean.details["schema"] == str(schema)
    plant_env_docker(small_repo)
    result, _ = run(DeployFilesCheck(), settings(small_repo, render_schema=schema))
    assert result.status is Status.FAIL
    expected = (
        "render.yaml services[0]: Additional properties are not allowed ('env' was unexpected)"
    )
    assert result.reason == f"1 problem(s), first: {expected}"
    assert result.details["problems"]["render.yaml"] == [expected]


def test_by_default_renders_schema_refuses_env_docker_naming_it_and_where(
    small_repo: Path,
) -> None:
    """`env: docker` is the old spelling of `runtime: docker`; Render's schema refuses it."""
    clean, _ = run(DeployFilesCheck(), settings(small_repo))
    assert clean.status is Status.PASS, clean.reason
    plant_env_docker(small_repo)
    result, _ = run(DeployFilesCheck(), settings(small_repo))
    assert result.status is Status.FAIL
    expected = (
        "render.yaml services[0]: Additional properties are not allowed ('env' was unexpected)"
    )
    assert result.details["problems"]["render.yaml"] == [expected]
    assert result.reason == f"1 problem(s), first: {expected}"


def test_configured_render_schema_is_the_one_used(small_repo: Path, tmp_path: Path) -> None:
    """[repository] render_schema in opsctl.toml, relative to it, through `opsctl check`."""
    write_schema(
        tmp_path / "no-free-plan.json",
        {
            "properties": {
                "services": {"items": {"properties": {"plan": {"not": {"const": "free"}}}}}
            }
        },
    )
    config = tmp_path / "opsctl.toml"
    config.write_text(
        '[environments.local]\nbase_url = "http://127.0.0.1:9"\n\n'
        f'[repository]\nroot = "{small_repo}"\nrender_schema = "no-free-plan.json"\n\n'
        '[gates.D]\ntitle = "Deploy"\nchecks = ["deploy-files"]\n'
    )
    done = subprocess.run(
        [sys.executable, "-m", "opsctl.cli", "check", "deploy-files", "--config", str(config)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "render.yaml services[0].plan: 'free' should not be valid under" in done.stdout


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (None, "cannot read the render.yaml schema {path}: No such file or directory"),
        ("{not json", "the render.yaml schema {path} is not valid JSON: "),
        ('{"type": 12}', "the render.yaml schema {path} is not a JSON Schema: "),
    ],
    ids=["missing", "not-json", "not-a-schema"],
)
def test_a_missing_or_broken_schema_is_an_error(
    small_repo: Path, tmp_path: Path, content: str | None, reason: str
) -> None:
    path = tmp_path / "schema.json"
    if content is not None:
        path.write_text(content)
    result, _ = run(DeployFilesCheck(), settings(small_repo, render_schema=path))
    assert result.status is Status.ERROR
    assert result.reason.startswith(reason.format(path=path)), result.reason
    assert "\n" not in result.reason
    assert "render_schema" in result.hint


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
