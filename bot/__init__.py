"""Clara, a civic-help WhatsApp bot: `create_app()` (bot/app.py) builds the Flask app gunicorn
serves.

Importing `bot` loads no Flask: the toolkit reads `bot.settings` without it, and a command such
as `opsctl gates` should not pay for a web framework it does not use (issue 17). `create_app`
and `SettingsError` are imported on first use (PEP 562), so `bot:create_app()` (the
Dockerfile's CMD) and `from bot import create_app` work as before.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.app import create_app as create_app
    from bot.settings import SettingsError as SettingsError

__all__ = ["SettingsError", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from bot.app import create_app

        return create_app
    if name == "SettingsError":
        from bot.settings import SettingsError

        return SettingsError
    raise AttributeError(f"module 'bot' has no attribute {name!r}")
