"""Record every HTTP exchange a run makes (method, URL, status, headers, body excerpt, timing).

The runner tells the recorder, through `current_watch`, what the check making a request knows:
every value it must keep out of transcripts (redacted from the whole body and every header before
anything is cut to an excerpt, so a secret straddling the cut is never half-kept) and the secrets
no answer of the bot may hold (a response that holds one is an Exposure, which fails the check).
"""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from evidence.redact import REDACTED, Redactor, cut_note, forms, is_secret_like

if TYPE_CHECKING:  # annotations only: a run without HTTP (repository checks) never loads httpx
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
# JSON bodies larger than this are searched as text only (no path): /health is a few hundred bytes.
_MAX_JSON_BYTES = 1 << 20


@dataclass(frozen=True)
class Exposure:
    """A secret the bot sent back: which variable, in answer to what, where in the response."""

    secret: str
    """The variable's name (never its value)."""
    method: str
    path: str
    where: str
    """'header X-Debug', 'body at components.debug' (a JSON path) or 'body'."""

    def __str__(self) -> str:
        return f"{self.secret} in {self.method} {self.path} {self.where}"


@dataclass
class Watch:
    """What the runner tells the recorder about one check's requests, and what it saw."""

    exposable: Collection[tuple[str, str]]
    """(variable, value): secrets no response may hold (the target's token among them)."""
    redactor: Callable[[], Redactor]
    """For everything to keep out of transcripts, asked at each exchange (derived values grow)."""
    exposures: list[Exposure] = field(default_factory=list)
    transient: list[str] = field(default_factory=list)
    """What another attempt may not meet again (a timeout, a reset, a 5xx): the transport adds."""

    def inspect(self, response: httpx.Response) -> None:
        """Note every exposable secret the response holds (headers, then body), once each."""
        request = response.request
        for found in find_exposures(
            self.exposable,
            request.method,
            request.url.path,
            response.headers,
            response.content,
        ):
            if found not in self.exposures:
                self.exposures.append(found)


# The watch of the check making a request; None outside a check (the bundle still redacts).
current_watch: contextvars.ContextVar[Watch | None] = contextvars.ContextVar(
    "current_watch", default=None
)


def find_exposures(
    exposable: Iterable[tuple[str, str]],
    method: str,
    path: str,
    headers: httpx.Headers,
    content: bytes,
) -> list[Exposure]:
    """Where a response holds any form (as is, URL-encoded, JSON-escaped) of a secret."""
    found: list[Exposure] = []
    text = content.decode("utf-8", errors="replace")
    parsed = _json_of(content)
    # As the bot spelled them (items() would lower-case the names).
    named = [(n.decode(headers.encoding), v.decode(headers.encoding)) for n, v in headers.raw]
    for name, value in exposable:
        if not is_secret_like(value):
            continue
        shapes = forms(value)

        def holds(candidate: str, shapes: set[str] = shapes) -> bool:
            return any(shape in candidate for shape in shapes)

        wheres = [
            f"header {header}" if not holds(header) else "a header's name"
            for header, header_value in named
            if holds(header) or holds(header_value)
        ]
        if parsed is not _NOT_JSON:
            wheres += [f"body at {p}" if p else "body" for p in _json_paths(parsed, holds)]
        if not any(w.startswith("body") for w in wheres) and holds(text):
            wheres.append("body")
        found += [Exposure(name, method, path, where) for where in dict.fromkeys(wheres)]
    return found


_NOT_JSON = object()


def _json_of(content: bytes) -> Any:
    """The parsed body when it is JSON (whatever its Content-Type says), else _NOT_JSON."""
    if len(content) > _MAX_JSON_BYTES or content.lstrip()[:1] not in (b"{", b"["):
        return _NOT_JSON
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return _NOT_JSON


def _json_paths(value: Any, holds: Callable[[str], bool], path: str = "") -> Iterator[str]:
    """Paths ('components.debug', 'items[2]', '' for the whole body) of strings that hold it."""
    if isinstance(value, dict):
        for key, inner in value.items():
            here = f"{path}.{key}" if path else str(key)
            if holds(str(key)):
                yield here  # redacted with the rest of the reason: the key is the secret
            else:
                yield from _json_paths(inner, holds, here)
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from _json_paths(inner, holds, f"{path}[{index}]")
    elif isinstance(value, str) and holds(value):
        yield path


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


def _headers(headers: httpx.Headers, redactor: Redactor) -> dict[str, str]:
    return {
        redactor.redact(name): REDACTED
        if name.lower() in SENSITIVE_HEADERS
        else redactor.redact(value)
        for name, value in headers.items()
    }


def excerpt(content: bytes, content_type: str, redactor: Redactor | None = None) -> str:
    """Text bodies up to EXCERPT_BYTES; binary ones as their length and first bytes in hex.

    The whole body is redacted first, then cut: a secret across the cut is replaced whole.
    """
    shown = redactor.redact_bytes(content) if redactor else content
    textual = content_type.startswith(
        ("text/", "application/json", "application/xml", "application/x-www-form-urlencoded")
    )
    if not textual:
        return f"<{len(content)} bytes {content_type or 'unknown type'}, starts {shown[:16].hex()}>"
    text = shown[:EXCERPT_BYTES].decode("utf-8", errors="replace")
    more = len(shown) - EXCERPT_BYTES
    return text + (cut_note(more) if more > 0 else "")


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
        watch = current_watch.get()
        redactor = watch.redactor() if watch is not None else Redactor(())
        if watch is not None:
            watch.inspect(response)
        self.exchanges.append(
            Exchange(
                check=current_check.get(),
                method=request.method,
                url=redactor.redact(str(request.url)),
                request_headers=_headers(request.headers, redactor),
                request_body=excerpt(
                    request.content, request.headers.get("content-type", ""), redactor
                ),
                status=response.status_code,
                response_headers=_headers(response.headers, redactor),
                response_body=excerpt(
                    response.content, response.headers.get("content-type", ""), redactor
                ),
                elapsed_ms=round((time.perf_counter() - started) * 1000, 1),
            )
        )
