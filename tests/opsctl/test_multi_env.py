"""`opsctl verify` over several environments at once (issue 18): one bundle and one verdict each,
one overall verdict with the worst exit code, side by side in less time than one after another,
the repository's checks run once for all of them."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import jsonschema
import pytest
import xmlschema
from referencing import Registry, Resource

from checks.interface import Check, CheckContext, CheckResult, Expectations, Status
from checks.registry import CHECKS
from evidence.formats.json_format import ENVIRONMENTS_SCHEMA_ID
from evidence.store import list_bundles, verify_bundle
from opsctl.config import Gate
from opsctl.runner import Runner, SharedChecks
from opsctl.verify import REPOSITORY_CHECKS, judge_environments
from tests.conftest import REPO_ROOT
from tests.fakes.bot_target import TargetSettings, environment_toml, serve_target
from tests.terminal import read_terminal

OPSCTL = [sys.executable, "-m", "opsctl.cli"]
PUBLIC = "https://bot.example.org"
ENVS = ("alpha", "bravo", "charlie")
FAILING = "bravo"  # its target has no /metrics: P2.2 FAILs there
# The terminal's control sequences (colour, cursor moves, erasing): what separates the frames.
ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
CURSOR_UP = "\x1b[1A"
VERIFY_SCHEMA = json.loads((REPO_ROOT / "evidence/schemas/verify-v1.json").read_text())
ENVS_SCHEMA = json.loads((REPO_ROOT / "evidence/schemas/verify-envs-v1.json").read_text())
# The envelope refers to each run's schema by its $id: both in one registry, as a user loads them.
ENVS_VALIDATOR = jsonschema.Draft202012Validator(
    ENVS_SCHEMA,
    registry=Registry().with_resources(
        (s["$id"], Resource.from_contents(s)) for s in (VERIFY_SCHEMA, ENVS_SCHEMA)
    ),
    format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER,
)
JUNIT_SCHEMA = xmlschema.XMLSchema(REPO_ROOT / "evidence/schemas/junit-10.xsd")

GATES = """
[defaults]
timeout_s = 5

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.2"]
title = "Render deploy"
checks = ["health", "metrics"]
"""


@dataclass(frozen=True)
class World:
    """Three fake bots (each answer 0.3 s late, one without /metrics) and their configuration."""

    folder: Path
    config: Path
    env_file: Path
    environ: dict[str, str]

    def verify(self, *args: str) -> subprocess.CompletedProcess[str]:
        """A real `opsctl verify` of this configuration, in a pipe."""
        command = [
            *OPSCTL,
            "verify",
            "--config",
            str(self.config),
            "--env-file",
            str(self.env_file),
        ]
        return subprocess.run(
            [*command, *args],
            cwd=REPO_ROOT,
            env=self.environ,
            capture_output=True,
            text=True,
            timeout=180,
        )


@contextmanager
def make_world(folder: Path, delay_s: float) -> Iterator[World]:
    """Three look-alike bots answering `delay_s` late (one without /metrics), and a config."""
    servers = []
    text = GATES
    token = account_sid = ""
    for name in ENVS:
        fault = "metrics_missing" if name == FAILING else ""
        settings = TargetSettings(public_url=PUBLIC, fault=fault, delay_s=delay_s)
        token, account_sid = settings.token, settings.account_sid
        context = serve_target(settings)
        servers.append(context)
        text += environment_toml(name, context.__enter__(), PUBLIC)
    try:
        config = folder / "opsctl.toml"
        config.write_text(text)
        env_file = folder / "test.env"
        env_file.write_text(f"FAKE_TWILIO_TOKEN={token}\n")
        environ = {
            k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "FORCE_COLOR", "CI")
        }
        environ |= {"FAKE_TWILIO_ACCOUNT_SID": account_sid, "TERM": "xterm"}
        yield World(folder, config, env_file, environ)
    finally:
        for context in servers:
            context.__exit__(None, None, None)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with make_world(tmp_path_factory.mktemp("envs"), delay_s=0.3) as made:
        yield made


def test_three_environments_side_by_side(world: World) -> None:
    """Three bundles, three verdict lines each led by its environment, one overall line, the
    worst exit code; and the whole run takes clearly less than one environment after another
    (measured against one environment alone, in the same test: under 2x, not about 3x)."""
    evidence = world.folder / "evidence-three"
    started = time.monotonic()
    alone = world.verify("--env", "alpha", "--progress", "none", "--no-evidence")
    single_s = time.monotonic() - started
    assert alone.returncode == 0, alone.stdout + alone.stderr
    started = time.monotonic()
    three = world.verify(
        *("--env", "alpha", "--env", "bravo", "--env", "charlie"),
        *("--progress", "none", "--evidence-dir", str(evidence)),
    )
    three_s = time.monotonic() - started
    assert three.returncode == 1, three.stdout + three.stderr
    lines = three.stdout.splitlines()
    verdicts = [line for line in lines if "every blocking gate" in line or ": gate " in line]
    assert verdicts == [
        "alpha    PASS: every blocking gate passed (2 PASS)",
        "bravo    FAIL: gate P2.2 Render deploy: metrics: /metrics answered 404: no such route "
        f"at {_url_of(world, 'bravo')}/metrics (1 PASS, 1 FAIL)",
        "charlie  PASS: every blocking gate passed (2 PASS)",
    ]
    # Every line of the run names its environment; the overall line comes after them.
    overall = "FAIL: 1 of 3 environments not done: bravo (FAIL)"
    evidence_lines = [line for line in lines if "evidence: " in line]
    body = [line for line in lines if line and line != overall and line not in evidence_lines]
    assert all(line.split()[0] in ENVS for line in body), body
    assert overall in lines and lines.index(overall) > lines.index(verdicts[-1])
    bundles = sorted(p.name.split("_", 1)[1] for p in evidence.iterdir() if p.is_dir())
    assert bundles == list(ENVS)
    for line, name in zip(evidence_lines, ENVS, strict=True):
        assert line.startswith(f"{name:<7}  evidence: {evidence}")
    for bundle in evidence.iterdir():
        if bundle.is_dir():
            run = json.loads((bundle / "run.json").read_text())
            assert run["verdict"]["exit_code"] == (1 if bundle.name.endswith(FAILING) else 0)
    assert three_s < 2 * single_s, f"3 environments {three_s:.1f}s, one alone {single_s:.1f}s"


def _url_of(world: World, env: str) -> str:
    text = world.config.read_text()
    section = text.split(f"[environments.{env}]", 1)[1]
    return section.split('base_url = "', 1)[1].split('"', 1)[0]


def test_all_as_one_json_document_and_one_junit_file(world: World) -> None:
    """--all: every configured environment; --json one document (each run a whole
    opsctl.verify/v1 run), --junit one file with every environment's suites, led by its name."""
    junit = world.folder / "all.xml"
    done = world.verify("--all", "--json", "--no-evidence", "--junit", str(junit))
    assert done.returncode == 1, done.stderr
    document = json.loads(done.stdout)
    assert document["schema"] == ENVIRONMENTS_SCHEMA_ID
    assert document["envs"] == list(ENVS)
    assert document["verdict"] == {
        "line": "FAIL: 1 of 3 environments not done: bravo (FAIL)",
        "exit_code": 1,
    }
    ENVS_VALIDATOR.validate(document)
    for run in document["runs"]:
        jsonschema.validate(run, VERIFY_SCHEMA)
    # The envelope's schema reaches into each run: a run missing a field is refused.
    broken = json.loads(done.stdout)
    del broken["runs"][1]["gates"]
    assert not ENVS_VALIDATOR.is_valid(broken)
    assert not ENVS_VALIDATOR.is_valid({**document, "verdict": {"line": "?", "exit_code": 2}})
    assert [r["verdict"]["exit_code"] for r in document["runs"]] == [0, 1, 0]
    JUNIT_SCHEMA.validate(str(junit))
    xml = junit.read_text()
    for name in ENVS:
        assert f'<testsuite name="{name}/P2.2 Render deploy"' in xml
    assert xml.count("<failure ") == 1 and 'classname="bravo/P2.2" name="metrics"' in xml


