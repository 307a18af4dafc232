"""What every check is and returns: Status, CheckResult, CheckContext and the Check base class."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

# Re-exported: the checks import what they return from this one module.
from checks.statuses import SEVERITY as SEVERITY
from checks.statuses import Status as Status
from checks.statuses import worst as worst

if TYPE_CHECKING:  # httpx is imported only when checks run (opsctl --version stays fast)
    import httpx

    from checks.target import Waker


@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check: never changed after creation."""

    check_id: str
    title: str
    status: Status
    reason: str
    """One line: what was seen (for PASS, how much was looked at)."""
    hint: str = ""
    """For WARN, FAIL and ERROR: what to do about it."""
    duration_s: float = 0.0
    details: Mapping[str, Any] = field(default_factory=dict)
    """JSON-serialisable measurements (latencies, files checked, cases)."""
    transient: tuple[str, ...] = ()
    """What its requests met that another attempt may not (a timeout, a reset, a 502): the
    runner adds what the transport saw, and retries a gate only for a failing check with some."""
    reports: tuple[str, ...] = ()
    """The tool reports it wrote (names under the bundle's reports/): the runner records them,
    so its row links them."""


# One question per language of the shipped knowledge base (bot/data/knowledge.json) whose
# cached answer has an MP3; tests/checks/test_twilio_media.py holds them to that file.
AUDIO_QUESTIONS = {
    "es": "¿Cómo pido la tarjeta sanitaria?",
    "fr": "Comment obtenir la carte sanitaire ?",
}


@dataclass(frozen=True)
class Expectations:
    """What an environment's bot should look like."""

    health_status: tuple[str, ...] = ("ok", "healthy")
    components: Mapping[str, Any] = field(default_factory=dict)
    audio: tuple[str, ...] = ()
    """Audio file names; empty means: discover them from /status/warmup."""
    audio_questions: Mapping[str, str] = field(default_factory=lambda: dict(AUDIO_QUESTIONS))
    """Language -> a message the webhook check sends, whose cached answer carries an MP3."""
    audio_host: str = ""
    """Another host the bot's <Media> URLs may be on (AUDIO_BASE_URL's CDN); '' means only the
    deploy's own host."""
    latency_warn_ms: float = 500.0
    latency_fail_ms: float = 2000.0
    cold_start_budget_s: float = 60.0
    warmup_warn_s: float = 60.0
    """A start-up warm-up (/status/warmup's duration_sec) slower than this is a WARN."""
    wake_timeout_s: float = 90.0
    warm_samples: int = 5
    require_https: bool = True
    memory_mb: float = 512.0
    """The plan's memory (Render's free plan: 512 MB); the bot's resident memory is judged."""
    memory_warn_share: float = 0.8


@dataclass(frozen=True)
class AcceptedRisk:
    """An advisory the team accepted, with why and until when (then it fails again)."""

    id: str
    reason: str
    expires: date


@dataclass(frozen=True)
class RepoSettings:
    """What the repository checks look at and judge against."""

    root: Path
    advisories: Path | None = None
    """An offline folder of OSV advisories; None: pip-audit's online service."""
    lock_files: tuple[str, ...] = ("requirements/bot.txt", "requirements/toolkit.txt")
    coverage_min: float = 80.0
    tests_min: int = 93
    """Fewer tests run than this fails the tests gate (the phase plan wants 93 or more)."""
    cov_packages: tuple[str, ...] = ()
    render_schema: Path | None = None
    accepted_risks: tuple[AcceptedRisk, ...] = ()
    today: date = field(default_factory=date.today)


@dataclass(frozen=True)
class KeepAliveSettings:
    """Where the keep-alive's ping log is and how to judge it."""

    log_dir: Path
    window_s: float = 24 * 3600.0
    slow_ms: float = 2000.0
    interval_s: float = 14 * 60.0
    """`opsctl warmup`'s cadence: the log must start at most this long after the window does."""


@dataclass(frozen=True)
class NotionSettings:
    """Where the Notion sync writes, for the check that looks at it (read-only)."""

    gates_database: str
    runs_database: str
    outbox: Path
    token: str = field(default="", repr=False)
    base_url: str = ""
    timeout_s: float = 20.0
    requests_per_second: float = 3.0
    phase_database: str = ""
    phase: str = "Fase 2"
    columns: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """The team's own databases: our column -> theirs (opsctl.toml [notion.columns])."""
    property_ids: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    newest_runs: Mapping[str, str] = field(default_factory=dict)
    """Environment -> its newest completed evidence bundle: the run row Notion should hold."""


