"""Webhook signatures end to end, and the audio of signed replies fetched as Twilio fetches it."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status
from checks.media import check_media
from checks.target import explain

if TYPE_CHECKING:  # imported when the check runs: twilio is slow to import
    import httpx
    from twilio.request_validator import RequestValidator

FORM_TYPE = "application/x-www-form-urlencoded"
# Twilio reads an answer of any of these types as TwiML
# (https://www.twilio.com/docs/messaging/twiml/your-response, "Twilio understands MIME types").
TWIML_TYPES = frozenset({"application/xml", "text/xml", "text/html"})
SIGNATURE_ANSWERS = frozenset({200, 403})
"""What the bot's own signature judgement answers; any other status never reached it."""
MEDIA_ROUNDS = 2
"""The media of every reply are fetched at once: one round, and one more for a redirect."""
ACCOUNT_REFUSED = "AccountSid is not this bot's TWILIO_ACCOUNT_SID"
"""What the bot's 403 says to a signed form of another account (bot/webhook.py)."""


@dataclass(frozen=True)
class Case:
    """One request the webhook check sends, and the status it must get."""

    name: str
    expected: int
    signed_for: str | None
    """The URL the signature is computed for (None: no signature header)."""
    tamper: bool = False


@dataclass(frozen=True)
class Reply:
    """What the bot answered one message: status, Content-Type and the TwiML message's parts."""

    status: int
    content_type: str
    body: str = ""
    """<Message><Body> ('' when absent, or the answer is not TwiML)."""
    media: tuple[str, ...] = ()
    """Every <Message><Media> URL, in order."""

    def as_dict(self) -> dict[str, Any]:
        """The reply as the check's details show it."""
        return {"status": self.status, "body": self.body, "media": list(self.media)}


def test_message(run_id: str, account_sid: str, body: str = "hola") -> dict[str, str]:
    """A WhatsApp message as Twilio posts it to the bot of `account_sid`, with a MessageSid
    unique to this run (`run_id`: 32 hex digits, so the SID has Twilio's shape)."""
    return {
        "MessageSid": "SM" + run_id,
        "AccountSid": account_sid,
        "From": "whatsapp:+15005550006",  # Twilio's magic test number
        "To": "whatsapp:+14155238886",
        "Body": body,
        "NumMedia": "0",
        "ProfileName": "opsctl verify",
        "WaId": "15005550006",
    }


def http_variant(url: str) -> str | None:
    """The same URL with http:// (None when it already is http)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="http")) if parts.scheme == "https" else None


def parse_twiml(twiml: str) -> tuple[str, tuple[str, ...]]:
    """(<Message><Body> text, <Message><Media> URLs) of a TwiML reply; ('', ()) when not XML."""
    try:
        # Our own bot's reply over a connection we opened; not untrusted input.
        root = ElementTree.fromstring(twiml)  # noqa: S314
    except ElementTree.ParseError:
        return "", ()
    body = (root.findtext("Message/Body") or "").strip()
    media = tuple(m.text.strip() for m in root.findall("Message/Media") if m.text)
    return body, media


def reply_of(response: httpx.Response) -> Reply:
    """The bot's answer to one message, its TwiML read only when Twilio would read it."""
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if response.status_code != 200 or kind not in TWIML_TYPES:
        return Reply(response.status_code, kind)
    return Reply(response.status_code, kind, *parse_twiml(response.text))


def same_url(a: str, b: str) -> bool:
    """Equal as Twilio's validator sees URLs: scheme, host, port (443/80 implied) and path."""

    def key(url: str) -> tuple[str, str, int | None, str]:
        parts = urlsplit(url)
        default = {"https": 443, "http": 80}.get(parts.scheme)
        return parts.scheme, (parts.hostname or "").lower(), parts.port or default, parts.path

    return key(a) == key(b)


