"""Load and validate opsctl.toml: environments, their expectations, and the gates."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from checks.interface import AUDIO_QUESTIONS, AcceptedRisk, Expectations, RepoSettings
from opsctl.config_file import ConfigError as ConfigError
from opsctl.config_file import read_toml

LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")

_NUMBER = {"type": "number", "exclusiveMinimum": 0}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_ENVIRONMENT = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "base_url": {"type": "string", "pattern": "^https?://[^/]+"},
        "public_url": {"type": "string", "pattern": "^https?://[^/]+"},
        "start_bot": {"type": "boolean"},
        "token_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
        "account_sid_env": {"type": "string", "pattern": "^[A-Z_][A-Z0-9_]*$"},
        "health_status": {**_NAMES, "minItems": 1},
        "components": {
            "type": "object",
            "additionalProperties": {"type": ["boolean", "integer", "string"]},
        },
        "audio": _NAMES,
        "audio_questions": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {"type": "string", "minLength": 1},
        },
        "audio_host": {"type": "string", "pattern": "^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$"},
        "latency_warn_ms": _NUMBER,
        "latency_fail_ms": _NUMBER,
        "cold_start_budget_s": _NUMBER,
        "warmup_warn_s": _NUMBER,
        "wake_timeout_s": _NUMBER,
        "warm_samples": {"type": "integer", "minimum": 1, "maximum": 100},
        "timeout_s": _NUMBER,
        "require_https": {"type": "boolean"},
        "memory_mb": _NUMBER,
        "memory_warn_share": {"type": "number", "exclusiveMinimum": 0, "maximum": 1},
        "keepalive": {"type": "boolean"},
        "free_tier": {"type": "boolean"},
    },
}
_GATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["title", "checks"],
    "properties": {
        "title": {"type": "string", "minLength": 1},
        "checks": _NAMES,
        "needs": _NAMES,
        "blocking": {"type": "boolean"},
        "skip_reason": {"type": "string"},
        "manual": _NAMES,
        "owner": {"type": "string", "minLength": 1},
        "criteria": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["id", "criterion", "done"],
                "properties": {
                    "id": {"type": "string", "pattern": "^P[0-9]+(\\.[0-9]+)+$"},
                    "criterion": {"type": "string", "minLength": 1},
                    "done": {"type": "string", "minLength": 1},
                    "evidence": {"type": "string"},
                },
            },
        },
        "retry": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "attempts": {"type": "integer", "minimum": 1, "maximum": 20},
                "budget_s": _NUMBER,
                "delay_s": {"type": "number", "minimum": 0},
            },
        },
    },
}
SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "required": ["environments", "gates"],
    "properties": {
        "defaults": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "timeout_s": _NUMBER,
                "concurrency": {"type": "integer", "minimum": 1, "maximum": 64},
            },
        },
        "environments": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": _ENVIRONMENT,
        },
        "keepalive": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "interval": {"type": "string", "minLength": 1},
                "window": {"type": "string", "minLength": 1},
                "log_dir": {"type": "string", "minLength": 1},
                "status_file": {"type": "string", "minLength": 1},
                "heartbeat_url": {"type": "string", "pattern": "^https?://"},
                "cold_start_ms": _NUMBER,
                "slow_ms": _NUMBER,
                "timeout_s": _NUMBER,
            },
        },
        "repository": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "root": {"type": "string", "minLength": 1},
                "advisories": {"type": "string", "minLength": 1},
                "lock_files": {**_NAMES, "minItems": 1},
                "coverage_min": {"type": "number", "minimum": 0, "maximum": 100},
                "tests_min": {"type": "integer", "minimum": 0},
                "cov_packages": _NAMES,
                "render_schema": {"type": "string", "minLength": 1},
                "accepted_risks": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "required": ["id", "reason", "expires"],
                        "properties": {
                            "id": {"type": "string", "minLength": 1},
                            "reason": {"type": "string", "minLength": 1},
                            "expires": {
                                "type": "string",
                                "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                            },
                        },
                    },
                },
            },
        },
        "evidence": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "dir": {"type": "string", "minLength": 1},
                "phase_status": {"type": "string", "minLength": 1},
                "signoffs": {"type": "string", "minLength": 1},
            },
        },
        "notion": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "parent": {"type": "string"},
                "gates_database": {"type": "string"},
                "runs_database": {"type": "string"},
                "outbox": {"type": "string", "minLength": 1},
                "evidence_url": {"type": "string", "pattern": "^https?://"},
                "requests_per_second": {"type": "number", "exclusiveMinimum": 0, "maximum": 100},
                "timeout_s": _NUMBER,
                "phase_database": {"type": "string"},
                "phase": {"type": "string", "minLength": 1},
                "columns": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "minLength": 1},
                    },
                },
                "verify_wait_s": _NUMBER,
                "property_ids": {
                    "type": "object",
                    "additionalProperties": {
                        "type": "object",
                        "additionalProperties": {"type": "string", "minLength": 1},
                    },
                },
            },
        },
        "gates": {"type": "object", "minProperties": 1, "additionalProperties": _GATE},
    },
}


@dataclass(frozen=True)
class Retry:
    """How a gate may retry: up to `attempts` tries, `delay_s` apart, within `budget_s`."""

    attempts: int = 1
    budget_s: float = 0.0
    delay_s: float = 0.0


@dataclass(frozen=True)
class Criterion:
    """One line of the phase plan's table for a gate (e.g. P2.1.1)."""

    id: str
    criterion: str
    done: str
    """The definition of done."""
    evidence: str = ""
    """What proves it (a check's transcript, a sign-off...)."""


