"""report.html and summary.md as people act on them: every file of the bundle linked (and every
link opens one), the failed tests named, the commit and the tool's version, the latency limits."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

import httpx
import pytest

from checks.interface import CheckContext, CheckResult, Expectations, RepoSettings, Status
from checks.testsuite import FAILED_NAMED, INSIDE_TEST_RUN, TestSuiteCheck, failed_tests
from evidence.bundle import BundleInputs, EvidenceWriter
from evidence.formats.html import latency_chart, render_html
from evidence.formats.markdown import render_summary
from evidence.redact import REDACTED
from opsctl import __version__
from opsctl.results import GateAttempt, GateResult, RunResult
from opsctl.runner import Runner
from tests.conftest import REPO_ROOT, config_copy
from tests.evidence.test_html_report import CHROMIUM, FLAGS
from tests.loopback import TLS

WARN_MS, FAIL_MS = 345, 6789  # local's limits in the test's opsctl.toml: values seen nowhere else
PLANTED_SECRET = "tok-3f9a1c7e5b2d"  # pragma: allowlist secret (made up: the writer redacts it)
OPSCTL = [sys.executable, "-m", "opsctl.cli"]
FAILING = FAILED_NAMED + 2  # assertion failures planted, beside one erroring fixture


class Page(HTMLParser):
    """A page's links and the text a reader sees (style left out)."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.text: list[str] = []
        self._in_style = False
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._in_style = tag == "style"
        self.hrefs += [unquote(v or "") for name, v in attrs if tag == "a" and name == "href"]

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        if not self._in_style:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return re.sub(r"\s+", " ", " ".join(self.text))


def markdown_links(text: str) -> list[str]:
    return [unquote(link) for link in re.findall(r"\]\(([^)\s]+)\)", text)]


def bundle_files(bundle: Path) -> set[str]:
    return {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}


# --- a real run: `opsctl verify --env local --only P2.2` ------------------------------------


