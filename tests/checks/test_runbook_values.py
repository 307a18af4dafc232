"""The runbook's values are checked: deploy files, the warm-up's duration, the tests' count.

Issue 13, point 7: each deploy-files case plants one problem in a copy of this repository's
deploy files; the warm-up is judged by the real WarmupCheck against a loopback server; the
tests gate by a one-test repository against tests_min.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from checks.deployfiles import DeployFilesCheck
from checks.http import WarmupCheck
from checks.interface import CheckContext, CheckResult, Expectations, RepoSettings, Status
from checks.registry import CHECKS
from opsctl.config import ConfigError, load_config
from opsctl.result_cache import FileResultCache
from tests.checks.test_repository import run
from tests.checks.test_testsuite_cache import repo as one_test_repo  # noqa: F401 - a fixture
from tests.checks.test_testsuite_cache import run_tests, runs
from tests.conftest import REPO_ROOT
from tests.loopback import TLS

DEPLOY_FILES = ("render.yaml", "Dockerfile", ".hadolint.yaml", "gunicorn.conf.py")


# --- deploy-files ---------------------------------------------------------------------------


@pytest.fixture
def deploy_repo(tmp_path: Path) -> Path:
    """This repository's deploy files and the assets they need, in a folder of their own."""
    root = tmp_path / "deploy"
    root.mkdir()
    for name in DEPLOY_FILES:
        shutil.copy(REPO_ROOT / name, root / name)
    for folder in ("data", "static"):
        shutil.copytree(REPO_ROOT / "bot" / folder, root / "bot" / folder)
    return root


def deploy_files(root: Path) -> CheckResult:
    """deploy-files on `root`, through the runner as opsctl runs it."""
    return run(DeployFilesCheck(), RepoSettings(root=root))[0]


def web_service(root: Path, change: Callable[[dict[str, Any]], None]) -> None:
    """Rewrite render.yaml with its web service changed in place."""
    path = root / "render.yaml"
    blueprint = yaml.safe_load(path.read_text())
    change(blueprint["services"][0])
    path.write_text(yaml.safe_dump(blueprint, sort_keys=False))


def set_env(**values: str) -> Callable[[dict[str, Any]], None]:
    """A web-service change: these envVars set to these values (added when missing)."""

    def change(service: dict[str, Any]) -> None:
        items = {item["key"]: item for item in service["envVars"]}
        for key, value in values.items():
            if key in items:
                items[key]["value"] = value
            else:
                service["envVars"].append({"key": key, "value": value})

    return change


def replace_in(root: Path, name: str, old: str, new: str) -> None:
    """Change one file of the copy; the text to replace must be there."""
    path = root / name
    text = path.read_text()
    assert old in text, (name, old)
    path.write_text(text.replace(old, new))


CMD = 'CMD exec gunicorn --config gunicorn.conf.py --bind 0.0.0.0:${PORT:-10000} "bot:create_app()"'


def plant_whisper(root: Path) -> None:
    web_service(root, set_env(WHISPER_ON="true"))


def plant_flask_development(root: Path) -> None:
    web_service(root, set_env(FLASK_ENV="development"))


def plant_unsigned_webhooks(root: Path) -> None:
    web_service(root, set_env(DEV_ALLOW_UNSIGNED_WEBHOOK="true"))


def plant_cmd_workers(root: Path) -> None:
    replace_in(root, "Dockerfile", CMD, CMD.replace("--config", "--workers 4 --config"))


def plant_cmd_short_flag(root: Path) -> None:
    replace_in(root, "Dockerfile", CMD, CMD.replace("--config", "-w 2 --config"))


def plant_docker_command(root: Path) -> None:
    def change(service: dict[str, Any]) -> None:
        service["dockerCommand"] = "gunicorn --workers=3 --bind 0.0.0.0:10000 bot:create_app()"

    web_service(root, change)


def plant_web_concurrency(root: Path) -> None:
    web_service(root, set_env(WEB_CONCURRENCY="4"))