@dataclass(frozen=True)
class Gate:
    """A phase-plan gate: its checks, the gates it needs, and whether it blocks the verdict."""

    id: str
    title: str
    checks: tuple[str, ...]
    needs: tuple[str, ...] = ()
    blocking: bool = True
    retry: Retry = field(default_factory=Retry)
    skip_reason: str = ""
    manual: tuple[str, ...] = ()
    """Criteria a person signs off (`opsctl gate sign`)."""
    owner: str = ""
    """Who answers for the gate (shown in Notion)."""
    criteria: tuple[Criterion, ...] = ()
    """The phase plan's criteria for the gate (shown on its Notion page)."""


def gates_to_run(gates: Iterable[Gate], skipped: Collection[str]) -> list[Gate]:
    """The selected gates but those `--skip` leaves out: their checks are the ones that run,
    and what a run prepares (the bot, an HTTP client, scan workers) follows from them alone."""
    return [gate for gate in gates if gate.id not in skipped]


@dataclass(frozen=True)
class Environment:
    """Where a bot runs and what it should look like there."""

    name: str
    base_url: str
    public_url: str
    start_bot: bool
    token_env: str
    timeout_s: float
    expect: Expectations
    keepalive: bool = False
    """Kept awake by `opsctl warmup` when no --env is given."""
    free_tier: bool = False
    """Sleeps after 15 idle minutes: `opsctl warmup` refuses intervals of 15 minutes or more."""
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    """The variable holding the bot's TWILIO_ACCOUNT_SID: the webhook check's messages carry it
    as AccountSid, which the bot must find equal to its own (not a secret, unlike the token)."""


@dataclass(frozen=True)
class EvidencePaths:
    """Where bundles, PHASE-STATUS.md and the sign-off ledger live (relative to opsctl.toml)."""

    dir: Path = Path("evidence-out")
    phase_status: Path = Path("PHASE-STATUS.md")
    signoffs: Path = Path("signoffs.jsonl")


@dataclass(frozen=True)
class KeepAliveConfig:
    """`opsctl warmup`'s settings (durations in seconds, paths resolved)."""

    interval_s: float = 14 * 60.0
    window_s: float = 24 * 3600.0
    log_dir: Path = Path("keepalive-log")
    status_file: Path = Path("keepalive-log/status.json")
    heartbeat_url: str = ""
    cold_start_ms: float = 5000.0
    slow_ms: float = 2000.0
    timeout_s: float = 30.0


