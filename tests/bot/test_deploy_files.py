"""Deploy files: render.yaml against Render's schema, every variable declared, a lean image."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from bot.settings import RENDER_PROVIDED, VARIABLES
from checks.deployfiles import SHIPPED_SCHEMA as SCHEMA
from opsctl.devserver import dockerfile_command
from tests.conftest import REPO_ROOT


@pytest.fixture(scope="module")
def blueprint() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "render.yaml").read_text())


@pytest.fixture(scope="module")
def web_service(blueprint: dict[str, Any]) -> dict[str, Any]:
    (service,) = blueprint["services"]
    return service


def test_render_yaml_matches_renders_schema(blueprint: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    errors = sorted(validator.iter_errors(blueprint), key=lambda e: list(e.path))
    assert [e.message for e in errors] == []


def test_schema_rejects_a_broken_blueprint(blueprint: dict[str, Any]) -> None:
    """The validation above can fail: `env: docker` (the old spelling) is refused."""
    schema = json.loads(SCHEMA.read_text())
    broken = {"services": [{**blueprint["services"][0], "env": "docker"}]}
    del broken["services"][0]["runtime"]
    assert list(jsonschema.validators.validator_for(schema)(schema).iter_errors(broken))


def with_key_value(text: str) -> str:
    """render.yaml with its optional Key Value blocks uncommented, as the comments say to."""

    def uncomment(block: re.Match[str]) -> str:
        return re.sub(r"(?m)^(\s*)# ?", r"\1", block.group(1))

    text = re.sub(r"(?s)[ \t]*# >>> keyvalue\n(.*?)\s*# <<< keyvalue", uncomment, text)
    # REDIS_URL then comes from the service, not from the dashboard.
    return text.replace("sync: false\n        # With the Key Value", "# With the Key Value")


def test_the_optional_key_value_service_is_a_valid_blueprint_too() -> None:
    """Off for the free tier; uncommented as documented, Render's schema accepts it and the
    bot's REDIS_URL comes from it."""
    blueprint = yaml.safe_load(with_key_value((REPO_ROOT / "render.yaml").read_text()))
    web, store = blueprint["services"]
    assert store == {
        "type": "keyvalue",
        "name": "clara-state",
        "plan": "starter",
        "ipAllowList": [],
        "maxmemoryPolicy": "noeviction",
    }
    redis = next(v for v in web["envVars"] if v["key"] == "REDIS_URL")
    assert redis == {
        "key": "REDIS_URL",
        "fromService": {"type": "keyvalue", "name": "clara-state", "property": "connectionString"},
    }
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    assert [e.message for e in validator.iter_errors(blueprint)] == []


def test_web_service_on_the_free_plan(web_service: dict[str, Any]) -> None:
    assert web_service["type"] == "web"
    assert web_service["runtime"] == "docker"
    assert web_service["plan"] == "free"
    assert web_service["healthCheckPath"] == "/health"


def test_every_variable_the_bot_reads_is_declared(web_service: dict[str, Any]) -> None:
    declared = {item["key"] for item in web_service["envVars"]}
    assert declared == set(VARIABLES) - RENDER_PROVIDED


def test_secrets_are_set_in_the_dashboard(web_service: dict[str, Any]) -> None:
    by_key = {item["key"]: item for item in web_service["envVars"]}
    for name, variable in VARIABLES.items():
        if variable.secret:
            assert by_key[name] == {"key": name, "sync": False}, name


def test_env_example_lists_every_variable_without_values() -> None:
    lines = [
        line
        for line in (REPO_ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert all(line.endswith("=") for line in lines), "no values in .env.example"
    assert {line[:-1] for line in lines} == set(VARIABLES) - RENDER_PROVIDED


def test_dockerfile_runs_gunicorn_as_pid_1_on_port() -> None:
    text = (REPO_ROOT / "Dockerfile").read_text()
    assert text.startswith("# ") and "FROM python:3.11-slim\n" in text
    assert dockerfile_command().startswith("exec gunicorn ")
    assert "--bind 0.0.0.0:${PORT:-10000}" in dockerfile_command()
    assert "\nEXPOSE 10000\n" in text
    user = re.findall(r"^USER (\S+)$", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n.*urllib\.request\.urlopen", text, re.M)
    assert "pip install --require-hashes -r requirements/bot.txt" in text
    assert "toolkit.txt" not in text


def _locked(name: str) -> set[str]:
    text = (REPO_ROOT / "requirements" / name).read_text()
    return {m.group(1).lower() for m in re.finditer(r"^([A-Za-z0-9_.-]+)==", text, re.M)}


def test_bot_lock_holds_the_bot_and_not_the_toolkit() -> None:
    bot = _locked("bot.txt")
    assert {"flask", "gunicorn", "twilio", "prometheus-client", "httpx"} <= bot
    assert not {"pip-audit", "detect-secrets", "notion-client", "rich", "pytest"} & bot
    toolkit = _locked("toolkit.txt")
    assert bot <= toolkit
    assert {"pip-audit", "detect-secrets", "notion-client", "pytest", "hypothesis"} <= toolkit


def test_locks_pin_every_package_with_hashes() -> None:
    for name in ("bot.txt", "toolkit.txt"):
        text = (REPO_ROOT / "requirements" / name).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\\n\s+--hash=sha256:", text, re.M)
        assert pins and len(pins) == len(_locked(name)), name


def test_pre_commit_hooks_work_offline() -> None:
    config = yaml.safe_load((REPO_ROOT / ".pre-commit-config.yaml").read_text())
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    for hook in config["repos"][0]["hooks"]:
        assert hook["language"] in ("script", "system", "fail"), hook["id"]
        assert "additional_dependencies" not in hook, hook["id"]


def _check_workflow(path: Path) -> subprocess.CompletedProcess[str]:
    tool = Path(sys.executable).with_name("check-jsonschema")
    return subprocess.run(
        [str(tool), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_github_workflow_is_valid(tmp_path: Path) -> None:
    """check-jsonschema's vendored GitHub workflow schema (actionlint does not install here)."""
    workflow = REPO_ROOT / ".github" / "workflows" / "ci.yml"
    done = _check_workflow(workflow)
    assert done.returncode == 0, done.stdout + done.stderr
    jobs = yaml.safe_load(workflow.read_text())["jobs"]
    assert set(jobs) == {"lint", "verify", "image"}
    lint = " ".join(str(step) for step in jobs["lint"]["steps"])
    assert ".venv/bin/mypy" in lint and "pre-commit run --all-files" in lint
    runs = [str(s.get("run", "")) for job in jobs.values() for s in job["steps"]]
    assert not any("make test" in run for run in runs)  # the suite runs once, in make run
    steps = " ".join(str(step) for step in jobs["verify"]["steps"])
    assert "make run" in steps and "upload-artifact" in steps and "evidence-out/" in steps
    assert "docker build" in " ".join(str(step) for step in jobs["image"]["steps"])
    broken = tmp_path / "ci.yml"
    broken.write_text(workflow.read_text().replace("runs-on:", "run-on:", 1))
    assert _check_workflow(broken).returncode != 0, "the schema check can fail"