def plant_dockerfile_web_concurrency(root: Path) -> None:
    replace_in(
        root,
        "Dockerfile",
        "PYTHONUNBUFFERED=1 \\\n",
        "PYTHONUNBUFFERED=1 \\\n    WEB_CONCURRENCY=2 \\\n",
    )


def plant_gunicorn_args(root: Path) -> None:
    web_service(root, set_env(GUNICORN_CMD_ARGS="--workers 2 --timeout 30"))


def plant_config_workers(root: Path) -> None:
    replace_in(root, "gunicorn.conf.py", "\nworkers = 1\n", "\nworkers = 4\n")


def plant_config_cpu_workers(root: Path) -> None:
    replace_in(
        root,
        "gunicorn.conf.py",
        "\nworkers = 1\n",
        "\nimport multiprocessing\n\nworkers = multiprocessing.cpu_count() * 2 + 1\n",
    )


# (planted problem, what the FAIL names, what its hint says): one problem per case.
ONE_PROBLEM = {
    "whisper on the free plan": (
        plant_whisper,
        "WHISPER_ON=true (render.yaml) on the free plan",
        "Whisper does not fit in the free instance's 512 MB (Render answers 502)",
    ),
    "FLASK_ENV=development": (
        plant_flask_development,
        "FLASK_ENV=development (render.yaml)",
        "development mode must never be deployed",
    ),
    "unsigned webhooks": (
        plant_unsigned_webhooks,
        "DEV_ALLOW_UNSIGNED_WEBHOOK=true (render.yaml)",
        "unsigned webhooks must never be deployed",
    ),
    "Dockerfile CMD --workers": (
        plant_cmd_workers,
        "4 gunicorn workers (Dockerfile CMD)",
        "one gunicorn worker: a second exceeds the free instance's 512 MB (Render answers 502)",
    ),
    "Dockerfile CMD -w": (plant_cmd_short_flag, "2 gunicorn workers (Dockerfile CMD)", "512 MB"),
    "render.yaml dockerCommand": (
        plant_docker_command,
        "3 gunicorn workers (render.yaml dockerCommand)",
        "512 MB",
    ),
    "WEB_CONCURRENCY in render.yaml": (
        plant_web_concurrency,
        "4 gunicorn workers (WEB_CONCURRENCY in render.yaml)",
        "512 MB",
    ),
    "WEB_CONCURRENCY in the Dockerfile": (
        plant_dockerfile_web_concurrency,
        "2 gunicorn workers (WEB_CONCURRENCY in Dockerfile ENV)",
        "512 MB",
    ),
    "GUNICORN_CMD_ARGS": (
        plant_gunicorn_args,
        "2 gunicorn workers (GUNICORN_CMD_ARGS in render.yaml)",
        "512 MB",
    ),
    "gunicorn.conf.py workers": (
        plant_config_workers,
        "4 gunicorn workers (gunicorn.conf.py workers)",
        "512 MB",
    ),
    "gunicorn.conf.py cpu_count workers": (
        plant_config_cpu_workers,
        "gunicorn workers 'multiprocessing.cpu_count() * 2 + 1' (gunicorn.conf.py workers): "
        "not a fixed count of 1",
        "512 MB",
    ),
}


@pytest.mark.parametrize("case", list(ONE_PROBLEM))
def test_each_runbook_problem_fails_by_name(deploy_repo: Path, case: str) -> None:
    plant, named, hint = ONE_PROBLEM[case]
    plant(deploy_repo)
    result = deploy_files(deploy_repo)
    assert result.status is Status.FAIL, result.reason
    assert result.reason == f"against the runbook: {named}"
    assert hint in result.hint and result.hint.startswith("the runbook: ")
    problems = result.details["problems"]
    assert problems["runbook"] == [named]
    assert [p for group, found in problems.items() if group != "runbook" for p in found] == []


