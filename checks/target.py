"""Who answered and why: the bot, or the platform in front of it; one table of causes and hints.

Every deploy check explains an unexpected answer through `explain` (an HTTP response) or
`explain_error` (no response at all), so a Render 502 reads the same in /health, /webhook and the
audio files, and whether another attempt may help (`Cause.transient`) is decided in one place.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urljoin

if TYPE_CHECKING:  # httpx is imported only when checks run (opsctl --version stays fast)
    import httpx

    from checks.interface import CheckContext

# The free plan's memory: Render kills an instance that goes over it, and its edge answers 502.
FREE_PLAN_MEMORY_MB = 512


@dataclass(frozen=True)
class Cause:
    """What an answer (or the lack of one) means, and what to do about it."""

    what: str
    """A few words: 'Render's 502 page: its edge could not reach the bot's process'."""
    hint: str
    transient: bool
    """Another attempt may see something else (a timeout, a reset, a 5xx, 408, 429); a DNS or
    TLS failure, a redirect or a 4xx will not change by asking again."""


# Render's edge marks what it answers itself; the app's own answers pass through without these.
# Render documents 502 as "Render's edge can't reach your process" and 503 as "no instances
# available" (render.com/tutorials/when-deploys-go-wrong/runtime-errors); every response through
# its edge carries `rndr-id`, and the ones it makes itself `x-render-routing`.
_RENDER_ROUTING = "x-render-routing"
_RENDER_ID = "rndr-id"
_WAKING_WORDS = ("waking up", "spinning up", "service is starting", "application loading")


def platform_of(response: httpx.Response) -> str:
    """'render' when Render's edge made this answer, 'proxy' for another proxy's default page,
    '' when the application answered."""
    headers = response.headers
    if _RENDER_ROUTING in headers:
        return "render"
    html = response.headers.get("content-type", "").startswith("text/html")
    if not html or response.status_code < 500:
        return ""
    text = response.text[:4096].lower()
    if _RENDER_ID in headers and ("render" in text or any(w in text for w in _WAKING_WORDS)):
        return "render"
    server = headers.get("server", "").lower()
    if any(name in server for name in ("nginx", "cloudflare", "envoy", "awselb", "caddy")):
        return "proxy"
    if "<title>" in text and ("bad gateway" in text or "service unavailable" in text):
        return "proxy"
    return ""


def is_waking_page(response: httpx.Response) -> bool:
    """Render's page while a free instance wakes (the request did not reach the bot)."""
    if platform_of(response) != "render" or response.status_code not in (502, 503):
        return False
    routing = response.headers.get(_RENDER_ROUTING, "").lower()
    text = response.text[:4096].lower()
    return "wak" in routing or "hibernat" in routing or any(w in text for w in _WAKING_WORDS)


def explain(response: httpx.Response, memory: str = "") -> Cause:
    """The cause of an answer that is not what a check wanted; `memory` is what the bot's
    /metrics said of its resident memory, when known ('412 MB of 512 MB')."""
    code = response.status_code
    platform = platform_of(response)
    url = str(response.request.url) if _has_request(response) else "the target"
    if is_waking_page(response):
        return Cause(
            f"{code}: Render's page for a free instance that is waking up",
            "wait and run again: a free instance takes up to a minute to wake; "
            "`opsctl warmup` keeps it awake",
            transient=True,
        )
    if platform == "render" and code == 502:
        return render_502(memory)
    if platform == "render":
        return Cause(
            f"{code}: Render's own page, the request never reached the bot",
            "no instance is available (deploying, suspended or overloaded): read the service's "
            "events in Render's dashboard",
            transient=True,
        )
    if platform == "proxy":
        return Cause(
            f"{code}: a proxy's default page ({response.headers.get('server', 'unknown server')}),"
            " not the bot",
            "the proxy in front of the bot could not reach it: is the bot running behind it?",
            transient=True,
        )
    return _by_status(code, url, response.headers.get("location", ""))


def render_502(memory: str = "") -> Cause:
    """Render's 502: its edge could not reach the process; on the free plan, often memory."""
    used = f" (its /metrics said {memory})" if memory else ""
    return Cause(
        "502: Render's page, its edge could not reach the bot's process",
        f"the bot crashed, is restarting or ran out of memory{used}: on the free plan an "
        f"instance over {FREE_PLAN_MEMORY_MB} MB is killed (a second gunicorn worker or "
        "Whisper are the usual cause); read the service's events and logs in Render",
        transient=True,
    )


def _by_status(code: int, url: str, location: str) -> Cause:
    """The cause of an answer the application made itself, by its status code."""
    if 300 <= code < 400:
        target = urljoin(url, location) if location else ""  # Location may be relative
        return Cause(
            f"{code}: redirected" + (f" to {target}" if target else ""),
            f"use the URL it redirects to{f' ({target})' if target else ''} as base_url (and "
            "as the webhook URL in Twilio's console): Twilio signs the URL it calls, and a "
            "redirect changes it",
            transient=False,
        )
    if code == 404:
        return Cause(
            f"404: no such route at {url}",
            "is base_url the bot's address (not another service's, not a path under it)?",
            transient=False,
        )
    if code in (408, 429):
        return Cause(
            f"{code}: the server asked to slow down" if code == 429 else f"{code}: request timeout",
            "the service is busy or rate-limited: run again later",
            transient=True,
        )
    if 400 <= code < 500:
        return Cause(
            f"{code}: the bot refused the request",
            "read the bot's logs for why it refused it",
            transient=False,
        )
    if code == 503:
        return Cause(
            "503: the bot says it is not ready",
            "read /status/warmup for the start-up check that failed",
            transient=True,
        )
    if code >= 500:
        return Cause(
            f"{code}: the bot's own error",
            "read the service's logs for the traceback",
            transient=True,
        )
    return Cause(f"{code}", "", transient=False)


