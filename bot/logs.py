"""Logging: JSON lines with a request id when OBSERVABILITY_ON; phones masked, secrets redacted."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from flask import Flask, Response, g, has_request_context, request

from bot.context import this_request

LOGGER_NAME = "clara"
# E.164 numbers and WhatsApp ids: 7 to 15 digits, optionally after '+'.
# Whole tokens only, so hex ids and timestamps are left alone.
_PHONE = re.compile(r"(?<![\w+])\+?\d{7,15}(?![\w])")
# Each ASCII digit as "0": seven digits in a row become b"0000000".
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# Every character a reader may take for the end of a line or a terminal command: the C0 and C1
# controls (Unicode's Cc: \n, \r, \x1b, NEL) and the line and paragraph separators, which
# str.splitlines() breaks on too. A request path with %0A must not start a log line of its own.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_C1_AND_SEPARATORS = re.compile(r"[\x7f-\x9f\u2028\u2029]")
# Built once: json.dumps(..., ensure_ascii=False) builds an encoder per call, half its cost on
# a request's line (issue 17). encode() keeps no state between calls.
_JSON = json.JSONEncoder(ensure_ascii=False)


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _ESCAPES:
        return _ESCAPES[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_controls(text: str) -> str:
    """The text on one line: each control or line-breaking character written as an escape."""
    return _CONTROLS.sub(_escape, text)


def mask_phone_numbers(text: str) -> str:
    """'+34612345678' becomes '+34*******678': enough to tell users apart, not to call them."""

    # A number needs seven digits in a row, and the usual line has none. In ASCII text, where
    # \d is [0-9], a scan of the bytes in C says so in about 1 us; the pattern itself takes 13
    # on a request's log line (issue 17: a third of the line's cost). Other text (\d also
    # matches other scripts' digits) always goes through the pattern.
    if text.isascii() and b"0000000" not in text.encode("ascii").translate(_DIGITS_AS_ZERO):
        return text

    def mask(match: re.Match[str]) -> str:
        number = match.group(0)
        keep_head = 3 if number.startswith("+") else 2
        return number[:keep_head] + "*" * (len(number) - keep_head - 3) + number[-3:]

    return _PHONE.sub(mask, text)


class RequestIdFilter(logging.Filter):
    """Stamps each record with the current request's id ('-' outside a request)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = g.get("request_id", "-") if has_request_context() else "-"
        return True


class RedactingFormatter(logging.Formatter):
    """Formats with `inner`, then redacts the whole line: message, fields and traceback alike."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self._inner = inner
        # Longest first, so a secret that contains another is replaced whole.
        self._secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        """The text with every known secret value replaced and phone numbers masked."""
        for secret in self._secrets:
            text = text.replace(secret, "[REDACTED]")
        return mask_phone_numbers(text)

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(self._inner.format(record))


class PlainFormatter(logging.Formatter):
    """One record, one line: a request's path or header cannot start a line of its own.

    The message line is escaped whole; a traceback keeps its lines, each escaped and indented,
    so none can pass for a record of its own either."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        return escape_controls(super().formatMessage(record))

    def formatException(self, ei: Any) -> str:
        return _indented(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return _indented(super().formatStack(stack_info))


def _indented(text: str) -> str:
    return "\n".join("  " + escape_controls(line) for line in text.split("\n"))


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:  # formatted once a second, not once a record
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "msg": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        # json.dumps escapes C0 controls but, with ensure_ascii off, leaves C1 controls and
        # U+2028/U+2029 as they are: line breaks to str.splitlines(). Escaped, the JSON is the same.
        line = _JSON.encode(entry)
        if line.isascii() and "\x7f" not in line:  # the usual line: nothing to look for
            return line
        return _C1_AND_SEPARATORS.sub(lambda m: f"\\u{ord(m.group(0)):04x}", line)


def configure_logging(
    level: str, json_lines: bool, secrets: Iterable[str], stream: TextIO | None = None
) -> logging.Logger:
    """Set up the 'clara' logger afresh (one handler, flushed on every record)."""
    logger = logging.getLogger(LOGGER_NAME)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)  # flushes after each record
    handler.addFilter(RequestIdFilter())
    inner = (
        JsonFormatter()
        if json_lines
        else PlainFormatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    )
    handler.setFormatter(RedactingFormatter(inner, secrets))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    # No format of ours prints the caller's file, line or function: not looking them up saves
    # a stack walk per record, a tenth of a record's cost (issue 17). The logging HOWTO's own
    # advice: https://docs.python.org/3/howto/logging.html#optimization
    logging._srcfile = None
    # Nor the thread's or the multiprocessing process's name: not looking them up saves more
    # (under gevent, current_thread() is the patched, greenlet-aware one). The HOWTO's table,
    # same section. The process id stays: gunicorn's own log lines print it.
    logging.logThreads = False
    logging.logMultiprocessing = False
    return logger


def note(message: str, *args: object) -> None:
    """Add `message % args` to this request's one log line, formatted only if it is written."""
    g.log_notes = [*g.get("log_notes", ()), (message, args)]


def init_app(app: Flask, logger: logging.Logger) -> None:
    """Give every request an id (kept from X-Request-Id when sane) and log one line per request:
    method, path, status, time and what the request did (its notes)."""

    @app.before_request
    def assign_request_id() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        # 32 random hex digits, as uuid4().hex has, for a third of its cost.
        g.request_id = incoming if _REQUEST_ID.fullmatch(incoming) else os.urandom(16).hex()
        g.log_started = time.perf_counter()

    @app.after_request
    def log_request(response: Response) -> Response:
        this_g = g._get_current_object()  # type: ignore[attr-defined]  # looked up once
        response.headers["X-Request-Id"] = this_g.get("request_id", "-")
        if not logger.isEnabledFor(logging.INFO):
            return response
        elapsed_ms = (time.perf_counter() - this_g.get("log_started", time.perf_counter())) * 1000
        notes = "; ".join(message % args for message, args in this_g.get("log_notes", ()))
        req = this_request()
        method, path, status = req.method, req.path, response.status_code
        logger.info(
            "%s %s %s %.1fms%s",
            method,
            path,
            status,
            elapsed_ms,
            f": {notes}" if notes else "",
            extra={
                "fields": {
                    "method": method,
                    "path": path,
                    "status": status,
                    "duration_ms": round(elapsed_ms, 1),
                }
            },
        )
        return response
