"""The tests gate reuses a pass for exactly the same inputs, and runs again when any changes."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import httpx
import pytest

from checks.interface import CheckContext, CheckResult, Expectations, RepoSettings, Status
from checks.testsuite import INSIDE_TEST_RUN, TestSuiteCheck, inputs_digest
from opsctl.result_cache import CACHE_DIR_ENV, KEEP_PER_CHECK, FileResultCache
from opsctl.runner import Runner
from tests.conftest import run_opsctl
from tests.loopback import TLS

RUNS_LOG = "SUITE_RUNS_LOG"  # not an input the digest reads: the tests count their own runs


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A one-test project under git; each pytest run of it appends a line to a log."""
    monkeypatch.delenv(INSIDE_TEST_RUN, raising=False)  # its tests are not ours: no recursion
    monkeypatch.setenv(RUNS_LOG, str(tmp_path / "runs.log"))
    root = tmp_path / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("def add(a, b):\n    return a + b\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_app.py").write_text(
        "import os\n\nfrom app import add\n\n\ndef test_add():\n"
        f"    with open(os.environ[{RUNS_LOG!r}], 'a') as log:\n"
        "        log.write('ran\\n')\n"
        "    assert add(2, 2) == 4\n"
    )
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    (root / ".gitignore").write_text(".opsctl/\n__pycache__/\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    return root


def runs(tmp_path: Path) -> int:
    log = tmp_path / "runs.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def run_tests(
    root: Path, cache: FileResultCache | None, coverage_min: float = 50, tests_min: int = 1
) -> tuple[CheckResult, dict[str, str]]:
    """The tests check through the runner, as opsctl runs it (a one-test suite: tests_min 1)."""
    repo = RepoSettings(
        root=root, coverage_min=coverage_min, cov_packages=("app",), tests_min=tests_min
    )
    reports: dict[str, str] = {}

    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "repo", "", "", Expectations(), client, {}, repo=repo, reports=reports, cache=cache
            )
            return await Runner({"tests": TestSuiteCheck()}).run_check("QA", "tests", ctx)

    return asyncio.run(go()), reports


def test_a_pass_is_reused_for_the_same_inputs_and_an_edit_runs_it_again(
    repo: Path, tmp_path: Path
) -> None:
    cache = FileResultCache(tmp_path / "cache")
    first, first_reports = run_tests(repo, cache)
    second, second_reports = run_tests(repo, cache)
    assert runs(tmp_path) == 1, "the second run must not start pytest"
    assert first.status is second.status is Status.PASS
    assert "reused" not in first.reason and first.details["reused_from"] is None
    assert second.reason.startswith("1 tests, 0 failed, 0 errors, 0 skipped; coverage 100.0 %")
    digest = first.details["inputs_digest"]
    assert f": reused from the run of {second.details['reused_from']}, same inputs " in (
        second.reason
    )
    assert digest[:12] in second.reason and second.details["inputs_digest"] == digest
    assert "--fresh" in second.hint
    assert second_reports == first_reports  # the evidence of a reused run is the run's own
    assert {"tests-junit.xml", "tests-report.html", "tests-output.txt"} <= set(second_reports)
    (repo / "app" / "__init__.py").write_text("def add(a, b):\n    return b + a\n")  # uncommitted
    third, _ = run_tests(repo, cache)
    assert runs(tmp_path) == 2 and third.status is Status.PASS and "reused" not in third.reason


