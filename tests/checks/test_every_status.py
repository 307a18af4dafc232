"""Every status of every check is produced by at least one planted fault.

Each check declares the statuses it can end in (`Check.statuses`). PLANTED is the one table:
for every (check id, status) pair, a small function that plants a fault and runs the check for
real, through the runner as opsctl does. A status declared without a planted fault, or a fault
planted for a status its check does not declare, fails the two tests at the end by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from checks.deployfiles import DeployFilesCheck
from checks.deps import DependencyAuditCheck
from checks.hygiene import HygieneCheck
from checks.interface import CheckContext, CheckResult, NotionSettings, Status
from checks.lint import LintCheck
from checks.notion import NotionCheck
from checks.registry import CHECKS
from checks.secrets import SecretScanCheck
from checks.testsuite import INSIDE_TEST_RUN, TestSuiteCheck
from opsctl.config import Config, Environment, load_config
from opsctl.devserver import DevServer
from opsctl.keepalive import PingLog
from opsctl.notion.outbox import Outbox, RowChange
from opsctl.runner import Runner
from opsctl.verify import notion_settings
from tests.bot.test_http import SETTINGS_HEADER, SHA256_SETTINGS
from tests.checks.test_keepalive_window import MINUTE, NOW, START, daemon_log, grid
from tests.checks.test_keepalive_window import check as keepalive_check
from tests.checks.test_repository import (
    PLANTED_TOKEN,
    git,
    run,
    settings,
    small_repo,  # noqa: F401 - a fixture, asked by name
)
from tests.checks.test_testsuite_cache import repo as one_test_repo  # noqa: F401 - a fixture
from tests.checks.test_testsuite_cache import run_tests
from tests.checks.test_verify_notion import closed_port
from tests.conftest import PUBLIC, REPO_ROOT, config_copy, whatsapp_form
from tests.fakes.bot_target import TargetSettings, serve_target
from tests.fakes.notion_api import FakeNotion
from tests.loopback import TLS
from tests.opsctl.test_notion import connect, data_source, initialised, make_run, write_bundle

Plant = Callable[["World"], CheckResult]
PLANTED: dict[tuple[str, Status], Plant] = {}
"""(check id, status) -> the planted fault that makes that check end in that status."""


def planted(check_id: str, status: Status) -> Callable[[Plant], Plant]:
    """Put a plant in PLANTED under (check id, status)."""

    def register(plant: Plant) -> Plant:
        assert (check_id, status) not in PLANTED, f"two plants for {check_id} {status}"
        PLANTED[check_id, status] = plant
        return plant

    return register


@dataclass
class World:
    """What a plant may use; a fixture is set up only for the plants that ask for it."""

    request: pytest.FixtureRequest

    def fixture(self, name: str) -> Any:
        return self.request.getfixturevalue(name)

    @property
    def tmp_path(self) -> Path:
        return Path(self.fixture("tmp_path"))

    @property
    def monkeypatch(self) -> pytest.MonkeyPatch:
        result: pytest.MonkeyPatch = self.fixture("monkeypatch")
        return result

    def repo(self) -> Path:
        """tests/checks/test_repository.py's small repository, clean."""
        return Path(self.fixture("small_repo"))

    def bot(self, fault: str = "", timeout_s: float = 2.0, **options: float) -> Environment:
        """The `fault` environment of tests/checks/conftest.py, pointing at the module's bot
        look-alike (tests/fakes/bot_target.py), told to misbehave in this one way."""
        look_alike, url = self.fixture("bot_look_alike")
        usual = TargetSettings()
        for name in ("delay_s", "hang_s", "slow_health_s"):
            setattr(look_alike, name, options.get(name, getattr(usual, name)))
        look_alike.fault = fault
        return self.environment(url, timeout_s)

    def environment(self, base_url: str, timeout_s: float = 2.0) -> Environment:
        """The `fault` environment, pointing at base_url."""
        path = self.fixture("fault_config")(base_url, timeout_s=timeout_s)
        return load_config(path, CHECKS).environments["fault"]

    def down(self) -> Environment:
        """The `fault` environment pointing at a loopback port nothing listens on."""
        return self.environment(f"http://127.0.0.1:{closed_port()}")


@pytest.fixture(scope="module")
def bot_look_alike() -> Iterator[tuple[TargetSettings, str]]:
    """One loopback bot look-alike for the module (its settings, its URL): each plant tells it
    which fault to show, as the requests come one case at a time."""
    look_alike = TargetSettings(public_url=PUBLIC)
    with serve_target(look_alike) as url:
        yield look_alike, url


