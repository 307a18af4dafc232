"""Record every HTTP exchange a run makes (method, URL, status, headers, body excerpt, timing)."""

from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

# The check making a request; the runner sets it, tasks it starts inherit it.
current_check: contextvars.ContextVar[str] = contextvars.ContextVar("current_check", default="")

EXCERPT_BYTES = 2048
# Never written, whatever they hold: they carry credentials or values derived from them.
SENSITIVE_HEADERS = frozenset(
    {
        "authorization",
        "cookie",
        "set-cookie",
        "x-twilio-signature",
        "x-goog-api-key",
        "proxy-authorization",
    }
)


@dataclass(frozen=True)
class Exchange:
    """One request and its response."""

    check: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: str
    status: int
    response_headers: dict[str, str]
    response_body: str
    elapsed_ms: float

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _headers(headers: httpx.Headers) -> dict[str, str]:
    return {
        name: "[REDACTED]" if name.lower() in SENSITIVE_HEADERS else value
        for name, value in headers.items()
    }


def excerpt(content: bytes, content_type: str) -> str:
    """Text bodies up to EXCERPT_BYTES; binary ones as their length and first bytes in hex."""
    textual = content_type.startswith(
        ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")
    )
    if not textual:
        return (
            f"<{len(content)} bytes {content_type or 'unknown type'}, starts {content[:16].hex()}>"
        )
    text = content[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    more = len(content) - EXCERPT_BYTES
    return text + (f"... [{more} more bytes]" if more > 0 else "")


@dataclass
class Recorder:
    """httpx event hooks that keep every exchange in memory, in order."""

    exchanges: list[Exchange] = field(default_factory=list)

    def hooks(self) -> dict[str, list[Any]]:
        """For httpx.AsyncClient(event_hooks=...)."""
        return {"request": [self._on_request], "response": [self._on_response]}

    async def _on_request(self, request: httpx.Request) -> None:
        request.extensions["opsctl_started"] = time.perf_counter()

    async def _on_response(self, response: httpx.Response) -> None:
        await response.aread()
        request = response.request
        started = request.extensions.get("opsctl_started", time.perf_counter())
        self.exchanges.append(
            Exchange(
                check=current_check.get(),
                method=request.method,
                url=str(request.url),
                request_headers=_headers(request.headers),
                request_body=excerpt(request.content, request.headers.get("content-type", "")),
                status=response.status_code,
                response_headers=_headers(response.headers),
                response_body=excerpt(response.content, response.headers.get("content-type", "")),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        )
