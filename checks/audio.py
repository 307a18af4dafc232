"""Audio reachability: every MP3 answers a plain GET (Twilio's fetch), HEAD and a ranged GET."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status
from checks.media import MediaProblem, fetch_like_twilio

if TYPE_CHECKING:  # httpx is imported only when checks run
    import httpx

_CONTENT_RANGE = re.compile(r"bytes 0-\d+/(\d+)")
_HINT = "Twilio rejects media that is not audio/mpeg: check the files and the route"


class AudioCheck(Check):
    """A plain GET, HEAD and a ranged GET per file: 200/206, audio/mpeg, a length, MP3 bytes."""

    id = "audio"
    title = "audio files reachable as MP3"
    done_when = (
        "every MP3: plain GET 200 as Twilio fetches it, HEAD 200, ranged GET 206, audio/mpeg, "
        "same length, MP3 bytes"
    )

    def budget_s(self, ctx: CheckContext) -> float:
        # /status/warmup, then every file's three requests at once, and one redirect of a GET.
        return 3 * ctx.timeout_s

    async def run(self, ctx: CheckContext) -> CheckResult:
        names = ctx.expect.audio or await self._discover(ctx)
        if not names:
            raise CheckError(
                "no audio files to check: none configured and /status/warmup lists none",
                "list them under `audio` in opsctl.toml",
            )
        problems = await asyncio.gather(*(self._check_file(ctx, name) for name in names))
        failed = {name: p for name, p in zip(names, problems, strict=True) if p is not None}
        details: dict[str, Any] = {
            "files": list(names),
            "problems": {name: p.what for name, p in failed.items()},
        }
        if failed:
            name, first = next(iter(failed.items()))
            return self.result(
                Status.FAIL,
                f"{len(failed)} of {len(names)} audio files broken; {name}: {first.what}",
                first.hint,
                details=details,
            )
        return self.result(
            Status.PASS,
            f"{len(names)} MP3 files answer a plain GET (as Twilio fetches), HEAD and ranged GET",
            details=details,
        )

    async def _discover(self, ctx: CheckContext) -> tuple[str, ...]:
        response = await ctx.client.get(ctx.url("/status/warmup"), timeout=ctx.timeout_s)
        try:
            files = response.json().get("audio_files", [])
        except ValueError:
            files = []
        return tuple(str(f) for f in files if isinstance(f, str))

    async def _check_file(self, ctx: CheckContext, name: str) -> MediaProblem | None:
        # The bot's own helpers, imported here: the bot package pulls in Flask.
        from bot.audio import AUDIO_ROUTE_PREFIX

        url = ctx.url(f"{AUDIO_ROUTE_PREFIX}/{name}")
        head, get, twilio = await asyncio.gather(
            ctx.client.head(url, timeout=ctx.timeout_s),
            ctx.client.get(url, headers={"Range": "bytes=0-15"}, timeout=ctx.timeout_s),
            fetch_like_twilio(ctx, url),
        )
        problem = self._head_and_range(head, get)
        if problem:
            return MediaProblem(url, problem, _HINT)
        # Last: a file that passes HEAD and a ranged GET but not Twilio's own plain GET.
        return twilio

    def _head_and_range(self, head: httpx.Response, get: httpx.Response) -> str:
        """What is wrong with the HEAD and the ranged GET of one file ('' when nothing)."""
        from bot.audio import looks_like_mp3

        if head.status_code != 200:
            return f"HEAD answered {head.status_code}"
        if get.status_code != 206:
            return f"ranged GET answered {get.status_code}, expected 206"
        for method, response in (("HEAD", head), ("GET", get)):
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            if kind != "audio/mpeg":
                return f"{method} Content-Type is {kind or 'missing'!r}, expected audio/mpeg"
        length = _int(head.headers.get("content-length"))
        if not length:
            return "HEAD reports no Content-Length or zero bytes"
        total = _CONTENT_RANGE.fullmatch(get.headers.get("content-range", ""))
        if total is None:
            return f"ranged GET has no usable Content-Range ({get.headers.get('content-range')!r})"
        if int(total.group(1)) != length:
            return f"HEAD says {length} bytes, GET says {total.group(1)}"
        etags = head.headers.get("etag"), get.headers.get("etag")
        if all(etags) and etags[0] != etags[1]:
            return f"HEAD and GET disagree on ETag ({etags[0]} vs {etags[1]})"
        if not looks_like_mp3(get.content[:4]):
            return f"content is not MP3 (starts with {get.content[:4]!r})"
        return ""


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0
