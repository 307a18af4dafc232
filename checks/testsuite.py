"""Tests: pytest in a subprocess with JUnit XML, a self-contained HTML report and coverage."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from checks.interface import Check, CheckContext, CheckError, CheckResult, RepoSettings, Status

# Set for the pytest this check starts: a repository whose own tests run `opsctl verify`
# would otherwise start its suite again from inside itself, without end.
INSIDE_TEST_RUN = "OPSCTL_INSIDE_TEST_RUN"
NO_TESTS_COLLECTED = 5


def run_pytest(repo: RepoSettings, out: Path) -> tuple[int, str]:
    """Run the repository's tests; JUnit, HTML and coverage JSON land in `out`."""
    cov = [f"--cov={package}" for package in repo.cov_packages]
    if cov:
        cov += [f"--cov-report=json:{out / 'coverage.json'}", "--cov-report="]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={out / 'junit.xml'}",
            f"--html={out / 'report.html'}",
            "--self-contained-html",
            *cov,
        ],
        cwd=repo.root,
        env={**os.environ, INSIDE_TEST_RUN: "1"},
        capture_output=True,
        text=True,
        check=False,
        timeout=1800,
    )
    return done.returncode, done.stdout[-3000:] + done.stderr[-2000:]


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped, summed over the JUnit file's suites."""
    counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    if not path.is_file():
        return counts
    root = ElementTree.parse(path).getroot()  # noqa: S314 - written by the pytest we ran
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


class TestSuiteCheck(Check):
    """The repository's tests run, pass, and cover enough of the code."""

    __test__ = False  # not a pytest test class, whatever its name says
    id = "tests"
    title = "tests pass with enough coverage"
    done_when = "pytest runs at least one test, none fails, coverage at or above the threshold"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        if os.environ.get(INSIDE_TEST_RUN):
            return self.result(
                Status.SKIP,
                "already inside this repository's test run "
                "(running the suite again from within itself would recurse)",
            )
        return await asyncio.to_thread(self._run, ctx)

    def _run(self, ctx: CheckContext) -> CheckResult:
        repo = ctx.repository()
        with tempfile.TemporaryDirectory(prefix="opsctl-tests-") as tmp:
            out = Path(tmp)
            code, tail = run_pytest(repo, out)
            counts = junit_counts(out / "junit.xml")
            coverage = _coverage(out / "coverage.json")
            for name, report in (
                ("tests-junit.xml", "junit.xml"),
                ("tests-report.html", "report.html"),
            ):
                if (out / report).is_file():
                    ctx.reports[name] = (out / report).read_text(encoding="utf-8")
        ctx.reports["tests-output.txt"] = tail
        details: dict[str, Any] = {
            **counts,
            "exit_code": code,
            "coverage_percent": coverage,
            "coverage_min": repo.coverage_min,
        }
        if code == NO_TESTS_COLLECTED or counts["tests"] == 0:
            return self.result(
                Status.FAIL,
                "no tests were collected",
                "a repository without tests proves nothing: add tests",
                details=details,
            )
        if code not in (0, 1):
            raise CheckError(
                f"pytest could not run (exit {code}): {tail.strip()[-200:]}",
                "run pytest yourself to see why",
            )
        ran = f"{counts['tests']} tests, {counts['failures']} failed, {counts['errors']} errors"
        if code == 1 or counts["failures"] or counts["errors"]:
            return self.result(
                Status.FAIL, ran, "see tests-report.html in the evidence", details=details
            )
        if coverage is None and repo.cov_packages:
            raise CheckError("pytest ran but wrote no coverage", "is pytest-cov installed?")
        if coverage is not None and coverage < repo.coverage_min:
            return self.result(
                Status.FAIL,
                f"{ran}; coverage {coverage:.1f} % is under {repo.coverage_min:g} %",
                "test the uncovered code (coverage.json in the evidence names it)",
                details=details,
            )
        measured = f"; coverage {coverage:.1f} %" if coverage is not None else ""
        return self.result(
            Status.PASS, f"{ran}, {counts['skipped']} skipped{measured}", details=details
        )

    def budget_s(self, ctx: CheckContext) -> float:
        return 1800.0


def _coverage(path: Path) -> float | None:
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["totals"]["percent_covered"])
