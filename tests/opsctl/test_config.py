"""A broken opsctl.toml: exit 2 with one line naming the file, the key and the fix."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from checks.registry import CHECKS
from opsctl.cli import main
from opsctl.config import load_config
from tests.conftest import REPO_ROOT

GOOD = """
[environments.render]
base_url = "https://clara.onrender.com"

[environments.render.components]
cache_entries = 8

[gates."P2.1"]
title = "Twilio pipeline"
checks = ["webhook"]

[gates."P2.6"]
title = "Security"
checks = []
needs = ["P2.1"]
"""


def test_the_repository_config_loads() -> None:
    config = load_config(REPO_ROOT / "opsctl.toml", CHECKS)
    assert list(config.gates) == ["P2.1", "P2.2", "P2.3", "P2.4", "P2.5", "P2.6"]
    assert config.gates["P2.6"].needs == ("P2.1", "P2.2")
    assert config.environments["local"].start_bot is True
    render = config.environments["render"]
    assert render.expect.components == {
        "cache_entries": 8,
        "gemini_key_set": True,
        "twilio_configured": True,
        "whisper_enabled": False,
        "demo_mode": True,
        "llm_live": True,
    }
    assert render.expect.require_https is True
    # The runbook's values: warm p95 under 2 s, a warm-up over 60 s is a WARN, 93+ tests.
    assert render.expect.latency_fail_ms == 2000
    assert render.expect.warmup_warn_s == 60
    assert config.repo is not None and config.repo.tests_min == 93
    assert config.environments["local"].expect.require_https is False


def test_the_account_sid_variable_is_named_per_environment(tmp_path: Path) -> None:
    """Read like token_env: the variable's name lives in opsctl.toml, its value in the env."""
    path = tmp_path / "opsctl.toml"
    path.write_text(
        GOOD.replace(
            "[environments.render]",
            "[environments.staging]\n"
            'base_url = "https://s.onrender.com"\naccount_sid_env = "STAGING_ACCOUNT_SID"\n\n'
            "[environments.render]",
            1,
        )
    )
    config = load_config(path, CHECKS)
    assert config.environments["render"].account_sid_env == "TWILIO_ACCOUNT_SID"
    assert config.environments["staging"].account_sid_env == "STAGING_ACCOUNT_SID"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("[environments.render]", "[environments.render]\nbase_ur = 'x'"),
            "environments.render.base_ur: unknown key; fix: remove it or use one of: "
            "account_sid_env, audio, audio_host, audio_questions, base_url",
        ),
        (
            ("cache_entries = 8", "cache_entries = 8.5"),
            "environments.render.components.cache_entries: 8.5 is not of type 'boolean', "
            "'integer', 'string'; fix: give a value of type",
        ),
        (
            ('base_url = "https://clara.onrender.com"', "base_url = 'clara.onrender.com'"),
            "environments.render.base_url: 'clara.onrender.com' does not match",
        ),
        (
            ('checks = ["webhook"]', 'checks = ["webhok"]'),
            "gates.P2.1.checks: unknown check 'webhok'; fix: use one of: audio, deploy-files, deps",
        ),
        (
            ('needs = ["P2.1"]', 'needs = ["P2.9"]'),
            "gates.P2.6.needs: unknown gate 'P2.9'; fix: use one of: P2.1, P2.6",
        ),
        (
            ('checks = ["webhook"]', 'checks = ["webhook"]\nneeds = ["P2.6"]'),
            "gates.P2.1.needs: cycle P2.1 -> P2.6 -> P2.1; fix: remove one of these needs",
        ),
        (
            ('title = "Security"', "title = 7"),
            "gates.P2.6.title: 7 is not of type 'string'; fix: give a value of type string",
        ),
        (('[gates."P2.1"]', '[gates."P2.1"'), "fix: correct the TOML syntax"),
        (
            ("[environments.render]", "[environments.render]\naccount_sid_env = 'twilio.sid'"),
            "environments.render.account_sid_env: 'twilio.sid' does not match",
        ),
        (
            ("[environments.render]", "[environment.render]"),
            "environment: unknown key; fix: remove it or use one of: defaults, environments, "
            "evidence, gates",
        ),
    ],
)
def test_broken_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    path = tmp_path / "opsctl.toml"
    assert change[0] in GOOD
    path.write_text(GOOD.replace(change[0], change[1], 1))
    code = main(["verify", "--env", "render", "--config", str(path)])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith(f"opsctl: {path}: ")
    assert message in err
    assert "Traceback" not in err


