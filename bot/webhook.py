"""POST /webhook: Twilio's WhatsApp form in, signed-or-403, TwiML out."""

from __future__ import annotations

import functools
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote

from flask import Blueprint, Flask, Request, Response, abort
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER
from twilio.twiml.messaging_response import MessagingResponse
from werkzeug.datastructures import MultiDict

from bot import logs
from bot.answers import Answer
from bot.audio import AUDIO_ROUTE_PREFIX
from bot.context import this_request
from bot.guardrails import clean_input
from bot.knowledge import detect_language
from bot.limits import MAX_BODY_BYTES
from bot.metrics import Refusal
from bot.signature import NoSharedKey, is_valid_signature, public_base, public_url, signing_key
from bot.state import BotState, get_state
from bot.store import StoreDown

FORM_TYPE = "application/x-www-form-urlencoded"

# What a sender over RATE_LIMIT_PER_MINUTE reads, in the language of the message (a 200: Twilio
# delivers it; a 4xx or 5xx would leave the sender with no word at all).
RATE_LIMITED: dict[str, str] = {
    "es": "Has enviado muchos mensajes en poco tiempo. "
    "Espera un minuto y vuelve a escribirme, por favor.",
    "fr": "Vous avez envoyé beaucoup de messages en peu de temps. "
    "Merci d'attendre une minute avant de m'écrire à nouveau.",
}
# With DEDUPE_ON_STORE_DOWN=closed and Redis down: Twilio retries a 5xx only when the webhook
# URL asks for it (#rc=3&rp=5xx: https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides).
STORE_DOWN_RETRY_AFTER_SEC = 5

blueprint = Blueprint("webhook", __name__)
log = logging.getLogger("clara.webhook")


@dataclass(frozen=True)
class FieldShape:
    """A field of every inbound message, its exact shape, and the refusal when it lacks it."""

    name: str
    shape: re.Pattern[str]
    refusal: Refusal


# Twilio's signature concatenates each name and value with no separator, so the characters of
# one signed form can be re-cut into others under the same signature (issue 14): MessageSid
# `SM<32 hex>NumMedia0` with NumMedia dropped is a "new" message. A message counts only when
# each field it rests on is there once, in exactly Twilio's shape
# (https://www.twilio.com/docs/messaging/guides/webhook-request): a SID is two letters and 32
# hex digits (https://www.twilio.com/docs/glossary/what-is-a-sid; SM a message, MM one with
# media, AC an account), a WhatsApp address `whatsapp:` and an E.164 number, at most 15
# digits after '+' (https://www.twilio.com/docs/glossary/what-e164).
_WHATSAPP = re.compile(r"whatsapp:\+[1-9][0-9]{1,14}")
FIELD_SHAPES = (
    FieldShape("MessageSid", re.compile(r"(?:SM|MM)[0-9a-fA-F]{32}"), Refusal.MESSAGE_SID),
    FieldShape("AccountSid", re.compile(r"AC[0-9a-fA-F]{32}"), Refusal.ACCOUNT_SID),
    FieldShape("From", _WHATSAPP, Refusal.FROM),
    FieldShape("To", _WHATSAPP, Refusal.TO),
)


def _refuse(state: BotState, reason: Refusal) -> Response:
    state.metrics.signature_rejections.labels(reason).inc()
    log.warning("webhook refused with 403 (signature %s)", reason)
    return Response("Forbidden: invalid Twilio signature\n", 403, mimetype="text/plain")


def _cannot_check_shared_key(state: BotState) -> Response:
    """500: Twilio signed with a SharedKey whose secret this bot was not given. The bot's
    configuration is at fault, not the request: twilio's own middleware answers 500 there
    (twilio-node examples/WebhookSignatureValidation.md)."""
    state.metrics.signature_rejections.labels(Refusal.NO_SHARED_KEY).inc()
    log.error(
        "webhook refused with 500: signed with a Twilio SharedKey (%s), but "
        "TWILIO_SHARED_KEY_SECRET is not set: set it to the key's secret",
        SIGNATURE_SETTINGS_HEADER,
    )
    return Response(
        "Internal Server Error: signed with a Twilio SharedKey this bot has no secret for\n",
        500,
        mimetype="text/plain",
    )


def _misshapen(form: MultiDict[str, str]) -> FieldShape | None:
    """The first field Twilio always sends once, in its shape, that this form lacks."""
    for field in FIELD_SHAPES:
        values = form.getlist(field.name)
        if len(values) != 1 or not field.shape.fullmatch(values[0]):
            return field
    return None


def _other_account(form: Mapping[str, str], account_sid: str) -> bool:
    """True when the form names another account than ours ('' : any account, in development)."""
    if not account_sid:
        return False
    return not hmac.compare_digest(form["AccountSid"].encode(), account_sid.encode())