def against(
    env: Environment, check_id: str, secrets: Mapping[str, str] | None = None
) -> CheckResult:
    """One check against an environment through the runner, as `opsctl verify` runs it; the
    secrets default to the token the bot look-alike validates with."""
    token = {env.token_env: TargetSettings().token} if secrets is None else secrets

    async def go() -> CheckResult:
        async with httpx.AsyncClient(timeout=env.timeout_s, verify=TLS) as client:
            ctx = CheckContext(
                env.name,
                env.base_url,
                env.public_url,
                env.expect,
                client,
                dict(token),
                token_env=env.token_env,
                timeout_s=env.timeout_s,
                account_sid_env=env.account_sid_env,
                account_sid=TargetSettings().account_sid,
            )
            return await Runner(CHECKS).run_check("G", check_id, ctx)

    return asyncio.run(go())


def this_repository(env: str) -> Environment:
    """An environment of this repository's opsctl.toml."""
    return load_config(REPO_ROOT / "opsctl.toml", CHECKS).environments[env]


# --- https ----------------------------------------------------------------------------------


@planted("https", Status.PASS)
def https_everywhere(world: World) -> CheckResult:
    """opsctl.toml's render environment: https base and public URLs."""
    return against(this_repository("render"), "https")


@planted("https", Status.FAIL)
def http_base_url(world: World) -> CheckResult:
    """The render environment with an http:// base_url."""
    env = this_repository("render")
    return against(replace(env, base_url=env.base_url.replace("https://", "http://")), "https")


@planted("https", Status.SKIP)
def http_allowed(world: World) -> CheckResult:
    """A loopback environment that allows http (require_https = false)."""
    return against(world.environment("http://127.0.0.1:9"), "https")


# --- health ---------------------------------------------------------------------------------


@planted("health", Status.PASS)
def health_ok(world: World) -> CheckResult:
    """A bot look-alike with no fault."""
    return against(world.bot(), "health")


@planted("health", Status.WARN)
def health_slow(world: World) -> CheckResult:
    """/health takes 50 ms where the environment warns at 25 ms (and fails at 1000)."""
    env = world.bot("slow_health", slow_health_s=0.05)
    return against(replace(env, expect=replace(env.expect, latency_warn_ms=25)), "health")


@planted("health", Status.FAIL)
def health_500(world: World) -> CheckResult:
    """/health answers 500 with an HTML page."""
    return against(world.bot("health_500"), "health")


@planted("health", Status.ERROR)
def health_hangs(world: World) -> CheckResult:
    """/health answers nothing for a second; the timeout is 0.2 s."""
    return against(world.bot("hang", timeout_s=0.2, hang_s=1.0), "health")


# --- warmup ---------------------------------------------------------------------------------


@planted("warmup", Status.PASS)
def warmup_ready(world: World) -> CheckResult:
    """A bot look-alike with no fault."""
    return against(world.bot(), "warmup")


@planted("warmup", Status.WARN)
def warmup_warning(world: World) -> CheckResult:
    """The start-up report is ready with a warning."""
    return against(world.bot("warmup_warning"), "warmup")


@planted("warmup", Status.FAIL)
def warmup_not_ready(world: World) -> CheckResult:
    """The start-up report is not ready: a step failed."""
    return against(world.bot("warmup_not_ready"), "warmup")


@planted("warmup", Status.ERROR)
def warmup_down(world: World) -> CheckResult:
    """Nothing listens at the base URL."""
    return against(world.down(), "warmup")


# --- audio ----------------------------------------------------------------------------------


@planted("audio", Status.PASS)
def audio_ok(world: World) -> CheckResult:
    """A bot look-alike with no fault."""
    return against(world.bot(), "audio")


@planted("audio", Status.FAIL)
def audio_missing(world: World) -> CheckResult:
    """One MP3 answers 404."""
    return against(world.bot("audio_missing"), "audio")


@planted("audio", Status.ERROR)
def audio_down(world: World) -> CheckResult:
    """Nothing listens at the base URL."""
    return against(world.down(), "audio")


# --- metrics --------------------------------------------------------------------------------


@planted("metrics", Status.PASS)
def metrics_ok(world: World) -> CheckResult:
    """A bot look-alike with no fault."""
    return against(world.bot(), "metrics")


@planted("metrics", Status.WARN)
def metrics_memory_high(world: World) -> CheckResult:
    """/metrics reports 480 MB resident on the free plan's 512 MB (warn above 80 %)."""
    return against(world.bot("memory_high"), "metrics")


