"""Webhook signatures end to end: unsigned, signed, tampered and http-signed requests."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit
from xml.etree import ElementTree

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status

if TYPE_CHECKING:  # imported when the check runs: twilio is slow to import
    import httpx
    from twilio.request_validator import RequestValidator

FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Case:
    """One request the webhook check sends, and the status it must get."""

    name: str
    expected: int
    signed_for: str | None
    """The URL the signature is computed for (None: no signature header)."""
    tamper: bool = False


def test_message(run_id: str) -> dict[str, str]:
    """A WhatsApp message as Twilio posts it, with a MessageSid unique to this run."""
    return {
        "MessageSid": "SM" + run_id,
        "AccountSid": "AC" + "0" * 32,
        "From": "whatsapp:+15005550006",  # Twilio's magic test number
        "To": "whatsapp:+14155238886",
        "Body": "hola",
        "NumMedia": "0",
        "ProfileName": "opsctl verify",
        "WaId": "15005550006",
    }


def http_variant(url: str) -> str | None:
    """The same URL with http:// (None when it already is http)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme="http")) if parts.scheme == "https" else None


def body_of(twiml: str) -> str:
    """The text of <Message><Body> in a TwiML reply ('' when absent or not XML)."""
    try:
        # Our own bot's reply over a connection we opened; not untrusted input.
        root = ElementTree.fromstring(twiml)  # noqa: S314
    except ElementTree.ParseError:
        return ""
    return (root.findtext("Message/Body") or "").strip()


class WebhookCheck(Check):
    """POST /webhook four ways; only the correctly signed request may be answered."""

    id = "webhook"
    title = "/webhook 403 unsigned, 200 signed"
    done_when = "unsigned 403; signed 200 with TwiML <Body>; tampered 403; signed for http:// 403"

    def budget_s(self, ctx: CheckContext) -> float:
        return 4 * ctx.timeout_s  # four requests, one after another

    async def run(self, ctx: CheckContext) -> CheckResult:
        token = ctx.secrets.get(ctx.token_env, "")
        if not token:
            raise CheckError(
                f"{ctx.token_env} is not set: cannot sign test requests",
                f"export {ctx.token_env} or put it in .env (never in opsctl.toml)",
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
        outcomes: dict[str, dict[str, Any]] = {}
        for case in cases:  # one after another: each request is a distinct message
            outcomes[case.name] = await self._send(ctx, case, validator)
        details = {"public_url": public, "cases": outcomes}
        got = {name: o["status"] for name, o in outcomes.items()}
        if got["signed"] == 403 and insecure and got.get("signed for http://") == 200:
            return self.result(
                Status.FAIL,
                f"the bot validates signatures against its internal http:// URL, not {public}",
                "set PUBLIC_BASE_URL to the public https URL, or have the proxy send "
                "X-Forwarded-Proto: https from an address gunicorn trusts (--forwarded-allow-ips)",
                details=details,
            )
        wrong = [
            f"{case.name} got {got[case.name]}, expected {case.expected}"
            for case in cases
            if got[case.name] != case.expected
        ]
        if wrong:
            accepts_forgery = any(got[c.name] == 200 for c in cases if c.expected == 403)
            return self.result(
                Status.FAIL,
                "; ".join(wrong),
                "the webhook accepts requests Twilio did not sign: it must check "
                "X-Twilio-Signature (is DEV_ALLOW_UNSIGNED_WEBHOOK on?)"
                if accepts_forgery
                else f"is {ctx.token_env} the same auth token the bot has?",
                details=details,
            )
        signed = outcomes["signed"]
        if not signed["body"]:
            return self.result(
                Status.FAIL,
                "signed request got 200 but no TwiML <Message><Body>",
                "the webhook must answer application/xml TwiML",
                details=details,
            )
        return self.result(
            Status.PASS,
            f"{len(cases)} cases as expected; the signed message got {len(signed['body'])} "
            "characters of TwiML",
            details=details,
        )

    async def _send(
        self, ctx: CheckContext, case: Case, validator: RequestValidator
    ) -> dict[str, Any]:
        form = test_message(uuid.uuid4().hex)
        headers = {"Content-Type": FORM_TYPE}
        if case.signed_for is not None:
            signature = validator.compute_signature(case.signed_for, form)
            if case.tamper:
                signature = ("A" if signature[0] != "A" else "B") + signature[1:]
            ctx.derived_secrets.add(signature)
            headers["X-Twilio-Signature"] = signature
        response: httpx.Response = await ctx.client.post(
            ctx.url("/webhook"), data=form, headers=headers, timeout=ctx.timeout_s
        )
        is_xml = response.headers.get("content-type", "").startswith("application/xml")
        return {
            "status": response.status_code,
            "body": body_of(response.text) if response.status_code == 200 and is_xml else "",
        }