def change_input(repo: Path, change: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """One change to what a test run depends on."""
    if change == "uncommitted edit":
        (repo / "app" / "__init__.py").write_text("def add(a, b):\n    return b + a\n")
    elif change == "untracked file":
        (repo / "app" / "extra.py").write_text("X = 1\n")
    elif change == "deleted file":
        (repo / ".gitignore").unlink()
    elif change == "steering variable":
        monkeypatch.setenv("PYTEST_ADDOPTS", "-q")
    elif change == "coverage setting":
        monkeypatch.setenv("COVERAGE_RCFILE", "other.cfg")
    else:
        raise AssertionError(change)


@pytest.mark.parametrize(
    "change",
    ["uncommitted edit", "untracked file", "deleted file", "steering variable", "coverage setting"],
)
def test_any_changed_input_changes_the_digest(
    repo: Path, change: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RepoSettings(root=repo, cov_packages=("app",))
    before = inputs_digest(settings)
    assert inputs_digest(settings) == before, "the digest is a function of the inputs"
    change_input(repo, change, monkeypatch)
    assert inputs_digest(settings) != before, change


def test_ignored_files_the_cache_and_unrelated_variables_are_not_inputs(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = RepoSettings(root=repo, cov_packages=("app",))
    cache = repo / "not-ignored-cache"  # inside the tree, and not in .gitignore
    before = inputs_digest(settings, leave_out=cache)
    (cache / "tests").mkdir(parents=True)
    (cache / "tests" / "entry.json").write_text("{}")
    (repo / ".opsctl").mkdir()
    (repo / ".opsctl" / "notion-outbox.json").write_text("[]")  # ignored by git
    monkeypatch.setenv("WATCHED_BY_OPSCTL", "a:b")  # a new id each run: never an input
    assert inputs_digest(settings, leave_out=cache) == before


def test_a_failure_is_never_reused(repo: Path, tmp_path: Path) -> None:
    (repo / "tests" / "test_fails.py").write_text("def test_fails():\n    assert 1 == 2\n")
    cache = FileResultCache(tmp_path / "cache")
    first, _ = run_tests(repo, cache)
    second, _ = run_tests(repo, cache)
    assert first.status is second.status is Status.FAIL
    assert runs(tmp_path) == 2, "a failure may be a flake: it runs again"
    assert not list((tmp_path / "cache").rglob("*.json"))


def test_a_reused_pass_is_judged_again_against_todays_threshold(repo: Path, tmp_path: Path) -> None:
    (repo / "app" / "more.py").write_text("def untested(x):\n    return x * 2\n")
    cache = FileResultCache(tmp_path / "cache")
    first, _ = run_tests(repo, cache, coverage_min=50)
    stricter, _ = run_tests(repo, cache, coverage_min=99)
    assert first.status is Status.PASS and runs(tmp_path) == 1
    assert stricter.status is Status.FAIL and "is under 99 %" in stricter.reason


def test_an_entry_that_is_not_a_run_is_a_miss_not_a_crash(repo: Path, tmp_path: Path) -> None:
    """An entry from another opsctl version, or edited by hand, under the very same inputs."""
    cache = FileResultCache(tmp_path / "cache")
    digest = inputs_digest(RepoSettings(root=repo, cov_packages=("app",)), leave_out=cache.location)
    cache.put("tests", digest, {"exit_code": 0, "counts": {"tests": 1}, "coverage": "high"})
    result, _ = run_tests(repo, cache)
    assert runs(tmp_path) == 1 and result.status is Status.PASS, result.reason
    assert "reused" not in result.reason
    again, _ = run_tests(repo, cache)  # the good run replaced it
    assert runs(tmp_path) == 1 and "reused" in again.reason


@pytest.mark.parametrize("damage", ["not json", '{"exit_code": 0}', "[]"])
def test_a_damaged_entry_is_a_miss(tmp_path: Path, damage: str) -> None:
    cache = FileResultCache(tmp_path)
    cache.put("tests", "ab" * 32, {"exit_code": 0})
    assert cache.get("tests", "ab" * 32) is not None
    (tmp_path / "tests" / f"{'ab' * 32}.json").write_text(damage)
    assert cache.get("tests", "ab" * 32) is None
    assert FileResultCache(tmp_path, reuse=False).get("tests", "ab" * 32) is None


def test_the_cache_keeps_a_few_entries_per_check(tmp_path: Path) -> None:
    clock = iter(f"2026-11-28T10:0{i}:00Z" for i in range(10))
    cache = FileResultCache(tmp_path, now=lambda: next(clock))
    for i in range(KEEP_PER_CHECK + 2):
        cache.put("tests", f"{i:064x}", {"n": i})
    kept = sorted(p.stem for p in (tmp_path / "tests").iterdir())
    assert len(kept) == KEEP_PER_CHECK
    assert cache.get("tests", f"{KEEP_PER_CHECK + 1:064x}") == {
        "n": KEEP_PER_CHECK + 1,
        "recorded_at": f"2026-11-28T10:0{KEEP_PER_CHECK + 1}:00Z",
    }
    with pytest.raises(ValueError, match="not a cache key"):
        cache.get("tests", "../../etc/passwd")


def repo_config(tmp_path: Path, repo: Path) -> Path:
    """An opsctl.toml whose one gate runs the one-test project's suite."""
    config = tmp_path / "opsctl.toml"
    config.write_text(
        '[environments.repo]\nbase_url = "http://127.0.0.1:9"\n\n'
        f'[repository]\nroot = "{repo}"\ncov_packages = ["app"]\ncoverage_min = 50\n'
        "tests_min = 1\n"
        '\n[gates.QA]\ntitle = "QA"\nchecks = ["tests"]\n'
    )
    return config


def check_tests(
    config: Path, *args: str, cache_dir: Path | None = None
) -> tuple[dict[str, object], str]:
    """`opsctl check tests --json ARGS` as a user runs it: the check's JSON and stderr."""
    done = run_opsctl(
        *("check", "tests", "--env", "repo", "--config", str(config), "--json", *args),
        env={CACHE_DIR_ENV: str(cache_dir)} if cache_dir else None,
        unset=(CACHE_DIR_ENV,),
    )
    assert done.returncode == 0, done.stderr
    check: dict[str, object] = json.loads(done.stdout)["gates"][0]["checks"][0]
    return check, done.stderr


def test_cli_reuses_and_fresh_runs_again(repo: Path, tmp_path: Path) -> None:
    """`opsctl check tests` twice, then with --fresh: the option reaches the check."""
    config = repo_config(tmp_path, repo)

    def opsctl(*args: str, cache_dir: Path | None = None) -> dict[str, object]:
        return check_tests(config, *args, cache_dir=cache_dir)[0]

    assert "reused" not in str(opsctl()["reason"])
    assert "reused from the run of" in str(opsctl()["reason"])
    assert "reused" not in str(opsctl("--fresh")["reason"])
    assert runs(tmp_path) == 2
    assert (tmp_path / ".opsctl" / "cache" / "tests").is_dir(), "the cache sits beside the config"
    # OPSCTL_CACHE_DIR (a folder CI keeps between jobs) moves it: nothing there yet, then a hit.
    elsewhere = tmp_path / "ci-cache"
    assert "reused" not in str(opsctl(cache_dir=elsewhere)["reason"])
    assert "reused from the run of" in str(opsctl(cache_dir=elsewhere)["reason"])
    assert (elsewhere / "tests").is_dir() and runs(tmp_path) == 3


def test_make_test_shows_pytest_as_it_runs_and_make_run_reuses_its_pass(
    repo: Path, tmp_path: Path
) -> None:
    """`make test` is `check tests --fresh --show-output`: pytest's own output on stderr, the
    JSON on stdout untouched, and its pass is the one the tests gate of `make run` reuses."""
    config = repo_config(tmp_path, repo)
    shown, shown_stderr = check_tests(config, "--fresh", "--show-output")
    assert shown["status"] == "PASS" and "reused" not in str(shown["reason"])
    assert "1 passed in " in shown_stderr  # pytest's own summary line
    quiet, quiet_stderr = check_tests(config)
    assert "reused from the run of" in str(quiet["reason"]) and runs(tmp_path) == 1
    assert "passed" not in quiet_stderr  # nothing ran, and without the flag nothing is shown
    _, fresh_stderr = check_tests(config, "--fresh")
    assert runs(tmp_path) == 2 and "passed" not in fresh_stderr, "the output is only kept"