@planted("metrics", Status.FAIL)
def metrics_missing(world: World) -> CheckResult:
    """/metrics answers 404."""
    return against(world.bot("metrics_missing"), "metrics")


@planted("metrics", Status.ERROR)
def metrics_down(world: World) -> CheckResult:
    """Nothing listens at the base URL."""
    return against(world.down(), "metrics")


def test_metrics_warns_when_the_bot_answered_a_shared_key_signature_500(
    request: pytest.FixtureRequest, start_bot: Callable[..., DevServer]
) -> None:
    """The WARN reads what the real bot counts (bot/metrics.py, Refusal.NO_SHARED_KEY): Twilio
    signed with a SharedKey and the bot has no TWILIO_SHARED_KEY_SECRET to check it."""
    server = start_bot()
    bot = World(request).environment(server.url)
    assert against(bot, "metrics").status is Status.PASS
    form = whatsapp_form("hola", sid="SM" + "8" * 32)
    headers = {"X-Twilio-Signature": "c2lnbmF0dXJl", SETTINGS_HEADER: SHA256_SETTINGS}
    response = httpx.post(server.url + "/webhook", data=form, headers=headers, verify=TLS)
    assert response.status_code == 500
    result = against(bot, "metrics")
    assert result.status is Status.WARN
    assert "1 webhook signed with a Twilio SharedKey got 500" in result.reason
    assert "TWILIO_SHARED_KEY_SECRET" in result.hint
    assert result.details["shared_key_refusals"] == 1


# --- webhook --------------------------------------------------------------------------------


@planted("webhook", Status.PASS)
def webhook_ok(world: World) -> CheckResult:
    """A bot look-alike with no fault, and its token to sign with."""
    return against(world.bot(), "webhook")


@planted("webhook", Status.FAIL)
def webhook_accepts_unsigned(world: World) -> CheckResult:
    """The webhook answers 200 to unsigned requests."""
    return against(world.bot("webhook_accepts_unsigned"), "webhook")


@planted("webhook", Status.ERROR)
def webhook_no_token(world: World) -> CheckResult:
    """No auth token to sign the test requests with."""
    return against(world.bot(), "webhook", secrets={})


# --- secrets --------------------------------------------------------------------------------


@planted("secrets", Status.PASS)
def secrets_clean(world: World) -> CheckResult:
    """The small repository as it is."""
    return run(SecretScanCheck(), settings(world.repo()))[0]


@planted("secrets", Status.FAIL)
def secrets_token(world: World) -> CheckResult:
    """A Twilio auth token committed in a settings file."""
    root = world.repo()
    (root / "app" / "settings.py").write_text(f'TWILIO_AUTH_TOKEN = "{PLANTED_TOKEN}"\n')
    git(root, "add", "-A")
    return run(SecretScanCheck(), settings(root))[0]


@planted("secrets", Status.ERROR)
def secrets_nothing_to_scan(world: World) -> CheckResult:
    """An empty folder as the repository root."""
    (world.tmp_path / "empty").mkdir()
    return run(SecretScanCheck(), settings(world.tmp_path / "empty"))[0]


# --- hygiene --------------------------------------------------------------------------------


@planted("hygiene", Status.PASS)
def hygiene_clean(world: World) -> CheckResult:
    """The small repository as it is."""
    return run(HygieneCheck(), settings(world.repo()))[0]


@planted("hygiene", Status.FAIL)
def hygiene_tracked_env(world: World) -> CheckResult:
    """A .env file tracked by git."""
    root = world.repo()
    (root / ".env").write_text("X=1\n")
    git(root, "add", "-f", ".env")
    return run(HygieneCheck(), settings(root))[0]


@planted("hygiene", Status.ERROR)
def hygiene_corrupt_index(world: World) -> CheckResult:
    """A git index git cannot read."""
    root = world.repo()
    (root / ".git" / "index").write_bytes(b"not an index\n")
    return run(HygieneCheck(), settings(root))[0]


# --- deps -----------------------------------------------------------------------------------


@planted("deps", Status.PASS)
def deps_clean(world: World) -> CheckResult:
    """The small repository's pins against the small OSV folder."""
    return run(DependencyAuditCheck(), settings(world.repo()))[0]


@planted("deps", Status.FAIL)
def deps_vulnerable(world: World) -> CheckResult:
    """A pin with two known advisories."""
    root = world.repo()
    (root / "requirements" / "app.txt").write_text("requests==2.19.0\n")
    return run(DependencyAuditCheck(), settings(root))[0]