@pytest.fixture(scope="module")
def verified(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle `opsctl verify` leaves for the deploy gate, local's latency limits changed."""
    folder = tmp_path_factory.mktemp("verified")
    config = config_copy(folder)
    text = config.read_text()
    local = text.index("[environments.local]")
    head, tail = text[:local], text[local:]
    tail = tail.replace("latency_warn_ms = 200", f"latency_warn_ms = {WARN_MS}", 1)
    tail = tail.replace("latency_fail_ms = 1000", f"latency_fail_ms = {FAIL_MS}", 1)
    config.write_text(head + tail)
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    done = subprocess.run(
        [*OPSCTL, "verify", "--env", "local", "--only", "P2.2", "--config", str(config)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    bundles = [p for p in (folder / "evidence-out").iterdir() if not p.name.startswith(".")]
    assert len(bundles) == 1, done.stdout + done.stderr
    return bundles[0]


def test_every_file_of_the_bundle_is_linked_and_every_link_opens_one(verified: Path) -> None:
    page = Page((verified / "report.html").read_text())
    relative = [h for h in page.hrefs if not re.match(r"^([a-z]+:|/|#)", h)]
    assert relative == page.hrefs, "links relative to the report, so a copied folder works"
    for href in relative:
        assert (verified / href).is_file(), href
    # The run's own files, each transcript and each report: all but the report itself.
    assert set(relative) == bundle_files(verified) - {"report.html"}
    assert {"junit.xml", "run.json", "summary.md", "transcripts/P2.2--health.json"} <= set(relative)
    # Each check's row links its transcript.
    row = re.search(r"<tr><td>.*?/health ok.*?</tr>", (verified / "report.html").read_text())
    assert row and 'href="transcripts/P2.2--health.json"' in row.group(0)
    summary = (verified / "summary.md").read_text()
    assert markdown_links(summary)
    for href in markdown_links(summary):
        assert (verified / href).is_file(), href


def test_the_report_and_the_summary_name_the_commit_and_the_version(verified: Path) -> None:
    commit = subprocess.run(
        ["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    html = (verified / "report.html").read_text()
    made_by = re.search(r'<p class="meta" id="made-by">(.*?)</p>', html)
    assert made_by, "the header names the tool and the commit"
    assert Page(made_by.group(1)).visible == f"opsctl {__version__} · commit {commit}"
    assert (
        f"- Made by: opsctl {__version__}, commit {commit}\n"
        in (verified / "summary.md").read_text()
    )


def test_the_chart_draws_the_environments_limits(verified: Path) -> None:
    page = Page((verified / "report.html").read_text())
    assert f"warn: p50 over {WARN_MS} ms" in page.visible
    assert f"fail: p95 over {FAIL_MS} ms" in page.visible


def test_limit_lines_sit_at_their_values_and_say_what_they_judge() -> None:
    details = {
        "warm_samples_ms": [80.0, 300.0, 900.0],
        "cold_start_s": 12.5,
        "cold_start_budget_s": 15,
        "p50_ms": 300.0,
        "p95_ms": 840.0,
        "latency_warn_ms": 250.0,
        "latency_fail_ms": 800.0,
    }
    svg = latency_chart(details)
    lines = re.findall(r'<line class="limit"[^>]*y1="([\d.]+)"[^>]*stroke="(#\w+)"', svg)
    assert [colour for _, colour in lines] == [
        Status.FAIL.meaning.colour,
        Status.WARN.meaning.colour,
    ]
    fail_y, warn_y = (float(y) for y, _ in lines)
    tops = [float(y) for y in re.findall(r'<rect [^>]*y="([\d.]+)"', svg)]
    assert tops[2] < fail_y < tops[1] < warn_y < tops[0], "900 over 800 over 300 over 250 over 80"
    page = Page(svg)
    assert "fail: p95 over 800 ms" in page.visible and "warn: p50 over 250 ms" in page.visible
    assert "cold start (the run's one wake) took 12.50 s (its budget: 15 s)" in page.visible
    unlimited = {k: v for k, v in details.items() if not k.startswith("latency_")}
    assert '<line class="limit"' not in latency_chart(unlimited)
    assert "did not record the environment's latency limits" in unescape(latency_chart(unlimited))


# --- the tests gate failing: a tiny project with failing tests -------------------------------


@pytest.fixture(scope="module")
def failing_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project whose suite fails FAILING tests (one naming a secret) and errors in one."""
    root = tmp_path_factory.mktemp("failing") / "repo"
    (root / "app").mkdir(parents=True)
    (root / "app" / "__init__.py").write_text("def add(a, b):\n    return a - b\n")
    (root / "tests").mkdir()
    cases = "".join(
        f"def test_add_{i}():\n    assert add({i}, 2) == {i + 2}, 'add({i}, 2) is wrong'\n\n\n"
        for i in range(FAILING - 1)
    )
    (root / "tests" / "test_app.py").write_text(
        "import pytest\n\nfrom app import add\n\n\n"
        f"def test_names_the_token():\n    assert add(1, 1) == 2, 'token {PLANTED_SECRET}'\n\n\n"
        + cases
        + "@pytest.fixture\ndef broken():\n    raise RuntimeError('setup broke')\n\n\n"
        "class TestWithSetup:\n    def test_setup(self, broken):\n        pass\n\n\n"
        "def test_passes():\n    assert add(2, 0) == 2\n"
    )
    (root / "pyproject.toml").write_text('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n')
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-A"], check=True)
    return root


@pytest.fixture(scope="module")
def failed_bundle(failing_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests check run on the failing project as opsctl runs it, written as a bundle."""
    repo = RepoSettings(root=failing_project, coverage_min=0, cov_packages=("app",), tests_min=1)
    reports: dict[str, str] = {}

    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "repo", "", "", Expectations(), client, {}, repo=repo, reports=reports
            )
            return await Runner({"tests": TestSuiteCheck()}).run_check("P2.5", "tests", ctx)

    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(INSIDE_TEST_RUN, raising=False)  # its tests are not ours: no recursion
        result = asyncio.run(go())
    assert result.status is Status.FAIL, result
    attempt = GateAttempt(1, Status.FAIL, (result,))
    gate = GateResult(
        "P2.5", "QA", True, Status.FAIL, f"tests: {result.reason}", (result,), (attempt,)
    )
    run = RunResult("local", "", "2026-11-28T10:00:00Z", result.duration_s, (gate,))
    inputs = BundleInputs(run, "0.1.0", "abc1234", "2026-11-28T10:00:09Z", reports=reports)
    return EvidenceWriter(tmp_path_factory.mktemp("bundles")).write(inputs, [PLANTED_SECRET])


def failed_ids(bundle: Path) -> list[str]:
    data = json.loads((bundle / "run.json").read_text())
    (check,) = data["gates"][0]["checks"]
    assert check["details"]["failed_tests_more"] == FAILING + 1 - FAILED_NAMED
    return [entry["test"] for entry in check["details"]["failed_tests"]]


def test_the_report_names_the_failed_tests_runnable_as_named(
    failed_bundle: Path, failing_project: Path
) -> None:
    ids = failed_ids(failed_bundle)
    assert len(ids) == FAILED_NAMED
    assert ids[:2] == ["tests/test_app.py::test_names_the_token", "tests/test_app.py::test_add_0"]
    page = Page((failed_bundle / "report.html").read_text())
    for test_id in ids:
        assert test_id in page.visible
    assert "AssertionError: add(0, 2) is wrong" in page.visible
    assert f"{FAILING + 1} failed tests:" in page.visible
    assert f"and {FAILING + 1 - FAILED_NAMED} more" in page.visible
    assert "reports/tests-report.html" in page.hrefs, "the hint's report, linked"
    (check,) = json.loads((failed_bundle / "run.json").read_text())["gates"][0]["checks"]
    assert check["hint"].startswith(f"run the first alone: pytest {ids[0]}; "), check["hint"]
    summary = (failed_bundle / "summary.md").read_text()
    assert f"- `{ids[1]}`: AssertionError: add(0, 2) is wrong\n" in summary
    assert f"- and {FAILING + 1 - FAILED_NAMED} more\n" in summary
    # A name is a node id pytest runs as it is.
    rerun = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", ids[1]],
        cwd=failing_project,
        env={k: v for k, v in os.environ.items() if k != INSIDE_TEST_RUN},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "1 failed" in rerun.stdout, rerun.stdout + rerun.stderr


def test_every_failed_test_is_named_past_the_twenty_shown(
    failed_bundle: Path, failing_project: Path
) -> None:
    junit = (failed_bundle / "reports" / "tests-junit.xml").read_text()
    failed = failed_tests(junit, failing_project)
    assert len(failed) == FAILING + 1
    assert failed[-1] == {
        "test": "tests/test_app.py::TestWithSetup::test_setup",
        "message": 'failed on setup with "RuntimeError: setup broke"',
    }
    # A module that does not import has no classname: JUnit names it with dots.
    (failing_project / "tests" / "test_broken.py").write_text("import nowhere\n")
    try:
        broken = '<testsuite><testcase classname="" name="tests.test_broken"><error message='
        broken += '"collection failure"/></testcase></testsuite>'
        assert failed_tests(broken, failing_project) == [
            {"test": "tests/test_broken.py", "message": "collection failure"}
        ]
    finally:
        (failing_project / "tests" / "test_broken.py").unlink()


def test_a_secret_in_a_failure_message_is_redacted_in_every_file(failed_bundle: Path) -> None:
    for path in failed_bundle.rglob("*"):
        if path.is_file():
            assert PLANTED_SECRET not in path.read_text(), path
    # The first failed test's message named it: the report and the summary show it redacted.
    assert (
        f"AssertionError: token {REDACTED}"
        in Page((failed_bundle / "report.html").read_text()).visible
    )
    assert f"AssertionError: token {REDACTED}" in (failed_bundle / "summary.md").read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed")
def test_chromium_shows_the_failed_tests_and_the_links(failed_bundle: Path, tmp_path: Path) -> None:
    page_uri = (failed_bundle / "report.html").as_uri()
    done = subprocess.run(
        [str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", page_uri],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = Page(done.stdout)
    for test_id in failed_ids(failed_bundle):
        assert test_id in page.visible
    assert set(page.hrefs) == bundle_files(failed_bundle) - {"report.html"}


# --- summary.md says each thing once ----------------------------------------------------------


def test_each_row_says_its_reason_once_and_no_gate_repeats_its_check(verified: Path) -> None:
    data = json.loads((verified / "run.json").read_text())
    summary = (verified / "summary.md").read_text()
    for gate in data["gates"]:
        for check in gate["checks"]:
            (row,) = [
                line for line in summary.splitlines() if line.startswith(f"| {check['title']} |")
            ]
            assert row.count(check["reason"]) == 1, row
            assert f"| {check['status']}, " in row, "the status and the time, once"
        repeats = {f"{c['id']}: {c['reason']}" for c in gate["checks"]}
        assert not any(line in repeats for line in summary.splitlines())


def test_a_gate_reason_of_its_own_is_kept() -> None:
    check = CheckResult("health", "/health ok", Status.PASS, "5 samples ok", duration_s=0.2)
    retried = GateResult(
        "P2.2",
        "Render deploy",
        True,
        Status.WARN,
        "passed on attempt 2; 1 check passed",
        (check,),
        (GateAttempt(1, Status.ERROR, (check,)), GateAttempt(2, Status.WARN, (check,))),
    )
    run = RunResult("render", "https://x.example", "2026-11-28T10:00:00Z", 1.0, (retried,))
    assert "\npassed on attempt 2; 1 check passed\n" in render_summary(run, {}, {})
    assert "<p>passed on attempt 2; 1 check passed</p>" in render_html(run)


def test_a_checks_row_links_the_reports_it_wrote_whatever_its_reason_says() -> None:
    """The secret scan's reason names no file: its row still links its report, and only its."""
    secrets = CheckResult(
        "secrets", "no new secrets", Status.PASS, "scanned 222 files", reports=("secret-scan.txt",)
    )
    lint = CheckResult("lint", "lint clean", Status.PASS, "linted 90 files", reports=("lint.txt",))
    gate = GateResult("P2.6", "Security", True, Status.PASS, "2 checks passed", (secrets, lint), ())
    run = RunResult("local", "http://127.0.0.1:9", "2026-11-28T10:00:00Z", 1.0, (gate,))
    files = ["reports/secret-scan.txt", "reports/lint.txt"]
    html = render_html(run, files=files)
    found = re.finditer(r"<tr><td>.*?<td>(no new secrets|lint clean)</td>.*?</tr>", html)
    rows = {m.group(1): m.group(0) for m in found}
    assert 'href="reports/secret-scan.txt"' in rows["no new secrets"]
    assert 'href="reports/lint.txt"' not in rows["no new secrets"]
    assert 'href="reports/lint.txt"' in rows["lint clean"]
