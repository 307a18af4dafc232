"""Settings: every variable parsed, bad values named in one line, gunicorn refusing to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.settings import VARIABLES, SettingsError, load_settings
from opsctl.devserver import local_command
from tests.conftest import REPO_ROOT


def test_defaults_are_safe() -> None:
    settings = load_settings({})
    assert settings.flask_env == "production"
    assert settings.twilio_configured is False
    assert settings.llm_enabled is False
    assert settings.guardrails_on is True
    assert settings.port == 10000
    assert settings.dev_allow_unsigned_webhook is False


def test_values_are_parsed() -> None:
    settings = load_settings(
        {
            "LLM_TIMEOUT": "2.5",
            "LLM_LIVE": "TRUE",
            "GEMINI_API_KEY": "k",
            "LOG_LEVEL": "debug",
            "PUBLIC_BASE_URL": "https://clara.onrender.com/",
            "PORT": "8080",
        }
    )
    assert settings.llm_timeout == 2.5
    assert settings.llm_enabled is True
    assert settings.log_level == "DEBUG"
    assert settings.public_base_url == "https://clara.onrender.com"
    assert settings.port == 8080


@pytest.mark.parametrize(
    ("env", "llm_enabled"),
    [
        # The runbook's demo: the cache first, the live LLM as the fallback on a miss.
        ({"DEMO_MODE": "true", "LLM_LIVE": "true", "GEMINI_API_KEY": "k"}, True),
        # DEMO_MODE=false answers the same way: the flag is only reported.
        ({"DEMO_MODE": "false", "LLM_LIVE": "true", "GEMINI_API_KEY": "k"}, True),
        # Never the LLM without LLM_LIVE and a key, whatever DEMO_MODE says.
        ({"DEMO_MODE": "true", "LLM_LIVE": "false", "GEMINI_API_KEY": "k"}, False),
        ({"DEMO_MODE": "true", "LLM_LIVE": "true", "GEMINI_API_KEY": ""}, False),
    ],
)
def test_demo_mode_keeps_the_llm_as_the_fallback(env: dict[str, str], llm_enabled: bool) -> None:
    settings = load_settings(env)
    assert settings.llm_enabled is llm_enabled
    assert settings.demo_mode is (env["DEMO_MODE"] == "true")


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LLM_TIMEOUT", "abc", "not a number"),
        ("LLM_TIMEOUT", "-1", "positive"),
        ("WHISPER_TIMEOUT", "nan", "not a number"),
        ("WHISPER_TIMEOUT", "inf", "not a number"),
        ("LLM_TIMEOUT", "0", "positive"),
        ("LLM_TIMEOUT", "٣", "not a number"),  # an Arabic-Indic 3: float() reads it as 3.0
        ("LLM_TIMEOUT", "1_0", "not a number"),
        ("DEMO_MODE", "maybe", "not a boolean"),
        ("PORT", "70000", "not a TCP port"),
        ("PORT", "abc", "not a TCP port"),
        ("PORT", "²", "not a TCP port"),  # isdigit() says yes, int() raises
        ("PORT", "٣", "not a TCP port"),  # isdigit() says yes, int() reads 3
        ("PORT", "-1", "not a TCP port"),
        ("LOG_LEVEL", "LOUD", "not one of"),
        ("FLASK_ENV", "staging", "not one of"),
        ("PUBLIC_BASE_URL", "clara.onrender.com", "not an http(s) URL"),
        ("AUDIO_BASE_URL", "ftp://x/y", "not an http(s) URL"),
    ],
)
def test_a_bad_value_is_named(name: str, value: str, expected: str) -> None:
    with pytest.raises(SettingsError) as raised:
        load_settings({name: value})
    message = str(raised.value)
    assert message.startswith(f"{name}={value!r}")
    assert expected in message
    assert "\n" not in message


def test_unsigned_webhook_flag_is_refused_in_production() -> None:
    with pytest.raises(SettingsError, match="DEV_ALLOW_UNSIGNED_WEBHOOK"):
        load_settings({"DEV_ALLOW_UNSIGNED_WEBHOOK": "true"})
    settings = load_settings({"DEV_ALLOW_UNSIGNED_WEBHOOK": "true", "FLASK_ENV": "development"})
    assert settings.dev_allow_unsigned_webhook is True


def test_secret_values_lists_only_secrets() -> None:
    settings = load_settings(
        {
            "TWILIO_AUTH_TOKEN": "tok",
            "GEMINI_API_KEY": "gem",  # pragma: allowlist secret
            "TWILIO_SANDBOX_FROM": "whatsapp:+1",
        }
    )
    assert set(settings.secret_values) == {"tok", "gem"}
    assert {n for n, v in VARIABLES.items() if v.secret} == {
        "TWILIO_ACCOUNT_SID",
        "TWILIO_AUTH_TOKEN",
        "TWILIO_SHARED_KEY_SECRET",
        "GEMINI_API_KEY",
        "REDIS_URL",  # it may carry a password (redacted on its own too: tests/bot/test_store.py)
    }


def _run_image_command(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The Dockerfile's command, run as the image runs it, with these variables."""
    env = {**os.environ, **env}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return subprocess.run(
        ["/bin/sh", "-c", local_command()],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_gunicorn_refuses_a_bad_setting_with_one_line() -> None:
    """The Dockerfile's command, run as the image runs it, exits 2 naming the variable."""
    done = _run_image_command({"LLM_TIMEOUT": "abc", "PORT": "0"})
    assert done.returncode == 2
    output = done.stdout + done.stderr
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if "LLM_TIMEOUT" in line]
    assert errors == [
        "clara: cannot start: LLM_TIMEOUT='abc' is not a number: "
        "expected seconds, e.g. LLM_TIMEOUT=8"
    ]


@pytest.mark.parametrize("port", ["٣", "²", "abc"])
def test_gunicorn_refuses_a_bad_port_naming_it(port: str) -> None:
    """PORT=٣ binds port 3 as far as gunicorn goes; PORT=abc and PORT=² were gunicorn's own
    "is not a valid port number", naming no variable. gunicorn.conf.py refuses them as it is
    read, before gunicorn parses the CMD's --bind and before anything listens."""
    done = _run_image_command({"PORT": port})
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output
    assert "Listening at" not in output
    assert (
        f"clara: cannot start: PORT='{port}' is not a TCP port: expected 0-65535, e.g. 10000"
        in (output.splitlines())
    )
