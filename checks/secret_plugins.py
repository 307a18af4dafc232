"""detect-secrets plugins for this stack's credentials that the default plugins miss."""

from __future__ import annotations

import re

from detect_secrets.plugins.base import RegexBasedDetector


class TwilioAuthTokenDetector(RegexBasedDetector):
    """A 32-hex Twilio auth token assigned to a name that says so (the bare hex is too common)."""

    secret_type = "Twilio Auth Token"  # noqa: S105  # pragma: allowlist secret
    denylist = (
        re.compile(
            r"(?i)(?:twilio[_-]?auth[_-]?token|auth[_-]?token)[\"']?\s*[:=]\s*[\"']?([0-9a-f]{32})\b"
        ),
    )


class GoogleApiKeyDetector(RegexBasedDetector):
    """Google API keys (Gemini among them): 'AIza' and 35 more characters."""

    secret_type = "Google API Key"  # noqa: S105  # pragma: allowlist secret
    denylist = (re.compile(r"\b(AIza[0-9A-Za-z_\-]{35})(?![0-9A-Za-z_\-])"),)


class NotionTokenDetector(RegexBasedDetector):
    """Notion integration tokens: the old 'secret_' and the current 'ntn_' shapes."""

    secret_type = "Notion Integration Token"  # noqa: S105  # pragma: allowlist secret
    denylist = (re.compile(r"\b(secret_[0-9A-Za-z]{43}|ntn_[0-9A-Za-z]{46})\b"),)
