"""Guardrails: control characters stripped, input bounded, replies fit one WhatsApp message."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.guardrails import MAX_INPUT_CHARS, WHATSAPP_MAX_CHARS, clean_input, fit_reply
from tests.conftest import message_sid, signed_headers, whatsapp_form


def test_control_and_format_characters_are_stripped() -> None:
    assert clean_input("ho\x00la\x1b[31m\u200b padrón\r\n") == "hola[31m padrón"


def test_input_is_cut_to_the_limit() -> None:
    assert len(clean_input("a" * (MAX_INPUT_CHARS + 50))) == MAX_INPUT_CHARS


def test_replies_fit_whatsapp() -> None:
    short = "x" * WHATSAPP_MAX_CHARS
    assert fit_reply(short) == short
    long = fit_reply("y" * (WHATSAPP_MAX_CHARS + 1))
    assert len(long) == WHATSAPP_MAX_CHARS
    assert long.endswith("…")


@pytest.mark.parametrize(
    ("guardrails", "answered"), [("true", "Empadronamiento:"), ("false", "Todavía")]
)
def test_webhook_cleans_input_only_with_guardrails(
    make_app: Callable[..., Flask], guardrails: str, answered: str
) -> None:
    """A zero-width space inside a word hides it from the matcher unless guardrails strip it."""
    form = whatsapp_form("necesito el padr\u200bon", sid=message_sid("guard" + guardrails))
    client = make_app({"GUARDRAILS_ON": guardrails}).test_client()
    response = client.post("/webhook", data=form, headers=signed_headers(form))
    assert response.status_code == 200
    assert f"<Body>{answered}" in response.get_data(as_text=True)


def _clean_char_by_char(text: str, limit: int = MAX_INPUT_CHARS) -> str:
    """clean_input's definition, one character at a time (its fast path must agree)."""
    kept = []
    for char in text:
        if char in "\n\r\t":
            kept.append(" ")
        elif unicodedata.category(char) not in ("Cc", "Cf", "Cs", "Co", "Cn"):
            kept.append(char)
    return "".join(kept).strip()[:limit]


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=60))
def test_the_fast_path_cleans_as_the_definition_does(text: str) -> None:
    assert clean_input(text) == _clean_char_by_char(text)
    assert clean_input(text, limit=5) == _clean_char_by_char(text, limit=5)
