"""The bot's settings: every environment variable it reads, parsed once and validated."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FLASK_ENVS = ("production", "development")
DEDUPE_MODES = ("open", "closed")
# ASCII digits only: str.isdigit(), int() and float() also take '²' (isdigit, then int() raises)
# and '٣' (an Arabic-Indic 3, read as port 3), so numbers are matched before they are converted.
_WHOLE = re.compile(r"[0-9]+")
_DECIMAL = re.compile(r"[+-]?[0-9]+(?:\.[0-9]+)?")


class SettingsError(ValueError):
    """An environment variable holds a value the bot cannot use; the message names it."""


def _bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean: use true or false")


def _positive_float(name: str, raw: str) -> float:
    # No 'nan', 'inf', '1e3' or '1_0' either: a number of seconds, as a person writes it.
    if not _DECIMAL.fullmatch(raw.strip()):
        raise SettingsError(f"{name}={raw!r} is not a number: expected seconds, e.g. {name}=8")
    value = float(raw)
    if not value > 0:
        raise SettingsError(f"{name}={raw!r} must be a positive number of seconds")
    return value


def _port(name: str, raw: str) -> int:
    # 0 asks the OS for a free port (the tests do); Render always sets a real one.
    if not _WHOLE.fullmatch(raw.strip()) or not 0 <= int(raw) < 65536:
        raise SettingsError(f"{name}={raw!r} is not a TCP port: expected 0-65535, e.g. 10000")
    return int(raw)


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SettingsError(
            f"{name}={raw!r} is not an http(s) URL: expected e.g. https://clara.onrender.com"
        )
    return value


def _choice(choices: tuple[str, ...], upper: bool) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().upper() if upper else raw.strip().lower()
        if value not in choices:
            raise SettingsError(f"{name}={raw!r} is not one of: {', '.join(choices)}")
        return value

    return parse


def _text(name: str, raw: str) -> str:
    return raw.strip()


def _whole(name: str, raw: str) -> int:
    if not _WHOLE.fullmatch(raw.strip()):
        raise SettingsError(f"{name}={raw!r} is not a whole number: e.g. {name}=10 (0: off)")
    return int(raw)


REDIS_SCHEMES = ("redis", "rediss", "unix")


def _redis_url(name: str, raw: str) -> str:
    # The value may carry a password: the message names the variable, never the value.
    value = raw.strip()
    if value and (urlsplit(value).scheme not in REDIS_SCHEMES or "://" not in value):
        raise SettingsError(
            f"{name} is not a Redis URL: expected redis://[:password@]host:port[/db] "
            "(rediss:// for TLS), e.g. Render Key Value's internal URL"
        )
    return value


@dataclass(frozen=True)
class Variable:
    """One environment variable: its field, parser, default and whether it is a secret."""

    field: str
    parse: Callable[[str, str], Any]
    default: str
    secret: bool = False


# The one list of variables the bot reads. render.yaml and .env.example are
# checked against it by tests, so adding a variable here is the whole change.
VARIABLES: dict[str, Variable] = {
    "TWILIO_ACCOUNT_SID": Variable("twilio_account_sid", _text, "", secret=True),
    "TWILIO_AUTH_TOKEN": Variable("twilio_auth_token", _text, "", secret=True),
    # The secret of a Twilio SharedKey, for webhooks a Webhook Rule has Twilio sign with it
    # (they carry X-Twilio-Webhooks-Signature-Settings; the others stay signed with the token):
    # https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys
    "TWILIO_SHARED_KEY_SECRET": Variable("twilio_shared_key_secret", _text, "", secret=True),
    "TWILIO_SANDBOX_FROM": Variable("twilio_sandbox_from", _text, ""),
    "GEMINI_API_KEY": Variable("gemini_api_key", _text, "", secret=True),
    # DEMO_MODE=true is the runbook's demo setting: the cached answers first, the live LLM
    # as the fallback on a miss (when LLM_LIVE and GEMINI_API_KEY allow it). That is the only
    # answer path this bot has, so DEMO_MODE=false answers the same way: the flag is only
    # reported (/health's components.demo_mode) for `opsctl verify` to compare with the runbook.
    "DEMO_MODE": Variable("demo_mode", _bool, "false"),
    "LLM_LIVE": Variable("llm_live", _bool, "false"),
    "WHISPER_ON": Variable("whisper_on", _bool, "false"),
    "LLM_TIMEOUT": Variable("llm_timeout", _positive_float, "8"),
    "WHISPER_TIMEOUT": Variable("whisper_timeout", _positive_float, "12"),
    "FLASK_ENV": Variable("flask_env", _choice(FLASK_ENVS, upper=False), "production"),
    "LOG_LEVEL": Variable("log_level", _choice(LOG_LEVELS, upper=True), "INFO"),
    "AUDIO_BASE_URL": Variable("audio_base_url", _url, ""),
    "OBSERVABILITY_ON": Variable("observability_on", _bool, "true"),
    "STRUCTURED_OUTPUT_ON": Variable("structured_output_on", _bool, "false"),
    "GUARDRAILS_ON": Variable("guardrails_on", _bool, "true"),
    "RAG_ENABLED": Variable("rag_enabled", _bool, "false"),
    "PORT": Variable("port", _port, "10000"),
    "PUBLIC_BASE_URL": Variable("public_base_url", _url, ""),
    "WARMUP_TIMEOUT_SEC": Variable("warmup_timeout_sec", _positive_float, "20"),
    "DEV_ALLOW_UNSIGNED_WEBHOOK": Variable("dev_allow_unsigned_webhook", _bool, "false"),
    # Unset: the in-process store (one instance). Set: MessageSid dedupe and the rate limit
    # shared by every instance through Redis (bot/store.py); a password in it is a secret.
    "REDIS_URL": Variable("redis_url", _redis_url, "", secret=True),
    # What a MessageSid gets when REDIS_URL is set but Redis does not answer: 'open' answers
    # (deduped within this process only, so maybe twice across instances), 'closed' answers
    # 503 with Retry-After (no answer twice, none at all unless Twilio retries).
    "DEDUPE_ON_STORE_DOWN": Variable(
        "dedupe_on_store_down", _choice(DEDUPE_MODES, upper=False), "open"
    ),
    # Messages one sender may have answered per minute (fixed one-minute windows); 0: no limit.
    "RATE_LIMIT_PER_MINUTE": Variable("rate_limit_per_minute", _whole, "0"),
    # Set by Render itself; never declared in render.yaml.
    "RENDER_EXTERNAL_URL": Variable("render_external_url", _url, ""),
    "RENDER_GIT_COMMIT": Variable("render_git_commit", _text, ""),
}

RENDER_PROVIDED = frozenset({"RENDER_EXTERNAL_URL", "RENDER_GIT_COMMIT"})


@dataclass(frozen=True)
class Settings:
    """The bot's parsed configuration; built by `load_settings`, never changed after."""

    twilio_account_sid: str
    twilio_auth_token: str
    twilio_shared_key_secret: str
    twilio_sandbox_from: str
    gemini_api_key: str
    demo_mode: bool
    llm_live: bool
    whisper_on: bool
    llm_timeout: float
    whisper_timeout: float
    flask_env: str
    log_level: str
    audio_base_url: str
    observability_on: bool
    structured_output_on: bool
    guardrails_on: bool
    rag_enabled: bool
    port: int
    public_base_url: str
    warmup_timeout_sec: float
    dev_allow_unsigned_webhook: bool
    redis_url: str
    dedupe_on_store_down: str
    rate_limit_per_minute: int
    render_external_url: str
    render_git_commit: str

    @property
    def twilio_configured(self) -> bool:
        """True when the webhook can verify Twilio's signatures."""
        return bool(self.twilio_account_sid and self.twilio_auth_token)

    @property
    def llm_enabled(self) -> bool:
        """The live LLM answers cache misses only when switched on and keyed (never otherwise)."""
        return self.llm_live and bool(self.gemini_api_key)

    @property
    def secret_values(self) -> tuple[str, ...]:
        """The secret values set, for log redaction (and REDIS_URL's password on its own)."""
        values = tuple(
            v for name, var in VARIABLES.items() if var.secret and (v := getattr(self, var.field))
        )
        password = urlsplit(self.redis_url).password if self.redis_url else None
        return (*values, password) if password else values


def load_settings(environ: Mapping[str, str]) -> Settings:
    """Parse the environment; raise SettingsError naming the first bad variable."""
    values = {
        var.field: var.parse(name, environ.get(name, var.default))
        for name, var in VARIABLES.items()
    }
    settings = Settings(**values)
    if settings.dev_allow_unsigned_webhook and settings.flask_env != "development":
        raise SettingsError(
            "DEV_ALLOW_UNSIGNED_WEBHOOK=true is refused outside development: "
            "unset it, or set FLASK_ENV=development on a machine of your own"
        )
    return settings
