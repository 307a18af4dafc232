"""Deploy files: render.yaml, the Dockerfile (hadolint and our rules) and the warm-up's assets."""

from __future__ import annotations

import ast
import asyncio
import functools
import json
import re
import shlex
import sys
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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


# --- the runbook's values -----------------------------------------------------------------

# Render gives `starter` to a service whose render.yaml names no plan
# (https://render.com/docs/blueprint-spec): only `plan: free` is the 512 MB free instance.
FREE_PLAN = "free"
_WORKERS_ARG = re.compile(r"^(?:--workers(?:=(?P<long>.*))?|-w(?P<short>.+)?)$")


@dataclass(frozen=True)
class Deploy:
    """What the runbook judges in a deploy: the plan, the variables set, every worker count."""

    plan: str
    env: Mapping[str, tuple[str, str]]
    """Variable -> (value, where it is set): the Dockerfile's ENV, then render.yaml's envVars."""
    workers: tuple[tuple[str, str], ...]
    """(where, count as written) for each place gunicorn may take its worker count from."""


@dataclass(frozen=True)
class RunbookRule:
    """One runbook value: the problems a deploy has against it, and what the runbook says."""

    free_plan_only: bool
    problems: Callable[[Deploy], list[str]]
    why: str


@dataclass(frozen=True)
class RunbookBreach:
    """A rule a deploy breaks: each problem names the value and where it is set."""

    problems: tuple[str, ...]
    why: str


def _setting_is(name: str, wanted: object) -> Callable[[Deploy], list[str]]:
    """A rule's test: the variable, read as the bot reads it (bot/settings.py), equals `wanted`."""
    from bot.settings import VARIABLES, SettingsError

    def problems(deploy: Deploy) -> list[str]:
        if name not in deploy.env:
            return []
        raw, where = deploy.env[name]
        try:
            value = VARIABLES[name].parse(name, raw)
        except SettingsError as exc:  # the bot would refuse to start: say so
            return [f"{exc} ({where})"]
        return [f"{name}={raw} ({where})"] if value == wanted else []

    return problems


def _more_than_one_worker(deploy: Deploy) -> list[str]:
    """Every place that asks gunicorn for more than one worker, or for a count not written."""
    return [
        f"{count} gunicorn workers ({where})"
        if count.isdigit()
        else f"gunicorn workers {count!r} ({where}): not a fixed count of 1"
        for where, count in deploy.workers
        if not (count.isdigit() and int(count) <= 1)
    ]


# The runbook's deploy values (issue 13, point 7). The free instance has 512 MB: past it,
# Render restarts the service and answers 502.
RUNBOOK_RULES = (
    RunbookRule(
        True,
        _setting_is("WHISPER_ON", True),
        "Whisper does not fit in the free instance's 512 MB (Render answers 502): WHISPER_ON=false",
    ),
    RunbookRule(
        False,
        _more_than_one_worker,
        "one gunicorn worker: a second exceeds the free instance's 512 MB (Render answers 502); "
        "scale out with more instances and REDIS_URL instead",
    ),
    RunbookRule(
        False,
        _setting_is("FLASK_ENV", "development"),
        "development mode must never be deployed: FLASK_ENV=production",
    ),
    RunbookRule(
        False,
        _setting_is("DEV_ALLOW_UNSIGNED_WEBHOOK", True),
        "unsigned webhooks must never be deployed: DEV_ALLOW_UNSIGNED_WEBHOOK=false",
    ),
)


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined, comments dropped."""
    instructions, pending = [], ""
    for line in text.splitlines():
        if line.lstrip().startswith("#") or not (pending or line.strip()):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    return instructions


def _words(command: str) -> list[str]:
    """A command's words: exec form (a JSON list) or shell form."""
    try:
        words = json.loads(command) if command.lstrip().startswith("[") else shlex.split(command)
    except ValueError:
        words = command.split()
    return [str(word) for word in words] if isinstance(words, list) else command.split()


def _worker_args(command: str) -> list[str]:
    """The values of gunicorn's --workers / -w in a command line."""
    words = _words(command)
    counts = []
    for index, word in enumerate(words):
        match = _WORKERS_ARG.match(word)
        if match is None:
            continue
        value = match["long"] or match["short"]
        if value is None and index + 1 < len(words):
            value = words[index + 1]
        counts.append(value or "")
    return counts


