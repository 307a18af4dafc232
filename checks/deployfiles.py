"""Deploy files: render.yaml, the Dockerfile (hadolint and our rules) and the warm-up's assets."""

from __future__ import annotations

import asyncio
import functools
import json
import re
import sys
from collections import defaultdict
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from checks import children
from checks.interface import Check, CheckContext, CheckError, CheckResult, RepoSettings, Status

if TYPE_CHECKING:  # jsonschema is imported only when the check runs
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator


_SCHEMA_HINT = "fix [repository] render_schema in opsctl.toml (a JSON Schema file), or remove it"
# Render's Blueprint schema, shipped with the package (data/SOURCE.md: where, when, refresh).
SHIPPED_SCHEMA = Path(str(resources.files("checks").joinpath("data", "render.yaml.json")))


def schema_in_use(repo: RepoSettings) -> tuple[Path, str]:
    """(file, how to name it): [repository] render_schema, else the shipped copy."""
    if repo.render_schema is not None:
        return repo.render_schema, f"the schema {repo.render_schema}"
    return SHIPPED_SCHEMA, "Render's Blueprint schema (shipped copy)"


@functools.cache
def schema_validator(schema: Path) -> Validator:
    """The validator of a JSON Schema file, read and checked once per process."""
    import jsonschema

    try:
        document = json.loads(schema.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CheckError(
            f"cannot read the render.yaml schema {schema}: {exc.strerror}", _SCHEMA_HINT
        ) from None
    except ValueError as exc:
        raise CheckError(
            f"the render.yaml schema {schema} is not valid JSON: {exc}", _SCHEMA_HINT
        ) from None
    validator_class = jsonschema.validators.validator_for(document)
    try:
        validator_class.check_schema(document)
    except jsonschema.SchemaError as exc:
        raise CheckError(
            f"the render.yaml schema {schema} is not a JSON Schema: {_one_line(exc.message)}",
            _SCHEMA_HINT,
        ) from None
    validator: Validator = validator_class(document)
    return validator


def _one_line(message: str, limit: int = 200) -> str:
    """jsonschema puts the whole instance in some messages: one line, cut."""
    line = " ".join(message.split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _where(error: ValidationError) -> str:
    """The JSON path into render.yaml: `services[0].envVars[2]`, or `(top level)`."""
    path = ""
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path.lstrip(".") or "(top level)"


def _leaves(error: ValidationError) -> list[ValidationError]:
    """The errors that say what to change: inside an anyOf/oneOf, those of the closest branch.

    Render's schema picks a service's shape with anyOf over the service types; the anyOf
    error itself only repeats the whole service, and its best_match names the wrong branch.
    The closest branch: one whose `type`-like const/enum matched, then the fewest errors.
    """
    if error.validator not in ("anyOf", "oneOf") or not error.context:
        return [error]
    branches: dict[Any, list[ValidationError]] = defaultdict(list)
    for sub in error.context:
        branches[sub.relative_schema_path[0]].append(sub)
    closest = min(
        branches.values(),
        key=lambda subs: (any(s.validator in ("const", "enum") for s in subs), len(subs)),
    )
    return [leaf for sub in closest for leaf in _leaves(sub)]


def _echoes_deeper_errors(error: ValidationError, errors: list[ValidationError]) -> bool:
    """An unevaluatedProperties error whose every named property has an error of its own.

    A property whose subschema failed counts as unevaluated (JSON Schema 2020-12), so
    `'services' was unexpected` follows any error inside services and would mislead.
    """
    if error.validator != "unevaluatedProperties" or not isinstance(error.instance, dict):
        return False
    base = list(error.absolute_path)
    failed = {
        list(other.absolute_path)[len(base)]
        for other in errors
        if len(other.absolute_path) > len(base) and list(other.absolute_path)[: len(base)] == base
    }
    named = {key for key in error.instance if f"'{key}'" in error.message}
    return bool(named) and named <= failed


def _path_order(error: ValidationError) -> tuple[tuple[int, int, str], ...]:
    """Sort key: by path, list indexes numerically."""
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in error.absolute_path)


def schema_problems(blueprint: Any, schema: Path) -> list[str]:
    """Every schema error of render.yaml, one line each with where it is."""
    errors = [
        leaf for error in schema_validator(schema).iter_errors(blueprint) for leaf in _leaves(error)
    ]
    kept = [e for e in errors if not _echoes_deeper_errors(e, errors)]
    lines = [
        f"render.yaml {_where(e)}: {_one_line(e.message)}" for e in sorted(kept, key=_path_order)
    ]
    return list(dict.fromkeys(lines))  # two branches can report the same thing


def render_problems(root: Path, schema: Path) -> list[str]:
    """What is wrong with render.yaml: schema, service kind, variables, secrets, health path."""
    import yaml

    from bot.settings import RENDER_PROVIDED, VARIABLES
    from bot.status import HEALTH_PATH

    path = root / "render.yaml"
    if not path.is_file():
        return ["render.yaml is missing"]
    blueprint = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    problems = []
    problems += schema_problems(blueprint, schema)
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
        "render.yaml": render_problems(repo.root, schema_in_use(repo)[0]),
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
        schema, schema_name = schema_in_use(repo)
        details: dict[str, Any] = {"problems": problems, "schema": str(schema)}
        if flat:
            return self.result(
                Status.FAIL,
                f"{len(flat)} problem(s), first: {flat[0]}",
                "fix the deploy files; each problem names what to change",
                details=details,
            )
        from bot.settings import RENDER_PROVIDED, VARIABLES

        declared = len(set(VARIABLES) - RENDER_PROVIDED)
        return self.result(
            Status.PASS,
            f"render.yaml declares all {declared} variables, valid against {schema_name}; "
            "Dockerfile hadolint-clean, "
            "non-root, exec ${PORT}, HEALTHCHECK, locked; knowledge base and its audio present",
            details=details,
        )
