"""Logs: secrets redacted everywhere in the line, phone numbers masked, JSON when asked."""

from __future__ import annotations

import io
import json

import pytest

from bot.logs import configure_logging, mask_phone_numbers

SECRET = "tok-0123456789abcdef"  # pragma: allowlist secret


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("from whatsapp:+34612345678", "from whatsapp:+34******678"),
        ("WaId 34612345678", "WaId 34******678"),
        ("order 12345 at 10:30", "order 12345 at 10:30"),
        ("request 0912345359df8534bf", "request 0912345359df8534bf"),
        ("id abc1234567890", "id abc1234567890"),
    ],
)
def test_mask_phone_numbers(text: str, masked: str) -> None:
    assert mask_phone_numbers(text) == masked


@pytest.mark.parametrize("json_lines", [True, False])
def test_secrets_never_reach_the_stream(json_lines: bool) -> None:
    stream = io.StringIO()
    logger = configure_logging("DEBUG", json_lines, [SECRET, ""], stream=stream)
    logger.info("token is %s", SECRET)
    logger.info("fields", extra={"fields": {"header": f"Bearer {SECRET}"}})
    try:
        raise ValueError(f"bad token {SECRET} for +34612345678")
    except ValueError:
        logger.exception("failed")
    output = stream.getvalue()
    assert SECRET not in output
    assert "+34612345678" not in output
    # plain text does not render the extra fields
    assert output.count("[REDACTED]") == (3 if json_lines else 2)
    if json_lines:
        records = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
        assert [r["msg"] for r in records] == ["token is [REDACTED]", "fields", "failed"]
        assert records[1]["header"] == "Bearer [REDACTED]"
        assert "ValueError: bad token [REDACTED] for +34******678" in records[2]["exc"]
