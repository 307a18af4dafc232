"""Guardrails: control characters stripped, input bounded, replies fit one WhatsApp message."""

from __future__ import annotations

from bot.guardrails import MAX_INPUT_CHARS, WHATSAPP_MAX_CHARS, clean_input, fit_reply


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