@planted("deps", Status.ERROR)
def deps_no_advisories(world: World) -> CheckResult:
    """An advisories folder that does not exist."""
    root = world.repo()
    return run(DependencyAuditCheck(), settings(root, advisories=root / "no-such-folder"))[0]


# --- lint -----------------------------------------------------------------------------------


@planted("lint", Status.PASS)
def lint_clean(world: World) -> CheckResult:
    """The small repository as it is."""
    return run(LintCheck(), settings(world.repo()))[0]


@planted("lint", Status.FAIL)
def lint_findings(world: World) -> CheckResult:
    """An unused import and a shell=True subprocess call."""
    root = world.repo()
    (root / "app" / "bad.py").write_text(
        "import os\nimport subprocess\n\nsubprocess.call('ls', shell=True)\n"
    )
    return run(LintCheck(), settings(root))[0]


@planted("lint", Status.ERROR)
def lint_nothing_to_lint(world: World) -> CheckResult:
    """A folder with no Python file."""
    (world.tmp_path / "README.md").write_text("no code here\n")
    return run(LintCheck(), settings(world.tmp_path))[0]


# --- tests (a one-test repository of its own: tests/checks/test_testsuite_cache.py) -----------


@planted("tests", Status.PASS)
def suite_passes(world: World) -> CheckResult:
    """A repository whose one test passes."""
    return run_tests(world.fixture("one_test_repo"), None)[0]


@planted("tests", Status.FAIL)
def suite_fails(world: World) -> CheckResult:
    """A second test that fails."""
    root = world.fixture("one_test_repo")
    (root / "tests" / "test_broken.py").write_text("def test_broken():\n    assert 1 == 2\n")
    return run_tests(root, None)[0]


@planted("tests", Status.ERROR)
def suite_cannot_run(world: World) -> CheckResult:
    """A conftest.py that raises: pytest stops before collecting (exit 4)."""
    root = world.fixture("one_test_repo")
    (root / "tests" / "conftest.py").write_text("raise RuntimeError('broken conftest')\n")
    return run_tests(root, None)[0]


@planted("tests", Status.SKIP)
def suite_inside_a_test_run(world: World) -> CheckResult:
    """Inside this repository's own test run (the suite would recurse)."""
    world.monkeypatch.setenv(INSIDE_TEST_RUN, "1")
    return run(TestSuiteCheck(), settings(world.tmp_path))[0]


# --- deploy-files ---------------------------------------------------------------------------


@planted("deploy-files", Status.PASS)
def deploy_files_clean(world: World) -> CheckResult:
    """The small repository: this repository's render.yaml, Dockerfile and assets."""
    return run(DeployFilesCheck(), settings(world.repo()))[0]


@planted("deploy-files", Status.FAIL)
def deploy_files_root(world: World) -> CheckResult:
    """A Dockerfile with no USER: the image runs as root."""
    root = world.repo()
    dockerfile = root / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text().replace("USER 10001\n", ""))
    return run(DeployFilesCheck(), settings(root))[0]


@planted("deploy-files", Status.ERROR)
def deploy_files_no_schema(world: World) -> CheckResult:
    """[repository] render_schema names a file that does not exist."""
    root = world.repo()
    return run(DeployFilesCheck(), settings(root, render_schema=root / "no-such.json"))[0]


# --- keepalive (tests/checks/test_keepalive_window.py: the daemon's own log lines) ------------


@planted("keepalive", Status.PASS)
def keepalive_whole_window(world: World) -> CheckResult:
    """A ping every 14 minutes since 5 minutes into the window."""
    daemon_log(world.tmp_path, grid(START + 5 * MINUTE, NOW))
    return keepalive_check(world.tmp_path)


@planted("keepalive", Status.WARN)
def keepalive_no_log(world: World) -> CheckResult:
    """No keep-alive log at all."""
    return keepalive_check(world.tmp_path)


@planted("keepalive", Status.FAIL)
def keepalive_stopped(world: World) -> CheckResult:
    """The daemon stopped an hour ago."""
    daemon_log(world.tmp_path, grid(START + 8 * MINUTE, NOW - 60 * MINUTE))
    return keepalive_check(world.tmp_path)


@planted("keepalive", Status.ERROR)
def keepalive_unreadable_log(world: World) -> CheckResult:
    """Today's log file is not text."""
    path = PingLog(world.tmp_path).path("render", NOW.date().isoformat())
    path.parent.mkdir(parents=True)
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    return keepalive_check(world.tmp_path)


