"""The HTTP transport of a run: every request's timeout is a hard deadline, body included.

httpx's timeouts bound each socket operation, so a server that drips one byte a second never
trips a 10 s read timeout; asyncio.timeout around the whole exchange (connect, send, headers and
the complete body) does. The transport also tells the check's Watch when an exchange met a
condition another attempt may not meet (a timeout, a reset, a 5xx, 408, 429), which is what
lets the runner retry a gate only when retrying can help.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from checks.target import explain, explain_error
from evidence.transcripts import current_watch
from opsctl.tls import tls_context


def deadline_of(request: httpx.Request, default_s: float) -> float:
    """The request's timeout as one number: the longest of httpx's per-phase timeouts."""
    phases = request.extensions.get("timeout") or {}
    values = [v for v in phases.values() if isinstance(v, int | float)]
    return max(values, default=default_s)


class DeadlineTransport(httpx.AsyncBaseTransport):
    """Wraps httpx's transport: the whole exchange within the request's timeout, or a timeout."""

    def __init__(self, inner: httpx.AsyncBaseTransport, default_s: float) -> None:
        self._inner = inner
        self._default_s = default_s

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        deadline_s = deadline_of(request, self._default_s)
        try:
            async with asyncio.timeout(deadline_s):
                response = await self._inner.handle_async_request(request)
                try:
                    await response.aread()  # the complete body, within the same deadline
                except BaseException:
                    await response.aclose()
                    raise
        except TimeoutError:
            error = httpx.ReadTimeout(f"no complete answer within {deadline_s:g}s", request=request)
            _note(explain_error(error).transient, error)
            raise error from None
        except httpx.HTTPError as exc:
            _note(explain_error(exc).transient, exc)
            raise
        response.request = request
        _note(explain(response).transient if response.status_code >= 300 else False, response)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _note(transient: bool, what: httpx.Response | httpx.HTTPError) -> None:
    """Tell the check's watch that this exchange may go otherwise next time."""
    watch = current_watch.get()
    if watch is not None and transient:
        watch.transient.append(
            str(what.status_code) if isinstance(what, httpx.Response) else type(what).__name__
        )


def run_client(
    concurrency: int, timeout_s: float, event_hooks: dict[str, list[Any]] | None = None
) -> httpx.AsyncClient:
    """The one HTTP client of a run: pooled, every request under a hard deadline."""
    inner = httpx.AsyncHTTPTransport(
        verify=tls_context(), limits=httpx.Limits(max_connections=concurrency)
    )
    return httpx.AsyncClient(
        transport=DeadlineTransport(inner, timeout_s),
        timeout=timeout_s,
        event_hooks=event_hooks,
    )