class ResultCache(Protocol):
    """Earlier results of an expensive check, by the digest of everything it read."""

    location: Path
    """Where entries are kept (a check leaves it out of the inputs it digests)."""

    def get(self, check_id: str, digest: str) -> Mapping[str, Any] | None:
        """The entry stored for exactly these inputs (with its `recorded_at`), or None."""

    def put(self, check_id: str, digest: str, entry: Mapping[str, Any]) -> None:
        """Keep a JSON-serialisable entry for these inputs."""


@dataclass(frozen=True)
class CheckContext:
    """The world a check sees: where the bot is, what to expect, the HTTP client and secrets."""

    env_name: str
    base_url: str
    """Where requests are sent."""
    public_url: str
    """The URL Twilio would call (signatures are computed for it); often base_url."""
    expect: Expectations
    client: httpx.AsyncClient
    secrets: Mapping[str, str]
    token_env: str = "TWILIO_AUTH_TOKEN"  # noqa: S105 - the variable's name
    timeout_s: float = 10.0
    clock: Callable[[], float] = time.perf_counter
    derived_secrets: set[str] = field(default_factory=set)
    """Values computed from secrets (signatures): checks add them, evidence redacts them."""
    known_secrets: frozenset[tuple[str, str]] = frozenset()
    """(variable, value) of every secret the run knows (the runner adds the target's token): no
    result shows their values, and a check whose request the bot answers with one FAILs."""
    repo: RepoSettings | None = None
    reports: dict[str, str] = field(default_factory=dict)
    """Tool reports kept as evidence (name -> text): checks add them."""
    keepalive: KeepAliveSettings | None = None
    notion: NotionSettings | None = None
    cache: ResultCache | None = None
    """None: nothing is reused or kept (`--fresh` gives a cache that only keeps)."""
    show_output: Callable[[str], object] | None = None
    """`check --show-output`: where a check shows the output of the tool it runs, as it comes
    (only `tests` has one to show: pytest's); None: the output is kept for the evidence only."""
    waker: Waker = field(default_factory=lambda: _new_waker())
    """The run's one wake of the target: the runner awaits it before a check that talks to the
    bot, so a sleeping instance is slow, not red; /health reports its time as the cold start."""
    account_sid_env: str = "TWILIO_ACCOUNT_SID"
    account_sid: str = ""
    """The bot's TWILIO_ACCOUNT_SID, read from account_sid_env ('' when unset): the AccountSid
    of the webhook check's messages. Not a secret: the bot refuses another account's forms."""

    def repository(self) -> RepoSettings:
        """The repository settings; a CheckError when there are none or the root is not a
        folder (every repository check would otherwise judge nothing)."""
        if self.repo is None:
            raise CheckError("no repository configured", "add a [repository] section")
        if not self.repo.root.is_dir():
            raise CheckError(
                f"no repository at {self.repo.root}",
                "fix [repository] root in opsctl.toml (relative to the file)",
            )
        return self.repo

    def url(self, path: str) -> str:
        """An absolute URL on the bot under test."""
        return self.base_url.rstrip("/") + path


class CheckError(Exception):
    """A check could not run; becomes an ERROR result with this reason and hint."""

    def __init__(self, reason: str, hint: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.hint = hint


class Check(ABC):
    """One verification; `run` never prints, exits or writes files."""

    id: str
    title: str
    done_when: str = ""
    """The definition of done, as the phase plan states it."""
    needs_target: bool = True
    """False for checks of the repository: no bot is started or contacted for them."""
    statuses: frozenset[Status] = frozenset({Status.PASS, Status.FAIL, Status.ERROR})
    """Every status this check can end in, the runner's ERROR (an exception, a timeout)
    included; a check that also WARNs or SKIPs adds them. Each one is produced by a planted
    fault in tests/checks/test_every_status.py."""

    @abstractmethod
    async def run(self, ctx: CheckContext) -> CheckResult:
        """Look at the target and say what was found."""

    def budget_s(self, ctx: CheckContext) -> float:
        """How long the whole check may take before it is an ERROR."""
        return 3 * ctx.timeout_s

    def result(
        self,
        status: Status,
        reason: str,
        hint: str = "",
        details: Mapping[str, Any] | None = None,
    ) -> CheckResult:
        """A result of this check (the runner fills in the duration)."""
        return CheckResult(self.id, self.title, status, reason, hint, 0.0, dict(details or {}))


def _new_waker() -> Waker:
    # checks.target brings asyncio, ssl and socket: loading opsctl.toml (whose settings
    # are defined here) should not pay for them (issue 17).
    from checks.target import Waker

    return Waker()