def test_plain_lines_name_their_environment(world: World) -> None:
    done = world.verify(
        "--env", "alpha", "--env", "charlie", "--progress", "plain", "--no-evidence"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    for name in ("alpha", "charlie"):
        assert (
            f"{name:<7}  waking the target: GET /health until the bot answers (up to 10s)" in lines
        )
        assert any(line.startswith(f"{name:<7}  PASS    P2.1 webhook (") for line in lines)
    assert lines[-1] == "PASS: all 2 environments passed (alpha, charlie)"


def test_the_live_table_has_a_row_per_environment_and_check(world: World) -> None:
    """On a terminal: one live table, a row per environment and check, then each run's table
    led by its verdict line naming the environment, then the overall line."""
    command = [*OPSCTL, "verify", "--config", str(world.config), "--env-file", str(world.env_file)]
    code, screen = read_terminal(
        [*command, "--env", "alpha", "--env", "bravo", "--no-evidence", "--color", "never"],
        world.environ,
    )
    assert code == 1, screen
    assert CURSOR_UP in screen, "no live table was drawn"
    frames = [line.split() for line in ESCAPE.sub("\n", screen).splitlines()]
    assert ["env", "gate", "check", "status"] in [words[:4] for words in frames], screen
    rows = [words[:4] for words in frames]
    for name in ("alpha", "bravo"):
        assert [name, "P2.2", "metrics", "waiting"] in rows, screen
    assert ["alpha", "P2.2", "metrics", "PASS"] in rows and [
        "bravo",
        "P2.2",
        "metrics",
        "FAIL",
    ] in rows
    text = ESCAPE.sub("", screen).replace("\r", "")
    assert "\nalpha  PASS: every blocking gate passed (2 PASS)" in text
    assert "\nbravo  FAIL: gate P2.2 Render deploy: metrics:" in text
    assert text.rstrip().endswith("FAIL: 1 of 2 environments not done: bravo (FAIL)")


def test_notion_syncs_each_environments_run(world: World) -> None:
    """--notion after several verdicts: each environment's run goes to Notion (here Notion is
    down: each is queued, one line each, the exit code still the run's)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    config = world.folder / "notion.toml"
    config.write_text(
        world.config.read_text()
        + '[notion]\noutbox = "outbox.json"\ntimeout_s = 1\nrequests_per_second = 100\n'
        + f'gates_database = "{"1" * 32}"\nruns_database = "{"2" * 32}"\n'
    )
    environ = world.environ | {
        "NOTION_TOKEN": "ntn_" + "d" * 46,  # pragma: allowlist secret
        "NOTION_BASE_URL": f"http://127.0.0.1:{closed}",
    }
    command = [*OPSCTL, "verify", "--config", str(config), "--env-file", str(world.env_file)]
    done = subprocess.run(
        [*command, "--env", "alpha", "--env", "bravo", "--notion", "--no-evidence"],
        cwd=REPO_ROOT,
        env=environ,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.count("Notion sync pending: ") == 2, done.stderr
    queued = json.loads((world.folder / "outbox.json").read_text())
    runs = sorted(c["key"].rsplit("_", 1)[1] for c in queued if c["table"] == "runs")
    assert runs == ["alpha", "bravo"]
    gates = {c["key"] for c in queued if c["table"] == "gates"}
    assert {"alpha/P2.2", "bravo/P2.2"} <= gates


def test_interrupted_each_environment_leaves_its_bundle_marked_so(tmp_path: Path) -> None:
    """SIGTERM while both runs go: each environment's finished checks go into its own bundle,
    marked interrupted, as one environment's do. The bots answer 1 s late here, so the webhook
    checks are still waiting seconds after the metrics lines, however loaded the machine."""
    with make_world(tmp_path, delay_s=1.0) as world:
        interrupt_both(world)


def interrupt_both(world: World) -> None:
    evidence = world.folder / "evidence-cut"
    command = [*OPSCTL, "verify", "--config", str(world.config), "--env-file", str(world.env_file)]
    process = subprocess.Popen(
        [*command, *("--env", "alpha", "--env", "bravo"), *("--evidence-dir", str(evidence))],
        cwd=REPO_ROOT,
        env=world.environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # a pipe: --progress auto gives the plain lines
    assert process.stdout is not None
    try:
        seen: list[str] = []
        # A check finished in both; the webhook checks still wait on their targets (~8 s).
        while sum(" metrics (" in line for line in seen) < 2:
            line = process.stdout.readline()
            assert line, f"the run ended before its metrics lines: {seen}"
            seen.append(line)
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130 and err.strip() == "opsctl: interrupted"
    bundles = list_bundles(evidence)
    assert sorted(b.env for b in bundles) == ["alpha", "bravo"]
    for bundle in bundles:
        assert bundle.outcome == "interrupted"
        assert verify_bundle(bundle.path) == []
        run = json.loads((bundle.path / "run.json").read_text())
        metrics = [c for g in run["gates"] for c in g["checks"] if c["id"] == "metrics"]
        assert len(metrics) == 1, "the finished check is in the bundle"


def test_one_env_keeps_the_single_run_json(world: World) -> None:
    done = world.verify("--env", "charlie", "--json", "--no-evidence")
    assert done.returncode == 0, done.stderr
    run = json.loads(done.stdout)
    jsonschema.validate(run, VERIFY_SCHEMA)
    assert run["schema"] == "opsctl.verify/v1" and run["env"] == "charlie"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--env", "alpha", "--env", "bravo", "--url", "http://127.0.0.1:9"],
            "opsctl: --url is one deployment, and 2 environments were asked for; "
            "fix: give --url with a single --env",
        ),
        (
            ["--all", "--url", "http://127.0.0.1:9"],
            "opsctl: --url is one deployment, and 3 environments were asked for; "
            "fix: give --url with a single --env",
        ),
        (
            ["--all", "--env", "alpha"],
            "opsctl: --all and --env together: give --env NAME (once or more), or --all",
        ),
        ([], "opsctl: Missing option '--env': give --env NAME (once or more), or --all"),
    ],
)
def test_what_cannot_be_asked_is_one_line_and_exit_2(
    world: World, args: list[str], message: str
) -> None:
    done = world.verify(*args, "--no-evidence")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", message + "\n")


# --- the repository's checks run once for every environment ------------------------------------


class CountedCheck(Check):
    """A repository check that counts its runs and leaves a report, as the suite's check does."""

    id = "counted"
    title = "counted"
    needs_target = False

    def __init__(self) -> None:
        self.runs = 0

    async def run(self, ctx: CheckContext) -> CheckResult:
        self.runs += 1
        await asyncio.sleep(0.05)  # the other environments reach it meanwhile
        ctx.reports["counted.txt"] = f"run {self.runs}\n"
        return self.result(Status.PASS, f"ran {self.runs} time(s)")


class EnvCheck(Check):
    """A check whose result is its environment's (not shared)."""

    id = "env"
    title = "env"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        return self.result(Status.PASS, ctx.env_name)


def test_a_shared_check_runs_once_and_every_environment_gets_it_and_its_reports() -> None:
    counted = CountedCheck()
    checks = {"counted": counted, "env": EnvCheck()}
    shared = SharedChecks({"counted"})
    gate = Gate("P2.5", "QA", ("counted", "env"))
    contexts = [
        CheckContext(name, "", "", Expectations(), client=None, secrets={})  # type: ignore[arg-type]
        for name in ENVS
    ]
    seen: list[tuple[str, str]] = []

    async def every_run() -> list[object]:
        runners = [
            Runner(checks, on_event=lambda g, c, r: seen.append((g, c)), shared=shared)
            for _ in ENVS
        ]
        return list(
            await asyncio.gather(
                *(r.run([gate], ctx) for r, ctx in zip(runners, contexts, strict=True))
            )
        )

    runs = asyncio.run(every_run())
    assert counted.runs == 1
    for ctx, run in zip(contexts, runs, strict=True):
        checks_of = {c.check_id: c for c in run.gates[0].checks}  # type: ignore[attr-defined]
        assert checks_of["counted"].reason == "ran 1 time(s)"
        assert checks_of["env"].reason == ctx.env_name
        assert ctx.reports == {"counted.txt": "run 1\n"}
    # Each environment's table hears its checks start and end, the shared one included.
    assert seen.count(("P2.5", "counted")) == 2 * len(ENVS)


def test_the_shared_checks_read_the_repository_only() -> None:
    """A check in REPOSITORY_CHECKS is given the same result in every environment: it must not
    talk to a target (https, keepalive and notion read their environment: never shared)."""
    assert set(CHECKS) >= REPOSITORY_CHECKS
    assert not any(CHECKS[c].needs_target for c in REPOSITORY_CHECKS)
    assert not REPOSITORY_CHECKS & {"https", "keepalive", "notion"}


# --- the overall verdict: the worst run's, by checks/statuses.py ------------------------------


def test_the_overall_verdict_is_the_worst_runs() -> None:
    from opsctl.results import GateResult, RunResult

    def run(env: str, status: Status) -> RunResult:
        gate = GateResult("P2.1", "Twilio pipeline", True, status, f"{status.value} here")
        passed = GateResult("P2.2", "Render deploy", True, Status.PASS, "1 check passed")
        return RunResult(env, "", "2026-01-01T00:00:00Z", 1.0, (gate, passed))

    # An ERROR (exit 3) and a FAIL (exit 1): FAIL is the more severe status, as judge orders
    # gates, so the run exits 1.
    verdict = judge_environments(
        [run("a", Status.PASS), run("b", Status.ERROR), run("c", Status.FAIL)]
    )
    assert (verdict.exit_code, verdict.status) == (1, Status.FAIL)
    assert verdict.line == "FAIL: 2 of 3 environments not done: b (ERROR), c (FAIL)"
    warned = judge_environments([run("a", Status.PASS), run("b", Status.WARN)])
    assert (warned.exit_code, warned.status) == (0, Status.WARN)
    assert warned.line == "PASS with warnings (b): all 2 environments passed (a, b)"
