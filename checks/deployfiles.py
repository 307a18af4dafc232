"""Deploy files: render.yaml, the Dockerfile (hadolint and our rules) and the warm-up's assets."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from checks import children
from checks.interface import Check, CheckContext, CheckResult, RepoSettings, Status


def render_problems(root: Path, schema: Path | None) -> list[str]:
    """What is wrong with render.yaml: schema, service kind, variables, secrets, health path."""
    import yaml

    from bot.settings import RENDER_PROVIDED, VARIABLES
    from bot.status import HEALTH_PATH

    path = root / "render.yaml"
    if not path.is_file():
        return ["render.yaml is missing"]
    blueprint = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    problems = []
    if schema is not None:
        import jsonschema

        validator_class = jsonschema.validators.validator_for(json.loads(schema.read_text()))
        validator = validator_class(json.loads(schema.read_text()))
        problems += [f"render.yaml: {e.message}" for e in validator.iter_errors(blueprint)][:5]
    webs = [s for s in blueprint.get("services", []) if s.get("type") == "web"]
    if not webs:
        return [*problems, "render.yaml declares no web service"]
    service = webs[0]
    if service.get("runtime") != "docker":
        problems.append(f"runtime is {service.get('runtime')!r}, expected 'docker'")
    if service.get("healthCheckPath") != HEALTH_PATH:
        problems.append(
            f"healthCheckPath is {service.get('healthCheckPath')!r}, the bot serves {HEALTH_PATH}"
        )
    declared = {item.get("key"): item for item in service.get("envVars", [])}
    for name in sorted(set(VARIABLES) - RENDER_PROVIDED - set(declared)):
        problems.append(f"render.yaml does not declare {name}")
    for name, variable in VARIABLES.items():
        item = declared.get(name)
        if (
            variable.secret
            and item is not None
            and (item.get("sync") is not False or "value" in item)
        ):
            problems.append(f"{name} is a secret: declare it with sync: false and no value")
    return problems


def dockerfile_problems(root: Path) -> list[str]:
    """hadolint's findings and ours: non-root, exec with ${PORT}, HEALTHCHECK, locked install."""
    path = root / "Dockerfile"
    if not path.is_file():
        return ["Dockerfile is missing"]
    text = path.read_text(encoding="utf-8")
    problems = []
    hadolint = Path(sys.executable).with_name("hadolint")
    config = root / ".hadolint.yaml"
    args = [
        str(hadolint),
        *(["--config", str(config)] if config.is_file() else []),
        "-f",
        "json",
        str(path),
    ]
    done = children.run(args, capture_output=True, text=True, check=False, timeout=60)
    try:
        findings = json.loads(done.stdout or "[]")
    except ValueError:
        findings = [{"line": 0, "code": "hadolint", "message": done.stderr.strip()[:200]}]
    problems += [f"Dockerfile:{f['line']}: {f['code']} {f['message']}" for f in findings]
    users = re.findall(r"^USER\s+(\S+)", text, re.M)
    if not users or users[-1] in ("root", "0", "0:0"):
        problems.append("the image runs as root: add a USER that is not root")
    cmd = [line for line in text.splitlines() if line.startswith("CMD ")]
    if not cmd or "exec " not in cmd[-1] or "${PORT" not in cmd[-1]:
        problems.append("CMD must be shell form with `exec` and ${PORT} (Render sets PORT)")
    if not re.search(r"^HEALTHCHECK ", text, re.M):
        problems.append("no HEALTHCHECK")
    if not re.search(r"pip install[^\n]*--require-hashes[^\n]*-r requirements/", text):
        problems.append("dependencies are not installed from the hashed lock file")
    return problems


def asset_problems(root: Path) -> list[str]:
    """The knowledge base loads and every audio file it names exists as an MP3."""
    from bot.audio import looks_like_mp3
    from bot.knowledge import KnowledgeError, load_knowledge

    try:
        knowledge = load_knowledge(root / "bot" / "data" / "knowledge.json")
    except KnowledgeError as exc:
        return [str(exc)]
    problems = []
    for name in knowledge.audio_files:
        path = root / "bot" / "static" / "cache" / name
        if not path.is_file() or not looks_like_mp3(path.read_bytes()[:4]):
            problems.append(f"audio {name} is missing or not an MP3")
    return problems


def all_problems(repo: RepoSettings) -> dict[str, list[str]]:
    """Problems by file family."""
    return {
        "render.yaml": render_problems(repo.root, repo.render_schema),
        "Dockerfile": dockerfile_problems(repo.root),
        "assets": asset_problems(repo.root),
    }


class DeployFilesCheck(Check):
    """render.yaml, the Dockerfile and the warm-up assets are fit to deploy."""

    id = "deploy-files"
    title = "render.yaml, Dockerfile and assets"
    done_when = (
        "render.yaml declares every variable (secrets sync: false), runtime docker, "
        "/health; Dockerfile lint-clean, non-root, exec ${PORT}, HEALTHCHECK, locked"
    )
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        repo = ctx.repository()
        problems = await asyncio.to_thread(all_problems, repo)
        flat = [p for group in problems.values() for p in group]
        details: dict[str, Any] = {
            "problems": problems,
            "schema": str(repo.render_schema or "not configured"),
        }
        if flat:
            return self.result(
                Status.FAIL,
                f"{len(flat)} problem(s), first: {flat[0]}",
                "fix the deploy files; each problem names what to change",
                details=details,
            )
        from bot.settings import RENDER_PROVIDED, VARIABLES

        schema = ", schema-valid" if repo.render_schema else ""
        declared = len(set(VARIABLES) - RENDER_PROVIDED)
        return self.result(
            Status.PASS,
            f"render.yaml declares all {declared} variables{schema}; Dockerfile hadolint-clean, "
            "non-root, exec ${PORT}, HEALTHCHECK, locked; knowledge base and its audio present",
            details=details,
        )