class WebhookCheck(Check):
    """POST /webhook four ways, then ask for audio: only signed requests are answered, and the
    <Media> of the answers is fetched as Twilio would fetch it."""

    id = "webhook"
    title = "/webhook 403 unsigned, 200 signed, audio Twilio can fetch"
    done_when = (
        "unsigned 403; signed 200 with TwiML <Body>; tampered 403; signed for http:// 403; "
        "a question per language answered with <Media>, each a public https MP3 Twilio can GET"
    )

    def budget_s(self, ctx: CheckContext) -> float:
        # Four cases and the audio questions one after another, then the media at once.
        return (4 + len(ctx.expect.audio_questions) + MEDIA_ROUNDS) * ctx.timeout_s

    async def run(self, ctx: CheckContext) -> CheckResult:
        token = ctx.secrets.get(ctx.token_env, "")
        if not token:
            raise CheckError(
                f"{ctx.token_env} is not set: cannot sign test requests",
                f"export {ctx.token_env} or put it in .env (never in opsctl.toml)",
            )
        if not ctx.account_sid:
            # The bot refuses a signed form of another account (issue 14): without ours, every
            # signed message would be refused and the check would blame the token.
            raise CheckError(
                f"{ctx.account_sid_env} is not set: cannot send the AccountSid Twilio sends",
                f"export {ctx.account_sid_env} (the bot's TWILIO_ACCOUNT_SID) or put it in .env",
            )
        public = ctx.public_url.rstrip("/") + "/webhook"
        insecure = http_variant(public)
        cases = [
            Case("unsigned", 403, None),
            Case("signed", 200, public),
            Case("tampered", 403, public, tamper=True),
        ]
        if insecure:
            cases.append(Case("signed for http://", 403, insecure))
        from twilio.request_validator import RequestValidator

        validator = RequestValidator(token)
        sent: dict[str, tuple[Reply, httpx.Response]] = {}
        for case in cases:  # one after another: each request is a distinct message
            sent[case.name] = await self._send(ctx, validator, case.signed_for, case.tamper)
        details: dict[str, Any] = {
            "public_url": public,
            "cases": {name: reply.as_dict() for name, (reply, _) in sent.items()},
        }
        refused = await self._judge_signatures(ctx, cases, sent, details)
        if refused is not None:
            return refused
        signed = sent["signed"][0]
        if not signed.body:
            return self.result(
                Status.FAIL,
                "signed request got 200 but no TwiML <Message><Body> "
                f"(Content-Type {signed.content_type or 'missing'!r})",
                "the webhook must answer TwiML as application/xml (or text/xml)",
                details=details,
            )
        media = await self._ask_for_audio(ctx, validator, public, details)
        if isinstance(media, CheckResult):
            return media
        problems = await asyncio.gather(
            *(check_media(ctx, url, ctx.expect.audio_host) for _, url in media)
        )
        judged = list(zip(media, problems, strict=True))
        details["media"] = {url: p.what if p else "ok" for (_, url), p in judged}
        failed = [(lang, p) for (lang, _), p in judged if p]
        if failed:
            lang, first = failed[0]
            return self.result(
                Status.FAIL,
                f"{len(failed)} of {len(media)} <Media> Twilio cannot fetch; {lang} {first.url}: "
                f"{first.what}",
                first.hint,
                details=details,
            )
        languages = ", ".join(dict.fromkeys(lang for lang, _ in media))
        return self.result(
            Status.PASS,
            f"{len(cases)} cases as expected; the signed message got {len(signed.body)} "
            f"characters of TwiML; {len(media)} <Media> MP3 ({languages}) fetched as Twilio does",
            details=details,
        )

    async def _judge_signatures(
        self,
        ctx: CheckContext,
        cases: list[Case],
        sent: dict[str, tuple[Reply, httpx.Response]],
        details: dict[str, Any],
    ) -> CheckResult | None:
        """A result when the four cases are not answered as they must be; None when they are."""
        got = {name: reply.status for name, (reply, _) in sent.items()}
        if all(status not in SIGNATURE_ANSWERS for status in got.values()):
            # Nothing reached the bot's signature check: say what answered instead.
            cause = explain(sent[cases[0].name][1])
            codes = ", ".join(str(code) for code in dict.fromkeys(got.values()))
            return self.result(
                Status.ERROR if cause.transient else Status.FAIL,
                f"every /webhook request got {codes} before its signature was judged: {cause.what}",
                cause.hint,
                details=details,
            )
        public = details["public_url"]
        if got["signed"] == 403 and got.get("signed for http://") == 200:
            return self.result(
                Status.FAIL,
                f"the bot validates signatures against its internal http:// URL, not {public}",
                "set PUBLIC_BASE_URL to the public https URL, or have the proxy send "
                "X-Forwarded-Proto: https from an address gunicorn trusts (--forwarded-allow-ips)",
                details=details,
            )
        wrong = [case for case in cases if got[case.name] != case.expected]
        if not wrong:
            return None
        reason = "; ".join(f"{c.name} got {got[c.name]}, expected {c.expected}" for c in wrong)
        if any(got[c.name] == 200 for c in cases if c.expected == 403):
            return self.result(
                Status.FAIL,
                reason,
                "the webhook accepts requests Twilio did not sign: it must check "
                "X-Twilio-Signature (is DEV_ALLOW_UNSIGNED_WEBHOOK on?)",
                details=details,
            )
        odd = next((c for c in wrong if got[c.name] not in SIGNATURE_ANSWERS), None)
        if odd is not None:
            cause = explain(sent[odd.name][1])
            return self.result(Status.FAIL, f"{reason} ({cause.what})", cause.hint, details=details)
        if ACCOUNT_REFUSED in sent["signed"][1].text:
            return self.result(
                Status.FAIL,
                f"{reason}: the bot answers for another account than {ctx.account_sid_env}'s",
                f"is {ctx.account_sid_env} the bot's TWILIO_ACCOUNT_SID? The bot refuses a "
                "signed message whose AccountSid is not its own",
                details=details,
            )
        return await self._refused(ctx, reason, public, details)

    async def _refused(
        self, ctx: CheckContext, reason: str, public: str, details: dict[str, Any]
    ) -> CheckResult:
        """Correctly signed requests got 403: a token the bot lacks or differs, or another URL."""
        health = await self._health(ctx)
        validated = str(health.get("webhook_url", ""))
        details["bot_validates_against"] = validated or None
        components = health.get("components")
        if isinstance(components, dict) and components.get("twilio_configured") is False:
            return self.result(
                Status.FAIL,
                f"{reason}: the bot has no Twilio credentials (/health: twilio_configured false)",
                "set TWILIO_AUTH_TOKEN and TWILIO_ACCOUNT_SID in the service's environment",
                details=details,
            )
        if validated and not same_url(validated, public):
            ours = public.removesuffix("/webhook")
            return self.result(
                Status.FAIL,
                f"{reason}: the bot validates signatures against {validated}, not {public}",
                f"set PUBLIC_BASE_URL={ours} on the bot: it checks signatures against "
                "PUBLIC_BASE_URL, else RENDER_EXTERNAL_URL (Render sets it), else the URL its "
                "container sees",
                details=details,
            )
        hint = f"is {ctx.token_env} the same auth token the bot has?"
        if not validated:  # a bot whose /health does not say which URL it checks against
            hint += (
                f" If it is, the bot may validate against another URL than {public} "
                "(set PUBLIC_BASE_URL, else RENDER_EXTERNAL_URL is used)"
            )
        return self.result(Status.FAIL, reason, hint, details=details)

    async def _health(self, ctx: CheckContext) -> dict[str, Any]:
        """The bot's /health body ({} when it cannot be read): it names the URL the bot
        validates webhook signatures against (`webhook_url`), which is not a secret."""
        import httpx

        try:
            response = await ctx.client.get(ctx.url("/health"), timeout=ctx.timeout_s)
            body = response.json()
        except (httpx.HTTPError, ValueError):
            return {}
        return body if isinstance(body, dict) else {}

    async def _ask_for_audio(
        self,
        ctx: CheckContext,
        validator: RequestValidator,
        public: str,
        details: dict[str, Any],
    ) -> list[tuple[str, str]] | CheckResult:
        """Each language's audio question, signed: (language, <Media> URL) of every answer, or
        the result when an answer has no <Media>."""
        asked: dict[str, Any] = {}
        details["audio"] = asked
        media: list[tuple[str, str]] = []
        for lang, question in ctx.expect.audio_questions.items():
            reply, response = await self._send(ctx, validator, public, body=question)
            asked[lang] = {"question": question, **reply.as_dict()}
            if reply.status != 200:
                cause = explain(response)
                return self.result(
                    Status.FAIL,
                    f"the {lang} audio question {question!r} got {cause.what}",
                    cause.hint,
                    details=details,
                )
            if not reply.media:
                return self.result(
                    Status.FAIL,
                    f"the {lang} audio question {question!r} got a reply without <Media> "
                    f"(Content-Type {reply.content_type or 'missing'!r})",
                    "the bot answered it without audio: does its cached answer name an MP3 "
                    "(`audio` in bot/data/knowledge.json)? Else set audio_questions for this "
                    "environment in opsctl.toml to questions the cache answers with audio",
                    details=details,
                )
            media.extend((lang, url) for url in reply.media)
        return media

    async def _send(
        self,
        ctx: CheckContext,
        validator: RequestValidator,
        signed_for: str | None,
        tamper: bool = False,
        body: str = "hola",
    ) -> tuple[Reply, httpx.Response]:
        """POST one message, signed for `signed_for` (unsigned when None)."""
        form = test_message(uuid.uuid4().hex, ctx.account_sid, body)
        headers = {"Content-Type": FORM_TYPE}
        if signed_for is not None:
            signature = validator.compute_signature(signed_for, form)
            if tamper:
                signature = ("A" if signature[0] != "A" else "B") + signature[1:]
            ctx.derived_secrets.add(signature)
            headers["X-Twilio-Signature"] = signature
        response: httpx.Response = await ctx.client.post(
            ctx.url("/webhook"), data=form, headers=headers, timeout=ctx.timeout_s
        )
        return reply_of(response), response