def test_several_problems_are_one_fail_naming_all(deploy_repo: Path) -> None:
    plant_whisper(deploy_repo)
    plant_flask_development(deploy_repo)
    plant_unsigned_webhooks(deploy_repo)
    plant_cmd_workers(deploy_repo)
    result = deploy_files(deploy_repo)
    assert result.status is Status.FAIL
    assert result.reason == (
        "against the runbook: WHISPER_ON=true (render.yaml) on the free plan; "
        "4 gunicorn workers (Dockerfile CMD); FLASK_ENV=development (render.yaml); "
        "DEV_ALLOW_UNSIGNED_WEBHOOK=true (render.yaml)"
    )
    for why in ("Whisper does not fit", "one gunicorn worker", "development mode", "unsigned"):
        assert why in result.hint, why


def test_runbook_problems_come_first_and_others_are_counted(deploy_repo: Path) -> None:
    plant_whisper(deploy_repo)
    replace_in(deploy_repo, "Dockerfile", "USER 10001\n", "")
    result = deploy_files(deploy_repo)
    assert result.reason == (
        "against the runbook: WHISPER_ON=true (render.yaml) on the free plan; and 1 other "
        "problem(s), first: the image runs as root: add a USER that is not root"
    )


def test_whisper_is_judged_only_on_the_free_plan(deploy_repo: Path) -> None:
    """Render's starter instance has room for it; a render.yaml without a plan gets starter."""

    def starter(service: dict[str, Any]) -> None:
        service["plan"] = "starter"
        set_env(WHISPER_ON="true")(service)

    web_service(deploy_repo, starter)
    assert deploy_files(deploy_repo).status is Status.PASS


def test_a_value_the_bot_would_refuse_is_named(deploy_repo: Path) -> None:
    web_service(deploy_repo, set_env(WHISPER_ON="maybe"))
    result = deploy_files(deploy_repo)
    assert result.status is Status.FAIL
    assert result.reason == (
        "against the runbook: WHISPER_ON='maybe' is not a boolean: use true or false "
        "(render.yaml) on the free plan"
    )


def test_the_shipped_deploy_files_keep_the_runbook() -> None:
    result = deploy_files(REPO_ROOT)
    assert result.status is Status.PASS, result.reason
    assert "the runbook's 4 deploy values kept" in result.reason
    assert result.details["problems"]["runbook"] == []
    (service,) = yaml.safe_load((REPO_ROOT / "render.yaml").read_text())["services"]
    values = {item["key"]: item.get("value") for item in service["envVars"]}
    assert values["DEMO_MODE"] == values["LLM_LIVE"] == "true"
    assert values["WHISPER_ON"] == values["DEV_ALLOW_UNSIGNED_WEBHOOK"] == "false"
    assert values["FLASK_ENV"] == "production" and service["plan"] == "free"


# --- the warm-up's duration -----------------------------------------------------------------


