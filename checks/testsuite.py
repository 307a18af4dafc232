"""Tests: pytest in a subprocess with JUnit XML, a self-contained HTML report and coverage."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

from checks import children
from checks.interface import Check, CheckContext, CheckError, CheckResult, RepoSettings, Status
from checks.repo_files import tracked_files

# Set for the pytest this check starts: a repository whose own tests run `opsctl verify`
# would otherwise start its suite again from inside itself, without end.
INSIDE_TEST_RUN = "OPSCTL_INSIDE_TEST_RUN"
NO_TESTS_COLLECTED = 5
SUITE_TIMEOUT_S = 1800.0
COUNTED = ("tests", "failures", "errors", "skipped")  # what a JUnit file's suites count
OUTPUT_KEPT = 5000  # characters of pytest's output kept as tests-output.txt (its summary)
FAILED_NAMED = 20  # failing tests named in the result; the rest are counted ("and N more")


def pytest_args(repo: RepoSettings, out: Path) -> list[str]:
    """The pytest command line; JUnit, HTML and coverage JSON land in `out`."""
    cov = [f"--cov={package}" for package in repo.cov_packages]
    if cov:
        cov += [f"--cov-report=json:{out / 'coverage.json'}", "--cov-report="]
    return [
        "-q",
        "-p",
        "no:cacheprovider",
        f"--junitxml={out / 'junit.xml'}",
        f"--html={out / 'report.html'}",
        "--self-contained-html",
        *cov,
    ]


def run_pytest(
    repo: RepoSettings, out: Path, show: Callable[[str], object] | None = None
) -> tuple[int, str]:
    """Run the repository's tests; JUnit, HTML and coverage JSON land in `out`. The exit code
    and the output's tail; `show` (`check --show-output`) sees the output as it comes."""
    args = [sys.executable, "-m", "pytest", *pytest_args(repo, out)]
    # Coverage's data file goes with the reports: a run leaves the tree as it found it.
    env = {**os.environ, INSIDE_TEST_RUN: "1", "COVERAGE_FILE": str(out / ".coverage")}
    try:
        if show is not None:
            return children.run_shown(
                args, cwd=repo.root, env=env, timeout=SUITE_TIMEOUT_S, show=show, keep=OUTPUT_KEPT
            )
        done = children.run(
            args,
            cwd=repo.root,
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=SUITE_TIMEOUT_S,
        )
    except subprocess.TimeoutExpired:
        raise CheckError(
            f"the test suite did not finish within {SUITE_TIMEOUT_S:g}s (stopped)",
            "find the test that hangs: pytest --timeout, or the tests-output.txt of a run",
        ) from None
    return done.returncode, done.stdout[-3000:] + done.stderr[-(OUTPUT_KEPT - 3000) :]


def junit_counts(path: Path) -> dict[str, int]:
    """tests, failures, errors and skipped, summed over the JUnit file's suites."""
    counts = dict.fromkeys(COUNTED, 0)
    if not path.is_file():
        return counts
    root = ElementTree.parse(path).getroot()  # noqa: S314 - written by the pytest we ran
    for suite in root.iter("testsuite"):
        for key in counts:
            counts[key] += int(suite.get(key, 0))
    return counts


def failed_tests(junit_xml: str, root: Path) -> list[dict[str, str]]:
    """Each failed or erroring test in the JUnit text, in its order: {'test': the pytest node id
    (runnable as `pytest ID` from `root`), 'message': the first line of the failure message}."""
    if not junit_xml.strip():
        return []
    try:
        tree = ElementTree.fromstring(junit_xml)  # noqa: S314 - written by the pytest we ran
    except ElementTree.ParseError:
        return []  # a suite killed mid-write: the counts (zero) and tests-output.txt say so
    failed = []
    for case in tree.iter("testcase"):
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is None:
            continue
        message = (problem.get("message") or "").strip().splitlines()
        failed.append(
            {
                "test": _node_id(case.get("classname", ""), case.get("name", ""), root),
                "message": message[0][:200] if message else "",
            }
        )
    return failed


def _node_id(classname: str, name: str, root: Path) -> str:
    """pytest's node id ('tests/test_app.py::TestK::test_b[2]') from JUnit's dotted classname
    ('tests.test_app.TestK'): the longest dotted prefix that is a file under `root` is the module.
    A collection error has no classname and names the module ('tests.test_broken')."""
    parts = classname.split(".") if classname else name.split(".")
    rest = [name] if classname else []
    for cut in range(len(parts), 0, -1):
        module = "/".join(parts[:cut]) + ".py"
        if (root / module).is_file():
            return "::".join([module, *parts[cut:], *rest])
    return "::".join(filter(None, [classname, name]))


# What else the suite's outcome depends on besides the files: variables that steer pytest,
# Python or this toolkit (SHARED_DIR: where the optional data sets are).
ENV_INPUT_PREFIXES = ("PYTEST", "PYTHON", "OPSCTL_", "SHARED_DIR", "COVERAGE_")


def inputs_digest(repo: RepoSettings, leave_out: Path | None = None) -> str:
    """sha256 of everything a test run depends on: the tree's content as it is now
    (uncommitted changes and untracked files included, ignored ones not), the interpreter,
    the installed distributions, the pytest command and the variables that steer them."""
    digest = hashlib.sha256()

    def add(*parts: str) -> None:
        for part in parts:
            digest.update(part.encode("utf-8", "surrogateescape") + b"\0")

    for relative in tracked_files(repo.root):
        path = repo.root / relative
        if leave_out is not None and path.is_relative_to(leave_out):
            continue  # the cache's own files are outputs, not inputs
        try:
            with path.open("rb") as handle:
                add(relative.as_posix(), hashlib.file_digest(handle, "sha256").hexdigest())
        except OSError:
            add(relative.as_posix(), "unreadable")
    add(sys.version, platform.machine(), *pytest_args(repo, Path("OUT")))
    add(*sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions()))
    add(*sorted(f"{k}={v}" for k, v in os.environ.items() if k.startswith(ENV_INPUT_PREFIXES)))
    return digest.hexdigest()