# --- notion (the fake Notion API, set up as `opsctl notion init` leaves it) ------------------


def notion(world: World, change: Callable[[FakeNotion, Config], None] | None = None) -> CheckResult:
    """The notion check against the fake Notion API as `opsctl notion init` leaves it, after
    `change(fake, config)` when given."""
    fake: FakeNotion = world.fixture("fake_notion")
    config = initialised(config_copy(world.tmp_path), fake)
    if change is not None:
        change(fake, config)
    found = notion_settings(config, {"NOTION_TOKEN": fake.token, "NOTION_BASE_URL": fake.url})
    return look_at_notion(replace(found, requests_per_second=1000.0, timeout_s=2.0))


def look_at_notion(settings: NotionSettings | None) -> CheckResult:
    """The notion check through the runner with these settings (None: no [notion] ids)."""

    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "render", "", "", this_repository("render").expect, client, {}, notion=settings
            )
            return await Runner({"notion": NotionCheck()}).run_check("P2.4", "notion", ctx)

    return asyncio.run(go())


@planted("notion", Status.PASS)
def notion_current(world: World) -> CheckResult:
    """The databases as init made them, render's newest run synced into them; nothing waiting
    (without that run's rows the check says so: 0 rows is no PASS)."""

    def synced(fake: FakeNotion, config: Config) -> None:
        from opsctl.notion.rows import changes_to_send, completed_runs
        from opsctl.notion.service import push

        write_bundle(config.evidence.dir, make_run("render", "2026-11-20T10:00:00+00:00"))
        changes = changes_to_send(config, completed_runs(config, config.evidence.dir), [])
        assert push(config, changes, connect(config, fake)).error == ""

    return notion(world, synced)


@planted("notion", Status.WARN)
def notion_outbox_waiting(world: World) -> CheckResult:
    """A change waiting in the outbox."""

    def queue(fake: FakeNotion, config: Config) -> None:
        change = RowChange("gates", "render/P2.1", {"Status": "FAIL"}, "2026-11-22T00:00:00Z")
        Outbox(config.notion.outbox).add([change])

    return notion(world, queue)


@planted("notion", Status.FAIL)
def notion_column_retyped(world: World) -> CheckResult:
    """A column of the runs database retyped to text in Notion."""

    def retype(fake: FakeNotion, config: Config) -> None:
        runs = data_source(fake, config, config.notion.runs_database)
        fake.retype_property(runs, "Exit code", "rich_text")

    return notion(world, retype)


@planted("notion", Status.ERROR)
def notion_not_set_up(world: World) -> CheckResult:
    """No database ids: `opsctl notion init` never ran."""
    return look_at_notion(None)


# --- the standard ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check_id", "status"), sorted(PLANTED), ids=[f"{c}-{s.value}" for c, s in sorted(PLANTED)]
)
def test_the_planted_fault_gives_exactly_its_status(
    request: pytest.FixtureRequest, check_id: str, status: Status
) -> None:
    result = PLANTED[check_id, status](World(request))
    assert result.check_id == check_id
    assert result.status is status, f"{result.status}: {result.reason}"
    if status is Status.PASS:
        assert any(char.isdigit() for char in result.reason), "a PASS says how much it looked at"
    else:
        assert result.reason.strip(), f"a {status} says why"


def declared() -> set[tuple[str, Status]]:
    return {(check_id, s) for check_id, check in CHECKS.items() for s in check.statuses}


def test_every_declared_status_has_a_planted_fault() -> None:
    missing = [f"{c} {s}" for c, s in sorted(declared() - set(PLANTED))]
    assert not missing, f"declared with no planted fault in PLANTED: {', '.join(missing)}"


def test_every_planted_fault_is_for_a_declared_status() -> None:
    undeclared = [f"{c} {s}" for c, s in sorted(set(PLANTED) - declared())]
    assert not undeclared, (
        f"planted for a status its check does not declare: {', '.join(undeclared)}"
    )


def test_checks_declare_only_the_statuses_a_check_can_end_in() -> None:
    """BLOCKED and DOCUMENTED-BLOCKED are a gate's (its needs, a waiver), never a check's."""
    of_checks = {Status.PASS, Status.WARN, Status.FAIL, Status.ERROR, Status.SKIP}
    wrong = {c: sorted(check.statuses - of_checks) for c, check in CHECKS.items()}
    assert not {c: s for c, s in wrong.items() if s}
