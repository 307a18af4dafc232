"""A reply's media as Twilio sees it: where a <Media> URL may point, and one fetch like Twilio's.

Used by the webhook check (the URLs the bot puts in its replies) and the audio check (every file
the cache lists). Twilio fetches a MediaUrl from the internet with GET (and HEAD) and rejects
a Content-Type that does not match the file
(https://www.twilio.com/docs/messaging/guides/accepted-mime-types); it follows redirects like a
browser (https://www.twilio.com/docs/messaging/twiml/your-response).
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from checks.target import explain, explain_error

if TYPE_CHECKING:  # httpx is imported only when checks run (opsctl --version stays fast)
    import httpx

    from checks.interface import CheckContext

MP3_TYPE = "audio/mpeg"
MEDIA_VARIABLES = "AUDIO_BASE_URL, else PUBLIC_BASE_URL or RENDER_EXTERNAL_URL"
"""What the bot builds a <Media> URL from (bot/webhook.py `_media_url`)."""

# Names that mean something only inside one network: RFC 6761 (localhost), RFC 6762 (.local),
# RFC 8375 (home.arpa), and the clouds' and routers' own (.internal, .localdomain, .lan).
# Reserved test names (.test, .example) are not private: a check of them passes this rule and
# then fails, if at all, on the fetch, as Twilio's would.
_PRIVATE_SUFFIXES = ("localhost", "local", "internal", "localdomain", "home.arpa", "lan")


@dataclass(frozen=True)
class MediaProblem:
    """Why Twilio could not deliver one media URL, and what to change."""

    url: str
    what: str
    """What is wrong, without the URL (the caller names it, or the file)."""
    hint: str


def private_reason(host: str) -> str:
    """Why Twilio cannot reach this host from the internet ('' when it is a public name/address).

    Names are judged as written, not resolved: a public name that resolves to a private
    address is caught by the fetch, not here.
    """
    name = host.lower().rstrip(".")
    if not name:
        return "no host"
    if any(name == s or name.endswith("." + s) for s in _PRIVATE_SUFFIXES):
        return f"{host} is a local name, not a public host"
    address = _ip_literal(name)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if address is None or (address.is_global and not address.is_multicast):
        return ""
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved or address.is_multicast),
        ("private", address.is_private),
    )
    kind = next((k for k, is_kind in kinds if is_kind), "not global")
    return f"{host} is not a public address ({kind})"


def _ip_literal(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as an IP literal names (inet_aton's forms too: 127.1)."""
    try:
        return ipaddress.ip_address(name)
    except ValueError:
        pass
    if not name or not all(c in "0123456789abcdefx." for c in name) or not name[0].isdigit():
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(name))
    except OSError:
        return None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme, (parts.hostname or "").lower(), port


def url_problem(url: str, public_url: str, audio_host: str = "") -> MediaProblem | None:
    """What keeps Twilio from fetching this <Media> URL before any request is made: not https,
    not a public host, or on neither the deploy's host nor the configured audio host."""
    scheme, host, _ = _origin(url)
    own = _origin(public_url)[1]
    fix = f"the bot builds <Media> URLs from {MEDIA_VARIABLES}: set it to a public https URL"
    unreachable = [] if scheme == "https" else ["not https"]
    private = private_reason(host)
    if private:
        unreachable.append(private)
    if unreachable:
        return MediaProblem(url, f"{'; '.join(unreachable)}: Twilio cannot fetch it", fix)
    if host not in {own, audio_host.lower()}:
        configured = f" or the configured audio host {audio_host}" if audio_host else ""
        return MediaProblem(
            url,
            f"on {host}, not on the deploy's host {own}{configured}: "
            f"AUDIO_BASE_URL points at {host}",
            f"set AUDIO_BASE_URL on the bot to a URL on {own} (or empty: the bot serves "
            f"/static/cache on {own} itself); if {host} is meant to serve the MP3s, set "
            f'audio_host = "{host}" for this environment in opsctl.toml',
        )
    return None


def fetch_address(url: str, public_url: str, base_url: str) -> str:
    """Where opsctl sends Twilio's GET: a URL on the public origin goes to base_url, as the
    platform's TLS proxy maps it (the local environment signs for https://clara.local.test
    and talks to loopback); any other URL (a CDN) as it is."""
    if _origin(url) != _origin(public_url):
        return url
    parts = urlsplit(url)
    return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")


async def fetch_like_twilio(ctx: CheckContext, address: str, url: str = "") -> MediaProblem | None:
    """One plain GET of `address` as Twilio's media fetcher sends it (no Range, redirects
    followed): 200, audio/mpeg, MP3 bytes; None when Twilio would accept the file. Problems
    name `url` (the <Media> URL the address stands for; the address itself by default)."""
    import httpx

    url = url or address
    try:
        response = await ctx.client.get(address, timeout=ctx.timeout_s, follow_redirects=True)
    except httpx.HTTPError as exc:
        cause = explain_error(exc)
        return MediaProblem(url, f"a plain GET got no answer: {cause.what}", cause.hint)
    return response_problem(url, address, response)


def response_problem(url: str, address: str, response: httpx.Response) -> MediaProblem | None:
    """What Twilio would reject in the answer to its GET of `address` (None: a 200 MP3)."""
    from bot.audio import looks_like_mp3  # the bot's own test; the bot package pulls in Flask

    if response.history:
        moved = redirect_problem(url, address, str(response.url))
        if moved is not None:
            return moved
    if response.status_code != 200:
        cause = explain(response)
        hint = cause.hint
        if response.status_code == 404:
            hint = (
                "Twilio gets the same 404: the reply names a file its host does not serve "
                "(rebuild the MP3s with scripts/make-audio, or fix AUDIO_BASE_URL)"
            )
        return MediaProblem(url, f"a plain GET (as Twilio fetches) answered {cause.what}", hint)
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != MP3_TYPE:
        return MediaProblem(
            url,
            f"a plain GET's Content-Type is {kind or 'missing'!r}, expected {MP3_TYPE}",
            "Twilio rejects media whose Content-Type does not match the file: serve the MP3s "
            f"as {MP3_TYPE}",
        )
    if not looks_like_mp3(response.content[:4]):
        return MediaProblem(
            url,
            f"a plain GET's body is not an MP3 (starts with {response.content[:4]!r})",
            "the URL serves something else than the MP3 (an error page, an empty file): "
            "check the file and the route",
        )
    return None


def redirect_problem(url: str, address: str, final: str) -> MediaProblem | None:
    """A redirect Twilio could not follow to the end: to http, or to a private host."""
    if _origin(final)[1] == _origin(address)[1]:
        return None  # on the host opsctl fetched from (loopback for the local environment)
    scheme, host, _ = _origin(final)
    private = private_reason(host)
    if scheme == "https" and not private:
        return None
    why = private or "it is not https"
    return MediaProblem(
        url,
        f"a plain GET is redirected to {final}: {why}",
        "make the redirect point at a public https URL (or serve the file where the reply says)",
    )


async def check_media(ctx: CheckContext, url: str, audio_host: str = "") -> MediaProblem | None:
    """A <Media> URL of a reply, judged then fetched as Twilio would (None: Twilio gets an MP3)."""
    problem = url_problem(url, ctx.public_url, audio_host)
    if problem is not None:
        return problem  # not fetched: Twilio could not, and opsctl must not poke private hosts
    return await fetch_like_twilio(ctx, fetch_address(url, ctx.public_url, ctx.base_url), url)