def _dockerfile_env(instructions: list[tuple[str, str]]) -> dict[str, str]:
    """The variables the Dockerfile's ENV instructions set (`ENV A=1 B=2` or `ENV A 1`)."""
    env: dict[str, str] = {}
    for keyword, arguments in instructions:
        if keyword != "ENV":
            continue
        words = _words(arguments)
        if words and "=" not in words[0]:
            env[words[0]] = " ".join(words[1:])
        else:
            env.update(word.partition("=")[::2] for word in words if "=" in word)
    return env


def _config_file_workers(path: Path) -> list[str]:
    """`workers = ...` at the top level of gunicorn's config file, as written."""
    if not path.is_file():
        return []
    try:
        tree = ast.parse(path.read_text(encoding="utf-8"))
    except (SyntaxError, ValueError):
        return []  # gunicorn would not start: not the runbook's concern
    return [
        ast.unparse(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == "workers" for t in node.targets)
    ]


def read_deploy(root: Path, service: Mapping[str, Any]) -> Deploy:
    """The runbook's view of a deploy: render.yaml's web service over the Dockerfile."""
    dockerfile = root / "Dockerfile"
    text = dockerfile.read_text(encoding="utf-8") if dockerfile.is_file() else ""
    instructions = _dockerfile_instructions(text)
    env = {name: (value, "Dockerfile ENV") for name, value in _dockerfile_env(instructions).items()}
    for item in service.get("envVars") or []:
        if isinstance(item, dict) and "key" in item and "value" in item:
            value = item["value"]
            text_value = str(value).lower() if isinstance(value, bool) else str(value)
            env[str(item["key"])] = (text_value, "render.yaml")
    workers: list[tuple[str, str]] = []
    commands = [("Dockerfile CMD", args) for kw, args in instructions if kw == "CMD"][-1:]
    commands += [
        (f"render.yaml {key}", str(service[key]))
        for key in ("dockerCommand", "startCommand")
        if service.get(key)
    ]
    if "GUNICORN_CMD_ARGS" in env:
        value, where = env["GUNICORN_CMD_ARGS"]
        commands.append((f"GUNICORN_CMD_ARGS in {where}", value))
    workers += [(where, count) for where, command in commands for count in _worker_args(command)]
    if "WEB_CONCURRENCY" in env:  # gunicorn's default worker count
        value, where = env["WEB_CONCURRENCY"]
        workers.append((f"WEB_CONCURRENCY in {where}", value.strip()))
    config = root / "gunicorn.conf.py"
    workers += [(f"{config.name} workers", count) for count in _config_file_workers(config)]
    return Deploy(str(service.get("plan", "")), env, tuple(workers))


def runbook_breaches(root: Path) -> list[RunbookBreach]:
    """The runbook rules the deploy files break (none without a render.yaml web service)."""
    import yaml

    path = root / "render.yaml"
    if not path.is_file():
        return []  # render_problems says so
    blueprint = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    webs = [s for s in blueprint.get("services", []) if s.get("type") == "web"]
    if not webs:
        return []
    deploy = read_deploy(root, webs[0])
    breaches = []
    for rule in RUNBOOK_RULES:
        if rule.free_plan_only and deploy.plan != FREE_PLAN:
            continue
        plan = " on the free plan" if rule.free_plan_only else ""
        problems = tuple(problem + plan for problem in rule.problems(deploy))
        if problems:
            breaches.append(RunbookBreach(problems, rule.why))
    return breaches


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
        "/health; Dockerfile lint-clean, non-root, exec ${PORT}, HEALTHCHECK, locked; "
        "the runbook's values: one gunicorn worker, no Whisper on the free plan, "
        "FLASK_ENV=production, signed webhooks"
    )
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        repo = ctx.repository()
        problems = await asyncio.to_thread(all_problems, repo)
        breaches = await asyncio.to_thread(runbook_breaches, repo.root)
        flat = [p for group in problems.values() for p in group]
        schema, schema_name = schema_in_use(repo)
        against = [problem for breach in breaches for problem in breach.problems]
        details: dict[str, Any] = {
            "problems": {**problems, "runbook": against},
            "schema": str(schema),
        }
        if against:
            others = f"; and {len(flat)} other problem(s), first: {flat[0]}" if flat else ""
            return self.result(
                Status.FAIL,
                "against the runbook: " + "; ".join(against) + others,
                "the runbook: " + "; ".join(breach.why for breach in breaches),
                details=details,
            )
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
            "non-root, exec ${PORT}, HEALTHCHECK, locked; knowledge base and its audio present; "
            f"the runbook's {len(RUNBOOK_RULES)} deploy values kept",
            details=details,
        )
