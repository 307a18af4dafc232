"""Logs: secrets redacted everywhere in the line, phone numbers masked, JSON when asked."""

from __future__ import annotations

import http.client
import io
import json
import os
import re
from collections.abc import Callable
from urllib.parse import quote, urlsplit

import httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from bot import logs
from bot.logs import configure_logging, mask_phone_numbers
from opsctl.devserver import DevServer
from tests.conftest import BASE_ENV
from tests.loopback import TLS

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


def _masked_by_the_pattern_alone(text: str) -> str:
    """The definition: every match of the pattern masked, no fast path."""

    def mask(match: re.Match[str]) -> str:
        number = match.group(0)
        head = 3 if number.startswith("+") else 2
        return number[:head] + "*" * (len(number) - head - 3) + number[-3:]

    return logs._PHONE.sub(mask, text)


@settings(max_examples=400, deadline=None)
@given(
    st.text(
        # Digits (ASCII and other scripts'), '+', word characters and separators, mostly.
        alphabet=st.sampled_from("0123456789+ ab_-:.\u0663\uff11\u00e9"),
        max_size=40,
    )
)
@example("+34612345678")
@example("tel \u0663\u0664\u0666\u0661\u0662\u0663\u0664\u0665")  # Arabic-Indic digits
@example("x1234567")
@example("123456")
@example("1234567")
def test_the_fast_path_masks_exactly_what_the_pattern_masks(text: str) -> None:
    assert mask_phone_numbers(text) == _masked_by_the_pattern_alone(text)


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


FORGED = "2026-01-01 00:00:00,000 INFO clara [-] POST /webhook 200 1.0ms"
# Every way a request could end a log line: LF, CR, NEL (C1), U+2028, U+2029, and ESC for a
# terminal that reads the log.
BREAKS = ["\n", "\r", "\r\n", "\x85", "\u2028", "\u2029", "\x1b[2K"]


@pytest.mark.parametrize("json_lines", [True, False])
@pytest.mark.parametrize("brk", BREAKS, ids=["LF", "CR", "CRLF", "NEL", "LS", "PS", "ESC"])
def test_a_record_is_one_line_whatever_its_fields_hold(json_lines: bool, brk: str) -> None:
    stream = io.StringIO()
    logger = configure_logging("INFO", json_lines, [], stream=stream)
    logger.info("GET %s 404", f"/x{brk}{FORGED}", extra={"fields": {"path": f"/x{brk}{FORGED}"}})
    output = stream.getvalue()
    assert len(output.splitlines()) == 1, output
    if json_lines:
        record = json.loads(output)
        assert record["msg"] == f"GET /x{brk}{FORGED} 404"  # escaped, not lost
        assert record["path"] == f"/x{brk}{FORGED}"
    else:
        assert "\x1b" not in output and "\r" not in output
        assert not any(line.startswith("2026-01-01") for line in output.splitlines())


@pytest.mark.parametrize("char", ["\x7f", "\x85", "\x9b", "\u2028", "\u2029"])
def test_a_json_line_holds_no_raw_c1_control_or_separator(char: str) -> None:
    """DEL is ASCII and json.dumps leaves it raw: the ASCII-only fast path must still escape it."""
    stream = io.StringIO()
    logger = configure_logging("INFO", True, [], stream=stream)
    logger.info("GET %s 404", f"/x{char}y", extra={"fields": {"path": f"/x{char}y"}})
    output = stream.getvalue()
    assert char not in output, repr(output)
    assert json.loads(output)["path"] == f"/x{char}y"


def test_a_plain_traceback_cannot_pass_for_a_record() -> None:
    stream = io.StringIO()
    logger = configure_logging("INFO", False, [], stream=stream)
    try:
        raise ValueError(f"bad path /x\n{FORGED}")
    except ValueError:
        logger.exception("failed")
    first, *rest = stream.getvalue().splitlines()
    assert first.endswith("failed")
    assert rest and all(line.startswith("  ") for line in rest), rest
    assert f"  {FORGED}" in rest


def test_a_server_that_runs_for_days_keeps_only_its_newest_lines() -> None:
    """`opsctl serve` prints every line as it comes and keeps only the newest: a bot logging a
    line per request for days must not grow the command's memory with them."""
    printed: list[str] = []
    server = DevServer({**os.environ, **BASE_ENV}, port=0, on_line=printed.append)
    server.kept_lines = 4
    try:
        url = server.start()
        server.wait_ready()
        for i in range(30):
            assert httpx.get(f"{url}/gone/{i}", verify=TLS).status_code == 404
    finally:
        server.stop()
    assert sum("/gone/" in line for line in printed) == 30  # each line was printed
    assert 4 <= len(server.lines) <= 8
    assert "/gone/29" in "\n".join(server.lines[-4:])


def test_a_newline_in_the_path_does_not_forge_a_line_under_gunicorn(
    start_bot: Callable[..., DevServer],
) -> None:
    """OBSERVABILITY_ON=false: plain lines. %0A, %0D and NEL in a path stay in its own line."""
    server = start_bot({"OBSERVABILITY_ON": "false"})
    parts = urlsplit(server.url)
    for brk in ("%0A", "%0D", "%0D%0A", "%C2%85", "%E2%80%A8"):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
        connection.request("GET", "/x" + brk + quote(FORGED))
        assert connection.getresponse().status == 404
        connection.close()
    server.stop()
    forged = [line for line in server.lines if line.startswith("2026-01-01")]
    assert forged == []
    assert sum("GET /x\\" in line and "404" in line for line in server.lines) == 5