def _refuse_form(state: BotState, form: MultiDict[str, str]) -> Response | None:
    """400 for a field not as Twilio sends it, 403 for another account; None for a message.

    Neither the log nor the answer repeats a value: they are the sender's, not ours.
    A 4xx is final for Twilio (it retries only a failed connection unless the webhook URL asks
    for more: https://www.twilio.com/docs/usage/webhooks/webhooks-connection-overrides), and a
    form that reaches this point was signed with our token, so Twilio would only meet it if it
    changed what it sends: then the count by reason in /metrics shows it."""
    field = _misshapen(form)
    if field is not None:
        state.metrics.form_rejections.labels(field.refusal).inc()
        log.warning("webhook refused with 400: signed, %s not as Twilio sends it", field.name)
        return Response(
            f"Bad Request: {field.name} is not as Twilio sends it\n", 400, mimetype="text/plain"
        )
    if _other_account(form, state.settings.twilio_account_sid):
        state.metrics.form_rejections.labels(Refusal.OTHER_ACCOUNT).inc()
        log.warning("webhook refused with 403: signed, but for another AccountSid")
        return Response(
            "Forbidden: AccountSid is not this bot's TWILIO_ACCOUNT_SID\n",
            403,
            mimetype="text/plain",
        )
    return None


def _abort_if_too_large(req: Request) -> None:
    length = req.content_length
    if length is not None and length > MAX_BODY_BYTES:
        abort(413)


def _read_form_or_400(req: Request) -> None:
    """Reject what Twilio never sends: another content type, or a body that is not UTF-8."""
    if req.mimetype != FORM_TYPE:
        abort(400, description=f"expected {FORM_TYPE}")
    raw = req.get_data(cache=True)
    # A chunked body has no Content-Length; werkzeug then stops reading at
    # MAX_CONTENT_LENGTH without raising, so a body that reaches the limit is too large.
    limit = req.max_content_length
    if limit is not None and len(raw) >= limit:
        abort(413)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="form is not UTF-8")


def _media_url(state: BotState, req: Request, audio: str) -> str:
    settings = state.settings
    base = settings.audio_base_url or (
        public_base(req, settings.public_base_url, settings.render_external_url)
        + AUDIO_ROUTE_PREFIX
    )
    return f"{base.rstrip('/')}/{quote(audio)}"


def _twiml(state: BotState, req: Request, answer: Answer) -> str:
    return _twiml_of(answer.text, _media_url(state, req, answer.audio) if answer.audio else "")


# Most replies come from the cache of answers, so most TwiML documents are ones already built:
# building one (twilio's MessagingResponse through ElementTree) cost about 6 % of a request
# (issue 17). Bounded: live LLM answers are each new.
@functools.lru_cache(maxsize=1024)
def _twiml_of(text: str, media_url: str) -> str:
    reply = MessagingResponse()
    message = reply.message()
    message.body(text)
    if media_url:
        message.media(media_url)
    return str(reply)


@blueprint.post("/webhook")
def webhook() -> Response:
    """Answer one inbound WhatsApp message."""
    req = this_request()
    state = get_state()
    settings = state.settings
    signature = req.headers.get("X-Twilio-Signature", "")
    checking = not settings.dev_allow_unsigned_webhook
    _abort_if_too_large(req)
    if checking and not settings.twilio_configured:
        # Fail closed: without the token no signature holds, without the account SID no form
        # can be told ours.
        return _refuse(state, Refusal.UNCONFIGURED)
    if checking and not signature:
        return _refuse(state, Refusal.MISSING)
    _read_form_or_400(req)
    form = req.form
    url = public_url(req, settings.public_base_url, settings.render_external_url)
    if checking:
        try:
            secret, algorithm = signing_key(
                req.headers.get(SIGNATURE_SETTINGS_HEADER, ""),
                settings.twilio_auth_token,
                settings.twilio_shared_key_secret,
            )
        except NoSharedKey:
            return _cannot_check_shared_key(state)
        if not is_valid_signature(secret, url, form, signature, algorithm):
            return _refuse(state, Refusal.INVALID)

    refused = _refuse_form(state, form)
    if refused is not None:
        return refused
    message_sid, sender = form["MessageSid"], form["From"]
    answerer = state.answerer
    if answerer is None:  # the knowledge base is not loaded yet (or failed to load)
        return Response("warming up\n", 503, {"Retry-After": "5"}, mimetype="text/plain")

    def compute() -> str:
        # Counted here, once per new MessageSid: a retry of an answered message costs nothing.
        if not state.store.allow(sender):
            state.metrics.rate_limited.inc()
            lang = detect_language(clean_input(form.get("Body", "")))
            logs.note("rate limited %s from %s (%s)", message_sid, sender, lang)
            return _twiml_of(RATE_LIMITED[lang], "")
        answer = answerer.answer(form.get("Body", ""))
        logs.note("answered %s from %s (%s, %s)", message_sid, sender, answer.lang, answer.source)
        return _twiml(state, req, answer)

    try:
        twiml, fresh = state.store.get_or_compute(message_sid, compute)
    except StoreDown:
        state.metrics.store_unavailable.inc()
        log.warning("webhook answered 503: Redis is down and DEDUPE_ON_STORE_DOWN=closed")
        return Response(
            "Service Unavailable: the shared store is down\n",
            503,
            {"Retry-After": str(STORE_DOWN_RETRY_AFTER_SEC)},
            mimetype="text/plain",
        )
    if not fresh:
        state.metrics.duplicates.inc()
        logs.note("repeated %s answered from memory", message_sid)
    return Response(twiml, 200, mimetype="application/xml")


def init_app(app: Flask) -> None:
    """Register /webhook and its body limit."""
    # Flask's default config holds MAX_CONTENT_LENGTH=None, so setdefault would not do.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.register_blueprint(blueprint)