@pytest.fixture
def warmup_server() -> Iterator[tuple[dict[str, Any], str]]:
    """A loopback server answering GET /status/warmup with the report the test puts in the
    dict (200 when ready, 503 otherwise, as the bot does); yields (report, base URL)."""
    report: dict[str, Any] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            found = self.path == "/status/warmup"
            body = json.dumps(report if found else {"error": "not found"}).encode()
            self.send_response(404 if not found else 200 if report.get("ready") else 503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield report, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def warmup_report(duration_sec: float, ready: bool = True, errors: tuple[str, ...] = ()) -> dict:
    """A report shaped like the bot's /status/warmup."""
    return {
        "ready": ready,
        "duration_sec": duration_sec,
        "checks": {"knowledge_base": {"ok": True, "detail": "8 entries"}},
        "errors": list(errors),
        "warnings": [],
    }


def judge_warmup(base_url: str, expect: Expectations | None = None) -> CheckResult:
    """The real WarmupCheck against base_url."""

    async def go() -> CheckResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext("loopback", base_url, base_url, expect or Expectations(), client, {})
            return await WarmupCheck().run(ctx)

    return asyncio.run(go())


def test_a_warmup_over_60_s_is_a_warn(warmup_server: tuple[dict[str, Any], str]) -> None:
    report, url = warmup_server
    report.update(warmup_report(75.0))
    result = judge_warmup(url)
    assert result.status is Status.WARN
    assert result.reason == "ready in 75.0s, 1 start-up checks passed; slower than 60s"
    assert "the warm-up guide alerts above 60s" in result.hint
    report.update(warmup_report(59.9))
    assert judge_warmup(url).status is Status.PASS


def test_warmup_warn_s_is_per_environment(warmup_server: tuple[dict[str, Any], str]) -> None:
    report, url = warmup_server
    report.update(warmup_report(75.0))
    assert judge_warmup(url, Expectations(warmup_warn_s=90)).status is Status.PASS
    result = judge_warmup(url, Expectations(warmup_warn_s=30))
    assert result.status is Status.WARN and "slower than 30s" in result.reason


def test_a_slow_warmup_with_errors_stays_a_fail(warmup_server: tuple[dict[str, Any], str]) -> None:
    report, url = warmup_server
    report.update(warmup_report(75.0, ready=False, errors=("audio_files: imv_es.mp3 missing",)))
    result = judge_warmup(url)
    assert result.status is Status.FAIL
    assert result.reason == "warm-up not ready: audio_files: imv_es.mp3 missing"


CONFIG = """
[environments.render]
base_url = "https://clara.example.org"
{environment}

[repository]
root = "."
{repository}

[gates.D]
title = "Deploy"
checks = ["warmup", "tests"]
"""


def config_with(tmp_path: Path, environment: str = "", repository: str = "") -> Path:
    path = tmp_path / "opsctl.toml"
    path.write_text(CONFIG.format(environment=environment, repository=repository))
    return path


def test_config_reads_warmup_warn_s_and_tests_min(tmp_path: Path) -> None:
    defaults = load_config(config_with(tmp_path), CHECKS)
    assert defaults.environments["render"].expect.warmup_warn_s == 60
    assert defaults.repo is not None and defaults.repo.tests_min == 93
    config = load_config(config_with(tmp_path, "warmup_warn_s = 45", "tests_min = 120"), CHECKS)
    assert config.environments["render"].expect.warmup_warn_s == 45
    assert config.repo is not None and config.repo.tests_min == 120


@pytest.mark.parametrize(
    ("environment", "repository", "message"),
    [
        ("warmup_warn_s = 0", "", "environments.render.warmup_warn_s: 0 is less than or equal"),
        ("", "tests_min = 9.5", "repository.tests_min: 9.5 is not of type 'integer'"),
        ("", "tests_min = -1", "repository.tests_min: -1 is less than the minimum of 0"),
    ],
)
def test_bad_values_are_one_line(
    tmp_path: Path, environment: str, repository: str, message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        load_config(config_with(tmp_path, environment, repository), CHECKS)
    assert message in str(error.value) and "\n" not in str(error.value)


# --- the tests' count -----------------------------------------------------------------------


@pytest.fixture
def one_test_suite(request: pytest.FixtureRequest) -> Path:
    """tests/checks/test_testsuite_cache.py's one-test repository (its runs are counted)."""
    return Path(request.getfixturevalue("one_test_repo"))


def test_a_suite_under_tests_min_fails(one_test_suite: Path) -> None:
    result, _ = run_tests(one_test_suite, None, tests_min=93)
    assert result.status is Status.FAIL
    assert result.reason == (
        "1 tests, 0 failed, 0 errors: 1 tests ran (0 skipped), fewer than tests_min 93"
    )
    assert "the suite shrank" in result.hint
    assert result.details["tests_min"] == 93


def test_a_reused_pass_is_judged_again_against_todays_tests_min(
    one_test_suite: Path, tmp_path: Path
) -> None:
    cache = FileResultCache(tmp_path / "cache")
    first, _ = run_tests(one_test_suite, cache, tests_min=1)
    stricter, _ = run_tests(one_test_suite, cache, tests_min=2)
    assert first.status is Status.PASS and runs(tmp_path) == 1, "the second run reused the first"
    assert stricter.status is Status.FAIL
    assert "1 tests ran (0 skipped), fewer than tests_min 2" in stricter.reason