def explain_error(exc: httpx.HTTPError, waited_s: float | None = None) -> Cause:
    """The cause of a request that got no answer: refused, reset, DNS, TLS, timeout."""
    import httpx

    url = str(exc.request.url) if _has_request(exc) else "the target"
    causes = list(_causes(exc))
    if isinstance(exc, httpx.TimeoutException):
        waited = f" within {waited_s:.1f}s" if waited_s is not None else ""
        return Cause(
            f"no complete answer from {url}{waited} ({type(exc).__name__})",
            "is the service up and awake? a sleeping free instance needs a longer wake_timeout_s",
            transient=True,
        )
    if any(isinstance(c, socket.gaierror) for c in causes):
        return Cause(f"DNS lookup failed for {url}", "check base_url in opsctl.toml", False)
    if any(isinstance(c, ssl.SSLError) for c in causes):
        return Cause(f"TLS failed for {url}: {exc}", "check the certificate and the URL", False)
    if any(isinstance(c, ConnectionRefusedError) for c in causes):
        return Cause(f"connection refused at {url}", "is the service running on that port?", True)
    if any(isinstance(c, ConnectionResetError) for c in causes) or not str(exc):
        return Cause(
            f"connection reset by peer at {url} ({type(exc).__name__})",
            "the server or a proxy closed the connection mid-request: look at the service's logs"
            " (a worker killed for memory or a timeout does this)",
            True,
        )
    if isinstance(exc, httpx.ConnectError):
        return Cause(f"could not connect to {url}: {exc}", "check base_url and the network", True)
    return Cause(
        f"HTTP error talking to {url}: {type(exc).__name__}: {exc}",
        "the service broke the connection: look at its logs",
        True,
    )


def _has_request(thing: httpx.HTTPError | httpx.Response) -> bool:
    try:
        thing.request  # noqa: B018 - raises RuntimeError when there is no request
    except RuntimeError:
        return False
    return True


def _causes(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup):
            for inner in current.exceptions:
                yield from _causes(inner)
        current = current.__cause__ or current.__context__


@dataclass(frozen=True)
class WakeReport:
    """How the target woke: how long until the bot itself answered, and what answered before."""

    awake: bool
    waited_s: float
    """From the first request until the bot's own first answer (or until giving up)."""
    seen: tuple[str, ...] = ()
    """What answered while the bot did not, with counts: '503: Render's page ... (x3)'."""
    reason: str = ""
    """When not awake: why, with the time actually waited."""
    hint: str = ""

    def while_waiting(self) -> str:
        """' (before it: ...)' naming what answered before the bot, or ''."""
        return f" (before it: {'; '.join(self.seen)})" if self.seen else ""


def _is_the_bot(response: httpx.Response) -> bool:
    """The application answered (not the platform), and not with 'starting'."""
    if platform_of(response):
        return False
    try:
        body = response.json()
    except ValueError:
        return True
    return not (isinstance(body, dict) and body.get("status") == "starting")


async def wake(ctx: CheckContext) -> WakeReport:
    """GET /health until the bot itself answers or `wake_timeout_s` is spent.

    One request may take what is left of the budget: Render holds a request while a free
    instance boots. A DNS or TLS failure ends the wake at once (waiting cannot change it).
    """
    import httpx

    budget_s = ctx.expect.wake_timeout_s
    started = ctx.clock()
    seen: Counter[str] = Counter()
    last = Cause("no request could be sent", "", transient=True)
    while (remaining := budget_s - (ctx.clock() - started)) > 0:
        try:
            response = await ctx.client.get(ctx.url("/health"), timeout=remaining)
        except httpx.HTTPError as exc:
            last = explain_error(exc, ctx.clock() - started)
            if not last.transient:
                waited = ctx.clock() - started
                return WakeReport(False, waited, _counted(seen), last.what, last.hint)
            seen[type(exc).__name__] += 1
        else:
            if _is_the_bot(response):
                return WakeReport(True, ctx.clock() - started, _counted(seen))
            last = (
                explain(response)
                if platform_of(response)
                else Cause(
                    "/health says 'starting'",
                    "read /status/warmup for what it is waiting for",
                    True,
                )
            )
            seen[last.what] += 1
        await asyncio.sleep(min(1.0, max(budget_s - (ctx.clock() - started), 0.0)))
    waited = ctx.clock() - started
    return WakeReport(
        False,
        waited,
        _counted(seen),
        f"the bot did not answer in {waited:.1f}s (wake_timeout_s {budget_s:g}); last: {last.what}",
        last.hint or "is the service deployed and running? read its events in Render",
    )


def _counted(seen: Counter[str]) -> tuple[str, ...]:
    return tuple(f"{what} (x{count})" if count > 1 else what for what, count in seen.items())


class Waker:
    """One wake per run: the first check that talks to the bot starts it, the others await it."""

    def __init__(self) -> None:
        self._task: asyncio.Task[WakeReport] | None = None

    async def wait(self, ctx: CheckContext) -> WakeReport:
        """The run's wake report (waking the target on the first call)."""
        if self._task is None:
            self._task = asyncio.ensure_future(wake(ctx))
        # A check cancelled while it waits (its own budget) must not cancel the others' wake.
        return await asyncio.shield(self._task)