@dataclass(frozen=True)
class NotionConfig:
    """Where gate status goes in Notion (`opsctl notion init` fills in the ids)."""

    parent: str = ""
    gates_database: str = ""
    runs_database: str = ""
    phase_database: str = ""
    phase: str = "Fase 2"
    """The phase's name, as the plan calls it (the phase rows' titles)."""
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per database ('gates', 'runs', 'phase') that is the team's own: our column -> the team's
    column name; only these columns are written there, and none is added."""
    outbox: Path = Path(".opsctl/notion-outbox.json")
    """Changes not yet confirmed by Notion."""
    evidence_url: str = ""
    """Where bundles are published (a run's link is <evidence_url>/<bundle>/report.html)."""
    requests_per_second: float = 3.0
    timeout_s: float = 20.0
    verify_wait_s: float = 30.0
    """How long `verify --notion` waits for another process sending to Notion; then its
    changes stay queued for the next sync."""
    property_ids: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """Per database ('gates', 'runs'): our column -> its Notion property id, which a rename in
    Notion keeps (`opsctl notion init` records them)."""

    def database_id(self, table: str) -> str:
        """The id of the 'gates', 'runs' or 'phase' database ('' before `opsctl notion init`)."""
        databases = {"gates": self.gates_database, "runs": self.runs_database}
        return {**databases, "phase": self.phase_database}[table]


@dataclass(frozen=True)
class Config:
    """The whole of opsctl.toml, validated."""

    path: Path
    environments: Mapping[str, Environment]
    gates: Mapping[str, Gate]
    concurrency: int = 8
    evidence: EvidencePaths = field(default_factory=EvidencePaths)
    repo: RepoSettings | None = None
    keepalive: KeepAliveConfig = field(default_factory=KeepAliveConfig)
    notion: NotionConfig = field(default_factory=NotionConfig)

    def repository(self, advisories: Path | None = None) -> RepoSettings:
        """The repository settings, with --advisories / OPSCTL_ADVISORIES applied on top."""
        repo = self.repo or RepoSettings(root=self.path.parent)
        return replace(repo, advisories=advisories) if advisories is not None else repo

    def gate(self, gate_id: str) -> Gate:
        """The named gate, or a ConfigError listing the known ones."""
        if gate_id not in self.gates:
            raise ConfigError(f"no gate {gate_id!r}; fix: use one of: {', '.join(self.gates)}")
        return self.gates[gate_id]

    def environment(self, name: str) -> Environment:
        """The named environment, or a ConfigError listing the known ones."""
        if name not in self.environments:
            known = ", ".join(self.environments)
            raise ConfigError(
                f"{self.path}: no environment {name!r}; fix: use one of: {known}, "
                f"or add [environments.{name}]"
            )
        return self.environments[name]


def load(path: Path) -> Config:
    """opsctl.toml, checked against the registered checks."""
    from checks.registry import CHECKS

    return load_config(path, CHECKS)


def load_config(path: Path, check_ids: Iterable[str]) -> Config:
    """Read, validate and build the configuration; ConfigError on any problem."""
    raw = read_toml(path)
    _validate_schema(path, raw)
    defaults = raw.get("defaults", {})
    timeout_s = float(defaults.get("timeout_s", 10))
    environments = {
        name: _environment(path, name, data, timeout_s)
        for name, data in raw["environments"].items()
    }
    gates = {gate_id: _gate(gate_id, data) for gate_id, data in raw["gates"].items()}
    _validate_gates(path, gates, set(check_ids))
    paths = raw.get("evidence", {})
    base = path.parent
    evidence = EvidencePaths(
        dir=base / paths.get("dir", "evidence-out"),
        phase_status=base / paths.get("phase_status", "PHASE-STATUS.md"),
        signoffs=base / paths.get("signoffs", "signoffs.jsonl"),
    )
    repo = _repository(path, raw.get("repository", {}))
    keepalive = _keepalive(path, raw.get("keepalive", {}))
    notion = raw.get("notion", {})
    return Config(
        path,
        environments,
        gates,
        int(defaults.get("concurrency", 8)),
        evidence,
        repo,
        keepalive,
        NotionConfig(
            parent=str(notion.get("parent", "")),
            gates_database=str(notion.get("gates_database", "")),
            runs_database=str(notion.get("runs_database", "")),
            phase_database=str(notion.get("phase_database", "")),
            phase=str(notion.get("phase", "Fase 2")),
            columns=_notion_columns(path, notion),
            outbox=base / notion.get("outbox", ".opsctl/notion-outbox.json"),
            evidence_url=str(notion.get("evidence_url", "")).rstrip("/"),
            requests_per_second=float(notion.get("requests_per_second", 3.0)),
            timeout_s=float(notion.get("timeout_s", 20.0)),
            verify_wait_s=float(notion.get("verify_wait_s", 30.0)),
            property_ids={t: dict(ids) for t, ids in notion.get("property_ids", {}).items()},
        ),
    )


def _notion_columns(path: Path, notion: Mapping[str, Any]) -> dict[str, dict[str, str]]:
    """[notion.columns.<database>]: our column -> the team's; every name checked here."""
    mapped = {str(t): dict(names) for t, names in notion.get("columns", {}).items()}
    if not mapped:
        return mapped
    from opsctl.notion.schema import TABLES  # only to check a mapping: it has no cost otherwise

    for name, names in mapped.items():
        where = f"{path}: notion.columns.{name}"
        table = TABLES.get(name)
        if table is None:
            raise ConfigError(
                f"{where}: no database {name!r}; fix: use one of: {', '.join(TABLES)}"
            )
        ours = [c.name for c in table.columns]
        unknown = [n for n in names if n not in ours]
        if unknown:
            raise ConfigError(
                f"{where}: {unknown[0]!r} is not one of our columns; fix: use one of: "
                f"{', '.join(ours)}"
            )
        if table.key not in names:
            raise ConfigError(
                f"{where}: the key column {table.key!r} is not mapped; fix: add "
                f'"{table.key}" = "<the team\'s column holding it>"'
            )
        if not notion.get(f"{name}_database"):
            raise ConfigError(
                f"{where}: maps columns of the team's database but notion.{name}_database is "
                "not set; fix: set it to that database's id (from its URL)"
            )
    return mapped


def _keepalive(path: Path, data: dict[str, Any]) -> KeepAliveConfig:
    from opsctl.durations import IntervalError, parse_duration

    def seconds(key: str, default: float) -> float:
        try:
            return parse_duration(data[key]) if key in data else default
        except IntervalError as exc:
            raise ConfigError(f"{path}: keepalive.{key}: {exc}") from None

    base = path.parent
    log_dir = base / data.get("log_dir", "keepalive-log")
    return KeepAliveConfig(
        interval_s=seconds("interval", 14 * 60.0),
        window_s=seconds("window", 24 * 3600.0),
        log_dir=log_dir,
        status_file=base / data["status_file"]
        if "status_file" in data
        else log_dir / "status.json",
        heartbeat_url=str(data.get("heartbeat_url", "")),
        cold_start_ms=float(data.get("cold_start_ms", 5000)),
        slow_ms=float(data.get("slow_ms", 2000)),
        timeout_s=float(data.get("timeout_s", 30)),
    )


def _repository(path: Path, data: dict[str, Any]) -> RepoSettings:
    base = path.parent

    def optional(key: str) -> Path | None:
        return (base / data[key]) if key in data else None

    risks = []
    for risk in data.get("accepted_risks", []):
        try:
            expires = date.fromisoformat(risk["expires"])
        except ValueError:
            raise ConfigError(
                f"{path}: repository.accepted_risks: {risk['expires']!r} is not a date; "
                "fix: write YYYY-MM-DD"
            ) from None
        risks.append(AcceptedRisk(risk["id"], risk["reason"], expires))
    return RepoSettings(
        root=(base / data.get("root", ".")).resolve(),
        advisories=optional("advisories"),
        lock_files=tuple(data.get("lock_files", RepoSettings.lock_files)),
        coverage_min=float(data.get("coverage_min", 80)),
        tests_min=int(data.get("tests_min", RepoSettings.tests_min)),
        cov_packages=tuple(data.get("cov_packages", ())),
        render_schema=optional("render_schema"),
        accepted_risks=tuple(risks),
    )


def _validate_schema(path: Path, raw: dict[str, Any]) -> None:
    """ConfigError naming the first key that breaks SCHEMA, and its fix."""
    # Importing jsonschema is two thirds of loading the configuration (issue 17: `opsctl gates`
    # took 5.7x `import click`). The same content against the same schema gives the same
    # answer, so a content that passed is remembered by its digest, in the result cache.
    import hashlib
    import json
    import os

    from opsctl.result_cache import cache_for

    digest = hashlib.sha256(
        json.dumps([SCHEMA, raw], sort_keys=True, default=str).encode()
    ).hexdigest()
    cache = cache_for(path, fresh=False, environ=os.environ)
    if cache.get(SCHEMA_CHECKED, digest) is not None:
        return
    _validate_with_jsonschema(path, raw)
    cache.put(SCHEMA_CHECKED, digest, {"valid": True})  # unwritable: validated again next time


SCHEMA_CHECKED = "config-schema"
"""The result cache's folder of configuration contents that passed SCHEMA."""


def _validate_with_jsonschema(path: Path, raw: dict[str, Any]) -> None:
    import jsonschema  # lazily: opsctl --version must stay fast

    validator = jsonschema.Draft202012Validator(SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(raw))
    if error is None:
        return
    key = ".".join(str(p) for p in error.absolute_path) or "(top level)"
    if error.validator == "additionalProperties":
        known = ", ".join(sorted(error.schema.get("properties", {}))) or "none"
        unknown = sorted(set(error.instance) - set(error.schema.get("properties", {})))
        where = f"{key}.{unknown[0]}" if error.absolute_path else unknown[0]
        raise ConfigError(f"{path}: {where}: unknown key; fix: remove it or use one of: {known}")
    if error.validator == "required":
        raise ConfigError(f"{path}: {key}: {error.message}; fix: add it")
    fixes = {
        "type": f"give a value of type {error.validator_value}",
        "pattern": f"match {error.validator_value}",
        "exclusiveMinimum": "give a number above 0",
        "minimum": f"give a number of at least {error.validator_value}",
        "maximum": f"give a number of at most {error.validator_value}",
        "minItems": "list at least one value",
        "minProperties": "define at least one",
        "minLength": "give a non-empty string",
    }
    fix = fixes.get(str(error.validator), "see the comments in opsctl.toml")
    raise ConfigError(f"{path}: {key}: {error.message}; fix: {fix}")


def _is_loopback(url: str) -> bool:
    return (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _environment(path: Path, name: str, data: dict[str, Any], timeout_s: float) -> Environment:
    start_bot = bool(data.get("start_bot", False))
    base_url = str(data.get("base_url", "")).rstrip("/")
    if not base_url and not start_bot:
        raise ConfigError(
            f'{path}: environments.{name}: no base_url; fix: add base_url = "https://..." '
            "or start_bot = true"
        )
    local = start_bot or _is_loopback(base_url)
    expect = Expectations(
        health_status=tuple(data.get("health_status", ("ok", "healthy"))),
        components=dict(data.get("components", {})),
        audio=tuple(data.get("audio", ())),
        audio_questions=dict(data.get("audio_questions", AUDIO_QUESTIONS)),
        audio_host=str(data.get("audio_host", "")).lower(),
        latency_warn_ms=float(data.get("latency_warn_ms", 500)),
        latency_fail_ms=float(data.get("latency_fail_ms", 2000)),
        cold_start_budget_s=float(data.get("cold_start_budget_s", 60)),
        warmup_warn_s=float(data.get("warmup_warn_s", Expectations.warmup_warn_s)),
        wake_timeout_s=float(data.get("wake_timeout_s", 90)),
        warm_samples=int(data.get("warm_samples", 5)),
        require_https=bool(data.get("require_https", not local)),
        memory_mb=float(data.get("memory_mb", 512)),
        memory_warn_share=float(data.get("memory_warn_share", 0.8)),
    )
    if expect.latency_warn_ms > expect.latency_fail_ms:
        raise ConfigError(
            f"{path}: environments.{name}.latency_warn_ms is above latency_fail_ms; "
            "fix: the warning limit must be the lower one"
        )
    return Environment(
        name=name,
        base_url=base_url,
        public_url=str(data.get("public_url", base_url)).rstrip("/"),
        start_bot=start_bot,
        token_env=str(data.get("token_env", "TWILIO_AUTH_TOKEN")),
        account_sid_env=str(data.get("account_sid_env", "TWILIO_ACCOUNT_SID")),
        timeout_s=float(data.get("timeout_s", timeout_s)),
        expect=expect,
        keepalive=bool(data.get("keepalive", False)),
        free_tier=bool(data.get("free_tier", False)),
    )


def _gate(gate_id: str, data: dict[str, Any]) -> Gate:
    retry = data.get("retry", {})
    return Gate(
        id=gate_id,
        title=str(data["title"]),
        checks=tuple(data["checks"]),
        needs=tuple(data.get("needs", ())),
        blocking=bool(data.get("blocking", True)),
        retry=Retry(
            attempts=int(retry.get("attempts", 1)),
            budget_s=float(retry.get("budget_s", 0)),
            delay_s=float(retry.get("delay_s", 0)),
        ),
        skip_reason=str(data.get("skip_reason", "")),
        manual=tuple(data.get("manual", ())),
        owner=str(data.get("owner", "")),
        criteria=tuple(Criterion(**item) for item in data.get("criteria", ())),
    )


def _validate_gates(path: Path, gates: Mapping[str, Gate], check_ids: set[str]) -> None:
    for gate in gates.values():
        for check in gate.checks:
            if check not in check_ids:
                raise ConfigError(
                    f"{path}: gates.{gate.id}.checks: unknown check {check!r}; "
                    f"fix: use one of: {', '.join(sorted(check_ids))}"
                )
        for criterion in gate.criteria:
            if not criterion.id.startswith(f"{gate.id}."):
                raise ConfigError(
                    f"{path}: gates.{gate.id}.criteria: {criterion.id!r} is not a criterion of "
                    f"{gate.id}; fix: number it {gate.id}.N"
                )
        for need in gate.needs:
            if need not in gates:
                raise ConfigError(
                    f"{path}: gates.{gate.id}.needs: unknown gate {need!r}; "
                    f"fix: use one of: {', '.join(gates)}"
                )
    cycle = _find_cycle(gates)
    if cycle:
        raise ConfigError(
            f"{path}: gates.{cycle[0]}.needs: cycle {' -> '.join(cycle)}; "
            "fix: remove one of these needs"
        )


def _find_cycle(gates: Mapping[str, Gate]) -> list[str]:
    """A list of gate ids forming a cycle in `needs` (first id repeated at the end), or []."""
    state: dict[str, str] = {}

    def visit(gate_id: str, trail: list[str]) -> list[str]:
        if state.get(gate_id) == "done":
            return []
        if state.get(gate_id) == "open":
            return [*trail[trail.index(gate_id) :], gate_id]
        state[gate_id] = "open"
        for need in gates[gate_id].needs:
            found = visit(need, [*trail, gate_id])
            if found:
                return found
        state[gate_id] = "done"
        return []

    for gate_id in gates:
        found = visit(gate_id, [])
        if found:
            return found
    return []
