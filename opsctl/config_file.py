"""Find opsctl.toml and read it as TOML; every way either fails is a ConfigError with a fix."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opsctl.errors import OpsctlError

# Kept apart from opsctl/config.py (which imports the checks' types) so that shell completion
# and discovery stay as fast as click itself.

CONFIG_NAME = "opsctl.toml"
CONFIG_ENV = "OPSCTL_CONFIG"
HOW_TO_POINT = f"pass --config PATH, set {CONFIG_ENV}=PATH, or run opsctl from the project"


class ConfigError(OpsctlError):
    """opsctl.toml is missing or wrong; the message names the file, the key and the fix."""


def locate_config(given: Path | None, environ: Mapping[str, str], cwd: Path) -> Path:
    """--config if given, else $OPSCTL_CONFIG, else the nearest opsctl.toml from `cwd` up to the
    filesystem root (the first found wins, as git, ruff and pytest find theirs)."""
    if given is not None:
        return given
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    for depth, folder in enumerate((cwd, *cwd.parents)):
        if (folder / CONFIG_NAME).is_file():
            # Relative to the current folder, as the default `opsctl.toml` always was: paths
            # derived from it (evidence-out, PHASE-STATUS.md) read the same in every message.
            return Path(*[".."] * depth, CONFIG_NAME)
    raise ConfigError(
        f"no {CONFIG_NAME} in {cwd} or any folder above it; fix: {HOW_TO_POINT} "
        "(a folder holding opsctl.toml, or one below it)"
    )


def read_toml(path: Path) -> dict[str, Any]:
    """The file's top-level TOML table: the one place where OS, decoding and TOML errors about
    the configuration file become one line naming the file, the cause and the fix."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(  # discovery only finds files: this path came from the user
            f"{path}: not found; fix: correct the path given to --config or {CONFIG_ENV}, or "
            "leave both unset to use the nearest opsctl.toml"
        ) from None
    except IsADirectoryError:
        raise ConfigError(
            f"{path}: is a folder, not a file; fix: pass the file, e.g. --config "
            f"{path / CONFIG_NAME}"
        ) from None
    except PermissionError:
        raise ConfigError(
            f"{path}: permission denied; fix: make it (and its folders) readable by this user "
            f"(chmod a+r {path})"
        ) from None
    except OSError as exc:  # whatever else the OS refuses (a name too long, a loop of links...)
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{path}: cannot be read: {reason}; fix: {HOW_TO_POINT}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}), "
            f"so not a TOML file; fix: point --config or {CONFIG_ENV} at opsctl.toml"
        ) from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # its message ends "(at line L, column C)"
        raise ConfigError(f"{path}: {exc}; fix: correct the TOML syntax") from None
    if not raw:
        raise ConfigError(
            f"{path}: empty (no settings); fix: define [environments.NAME] and [gates.ID] "
            "tables, as in the repository's opsctl.toml"
        )
    return raw
