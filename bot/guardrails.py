"""Guardrails: bounded input, no control characters, replies that fit one WhatsApp message."""

from __future__ import annotations

import unicodedata

MAX_INPUT_CHARS = 1000
# WhatsApp through Twilio refuses a message body over 1600 characters (error 21617).
WHATSAPP_MAX_CHARS = 1600


def clean_input(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """Drop control and format characters (newlines become spaces) and cut to the limit."""
    if text.isprintable():
        # isprintable() is False for every character of the categories below (and for \n, \r,
        # \t among them): nothing to drop or replace, the loop would keep the text as it is.
        return text.strip()[:limit]
    kept = []
    for char in text:
        category = unicodedata.category(char)
        if char in "\n\r\t":
            kept.append(" ")
        elif category not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(char)
    return "".join(kept).strip()[:limit]


def fit_reply(text: str, limit: int = WHATSAPP_MAX_CHARS) -> str:
    """The reply, cut with an ellipsis when it would not fit in one message."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