def test_missing_config_and_unknown_env(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gates", "--config", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err == (
        f"opsctl: {tmp_path / 'nope.toml'}: not found; fix: correct the path given to --config "
        "or OPSCTL_CONFIG, or leave both unset to use the nearest opsctl.toml\n"
    )
    path = tmp_path / "opsctl.toml"
    path.write_text(GOOD)
    assert main(["verify", "--env", "prod", "--config", str(path)]) == 2
    assert capsys.readouterr().err == (
        f"opsctl: {path}: no environment 'prod'; fix: use one of: render, "
        "or add [environments.prod]\n"
    )


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.mkdir(), "is a folder, not a file; fix: pass the file, e.g. --config "),
        (
            lambda p: p.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe binary"),
            "not UTF-8 text (byte 0xff at offset 8), so not a TOML file; fix: point --config or "
            "OPSCTL_CONFIG at opsctl.toml",
        ),
        (
            lambda p: p.write_text(GOOD.replace('title = "Security"', 'title = "Security')),
            "Illegal character '\\n' (at line 13, column 18); fix: correct the TOML syntax",
        ),
        (lambda p: p.write_text(""), "empty (no settings); fix: define [environments.NAME]"),
        (lambda p: p.write_text("# only a comment\n\n"), "empty (no settings); fix: define"),
    ],
    ids=["folder", "binary", "toml-syntax", "empty", "comments-only"],
)
def test_an_unreadable_config_file_is_one_line_and_exit_2(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    make: Callable[[Path], object],
    message: str,
) -> None:
    """Whatever stops the file being read as TOML: a config error (2) with a fix, never an
    'internal error' (3), before or after the subcommand, whichever command reads it."""
    path = tmp_path / "opsctl.toml"
    make(path)
    for args in (["gates", "--config", str(path)], ["--config", str(path), "evidence", "list"]):
        assert main(args) == 2
        out, err = capsys.readouterr()
        assert out == ""
        assert err.startswith(f"opsctl: {path}: ") and err.count("\n") == 1, err
        assert message in err


def test_a_config_file_this_user_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """click's own readability check is off (its message is three lines): read_toml says it."""
    path = tmp_path / "opsctl.toml"
    path.write_text(GOOD)
    path.chmod(0)
    if os.access(path, os.R_OK):  # root reads every file, but not a write-only sysctl
        path = Path("/proc/sys/vm/drop_caches")
        if not path.exists() or os.access(path, os.R_OK):
            pytest.skip("no file this user cannot read")
    for args in (["gates", "--config", str(path)], ["--config", str(path), "gates"]):
        assert main(args) == 2
        assert capsys.readouterr() == (
            "",
            f"opsctl: {path}: permission denied; fix: make it (and its folders) readable by "
            f"this user (chmod a+r {path})\n",
        )


def test_unknown_gate_and_check_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "opsctl.toml"
    path.write_text(GOOD)
    assert main(["verify", "--env", "render", "--config", str(path), "--only", "P9"]) == 2
    assert capsys.readouterr().err == "opsctl: no gate 'P9'; fix: use one of: P2.1, P2.6\n"
    assert main(["check", "nope", "--env", "render", "--config", str(path)]) == 2
    assert "opsctl: no check 'nope'; fix: use one of: audio, deploy-files, deps, health" in (
        capsys.readouterr().err
    )


def test_debug_shows_the_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--debug", "gates", "--config", str(tmp_path / "nope.toml")]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_an_error_never_prints_a_secret_not_even_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception that quotes a secret (a path, a URL, a header) is redacted on stderr, in its
    one line and in the --debug traceback."""
    secret = "s3cret-token-0123456789"  # pragma: allowlist secret
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", secret)
    missing = tmp_path / f"{secret}.toml"
    for args in (
        ["gates", "--config", str(missing)],
        ["--debug", "gates", "--config", str(missing)],
    ):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert secret not in err and "[REDACTED].toml" in err


def test_usage_error_is_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["verify"]) == 2
    assert "Missing option '--env'" in capsys.readouterr().err


def test_gates_lists_gates_checks_and_needs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["gates", "--config", str(REPO_ROOT / "opsctl.toml")]) == 0
    out = capsys.readouterr().out
    assert "P2.1  Twilio pipeline  (blocking)\n    checks: webhook\n" in out
    assert "P2.6  Security  (blocking, needs P2.1, P2.2)\n" in out
    assert "P2.4  Notion  (advisory)\n    checks: notion\n" in out


def test_version_imports_no_heavy_library() -> None:
    """`opsctl --version` must not pay for httpx, rich or jsonschema (bench/startup.sh)."""
    import subprocess
    import sys

    code = (
        "import sys; from opsctl.cli import main; rc = main(['--version']); "
        "print(sorted(m for m in ('httpx', 'rich', 'jsonschema', 'flask', 'checks.registry') "
        "if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["opsctl, version 0.1.0", "[]"]


def _load_in_a_fresh_process(config: Path, cache: Path) -> tuple[int, str]:
    """(exit code, whether jsonschema was imported) of loading `config` in a new interpreter."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from checks.registry import CHECKS\n"
        "from opsctl.config import ConfigError, load_config\n"
        "try:\n"
        f"    load_config(__import__('pathlib').Path({str(config)!r}), CHECKS)\n"
        "except ConfigError as exc:\n"
        "    print('jsonschema' in sys.modules); sys.exit(2)\n"
        "print('jsonschema' in sys.modules)\n"
    )
    env = {**os.environ, "OPSCTL_CACHE_DIR": str(cache)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO_ROOT
    )
    return done.returncode, done.stdout.strip()


def test_a_content_that_passed_the_schema_is_not_validated_again(tmp_path: Path) -> None:
    config = tmp_path / "opsctl.toml"
    config.write_text((REPO_ROOT / "opsctl.toml").read_text(encoding="utf-8"), encoding="utf-8")
    cache = tmp_path / "cache"
    assert _load_in_a_fresh_process(config, cache) == (0, "True")  # validated, remembered
    assert _load_in_a_fresh_process(config, cache) == (0, "False")  # same bytes: no jsonschema
    text = config.read_text(encoding="utf-8").replace("[defaults]\n", "[defaults]\nbogus = 1\n", 1)
    config.write_text(text, encoding="utf-8")
    assert _load_in_a_fresh_process(config, cache) == (2, "True")  # changed: validated, refused
    assert _load_in_a_fresh_process(config, cache) == (2, "True")  # a refusal is never kept