@dataclass(frozen=True)
class SuiteRun:
    """What one pytest run left: exit code, JUnit counts, coverage and the reports."""

    exit_code: int
    counts: Mapping[str, int]
    coverage: float | None
    reports: Mapping[str, str]
    reused_from: str = ""
    """When the run was reused: the time the cached run was recorded."""

    def as_entry(self) -> dict[str, Any]:
        """The cache entry (JSON)."""
        return {
            "exit_code": self.exit_code,
            "counts": dict(self.counts),
            "coverage": self.coverage,
            "reports": dict(self.reports),
        }

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> SuiteRun | None:
        """A run read back from the cache; None when the entry is not one (a miss, not a crash:
        an entry from another version of opsctl, or edited by hand)."""
        try:
            counts = {key: int(entry["counts"][key]) for key in COUNTED}
            return cls(
                int(entry["exit_code"]),
                counts,
                None if entry["coverage"] is None else float(entry["coverage"]),
                {str(k): str(v) for k, v in entry["reports"].items()},
                str(entry["recorded_at"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            return None


def run_suite(repo: RepoSettings, show: Callable[[str], object] | None = None) -> SuiteRun:
    """pytest now, in a scratch folder; its reports are read back before the folder goes."""
    with tempfile.TemporaryDirectory(prefix="opsctl-tests-") as tmp:
        out = Path(tmp)
        code, tail = run_pytest(repo, out, show)
        reports = {"tests-output.txt": tail}
        for name, report in (
            ("tests-junit.xml", "junit.xml"),
            ("tests-report.html", "report.html"),
        ):
            if (out / report).is_file():
                reports[name] = (out / report).read_text(encoding="utf-8")
        return SuiteRun(
            code, junit_counts(out / "junit.xml"), _coverage(out / "coverage.json"), reports
        )


class TestSuiteCheck(Check):
    """The repository's tests run, pass, and cover enough of the code."""

    __test__ = False  # not a pytest test class, whatever its name says
    id = "tests"
    title = "tests pass with enough coverage"
    statuses = Check.statuses | {Status.SKIP}
    done_when = (
        "pytest runs at least tests_min tests (the plan: 93), none fails, "
        "coverage at or above the threshold"
    )
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
        cache = ctx.cache
        inputs = inputs_digest(repo, cache.location if cache is not None else None)
        entry = cache.get(self.id, inputs) if cache is not None else None
        reused = SuiteRun.from_entry(entry) if entry is not None else None
        suite = reused or run_suite(repo, ctx.show_output)
        result = self._judge(repo, suite, inputs)
        # Like Go's test cache, only a pass is reused: a failure may be a flake, so it runs again.
        if cache is not None and reused is None and result.status is Status.PASS:
            cache.put(self.id, inputs, suite.as_entry())
        ctx.reports.update(suite.reports)
        return result

    def _judge(self, repo: RepoSettings, suite: SuiteRun, inputs: str) -> CheckResult:
        code, counts, coverage = suite.exit_code, suite.counts, suite.coverage
        tail = suite.reports.get("tests-output.txt", "")
        details: dict[str, Any] = {
            **counts,
            "exit_code": code,
            "coverage_percent": coverage,
            "coverage_min": repo.coverage_min,
            "tests_min": repo.tests_min,
            "inputs_digest": inputs,
            "reused_from": suite.reused_from or None,
        }
        failed = failed_tests(suite.reports.get("tests-junit.xml", ""), repo.root)
        details["failed_tests"] = failed[:FAILED_NAMED]
        details["failed_tests_more"] = max(0, len(failed) - FAILED_NAMED)
        if code == NO_TESTS_COLLECTED or (code in (0, 1) and counts["tests"] == 0):
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
            # `check` leaves no bundle: the hint names a test to run, not only the report.
            first = f"run the first alone: pytest {failed[0]['test']}; " if failed else ""
            return self.result(
                Status.FAIL,
                ran,
                f"{first}every failure is in tests-report.html (a verify's evidence)",
                details=details,
            )
        # Judged on every result, a reused one included: today's tests_min, like coverage_min.
        executed = counts["tests"] - counts["skipped"]
        if executed < repo.tests_min:
            return self.result(
                Status.FAIL,
                f"{ran}: {executed} tests ran ({counts['skipped']} skipped), "
                f"fewer than tests_min {repo.tests_min}",
                "the suite shrank: restore the missing tests "
                "(or change [repository] tests_min in opsctl.toml, with the plan's agreement)",
                details=details,
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
        reused = (
            f": reused from the run of {suite.reused_from}, same inputs {inputs[:12]}"
            if suite.reused_from
            else ""
        )
        return self.result(
            Status.PASS,
            f"{ran}, {counts['skipped']} skipped{measured}{reused}",
            "`--fresh` runs the suite again" if reused else "",
            details=details,
        )

    def budget_s(self, ctx: CheckContext) -> float:
        return SUITE_TIMEOUT_S + 30  # pytest is stopped first, with a reason


def _coverage(path: Path) -> float | None:
    if not path.is_file():
        return None
    return float(json.loads(path.read_text())["totals"]["percent_covered"])
