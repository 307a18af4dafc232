"""POST /webhook: Twilio's WhatsApp form in, signed-or-403, TwiML out."""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Blueprint, Flask, Response, abort, request
from twilio.twiml.messaging_response import MessagingResponse

from bot.answers import Answer
from bot.audio import AUDIO_ROUTE_PREFIX
from bot.metrics import Refusal
from bot.signature import is_valid_signature, public_base, public_url
from bot.state import BotState, get_state

MAX_BODY_BYTES = 64 * 1024
MAX_FIELD_CHARS = 64
FORM_TYPE = "application/x-www-form-urlencoded"

blueprint = Blueprint("webhook", __name__)
log = logging.getLogger("clara.webhook")


def _refuse(state: BotState, reason: Refusal) -> Response:
    state.metrics.signature_rejections.labels(reason).inc()
    log.warning("webhook refused with 403 (signature %s)", reason)
    return Response("Forbidden: invalid Twilio signature\n", 403, mimetype="text/plain")


def _abort_if_too_large() -> None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        abort(413)


def _read_form_or_400() -> None:
    """Reject what Twilio never sends: another content type, or a body that is not UTF-8."""
    if request.mimetype != FORM_TYPE:
        abort(400, description=f"expected {FORM_TYPE}")
    raw = request.get_data(cache=True)
    # A chunked body has no Content-Length; werkzeug then stops reading at
    # MAX_CONTENT_LENGTH without raising, so a body that reaches the limit is too large.
    limit = request.max_content_length
    if limit is not None and len(raw) >= limit:
        abort(413)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        abort(400, description="form is not UTF-8")


def _media_url(state: BotState, audio: str) -> str:
    settings = state.settings
    base = settings.audio_base_url or (
        public_base(request, settings.public_base_url, settings.render_external_url)
        + AUDIO_ROUTE_PREFIX
    )
    return f"{base.rstrip('/')}/{quote(audio)}"


def _twiml(state: BotState, answer: Answer) -> str:
    reply = MessagingResponse()
    message = reply.message()
    message.body(answer.text)
    if answer.audio:
        message.media(_media_url(state, answer.audio))
    return str(reply)


@blueprint.post("/webhook")
def webhook() -> Response:
    """Answer one inbound WhatsApp message."""
    state = get_state()
    settings = state.settings
    signature = request.headers.get("X-Twilio-Signature", "")
    checking = not settings.dev_allow_unsigned_webhook
    _abort_if_too_large()
    if checking and not settings.twilio_auth_token:
        return _refuse(state, Refusal.UNCONFIGURED)  # fail closed: no token, no answers
    if checking and not signature:
        return _refuse(state, Refusal.MISSING)
    _read_form_or_400()
    form = request.form
    url = public_url(request, settings.public_base_url, settings.render_external_url)
    if checking and not is_valid_signature(settings.twilio_auth_token, url, form, signature):
        return _refuse(state, Refusal.INVALID)

    message_sid = form.get("MessageSid", "")
    sender = form.get("From", "")
    if not message_sid or len(message_sid) > MAX_FIELD_CHARS or not sender:
        abort(400, description="MessageSid and From are required")
    answerer = state.answerer
    if answerer is None:  # the knowledge base is not loaded yet (or failed to load)
        return Response("warming up\n", 503, {"Retry-After": "5"}, mimetype="text/plain")

    def compute() -> str:
        answer = answerer.answer(form.get("Body", ""))
        log.info("answered %s from %s (%s, %s)", message_sid, sender, answer.lang, answer.source)
        return _twiml(state, answer)

    twiml, fresh = state.replies.get_or_compute(message_sid, compute)
    if not fresh:
        state.metrics.duplicates.inc()
        log.info("repeated %s answered from memory", message_sid)
    return Response(twiml, 200, mimetype="application/xml")


def init_app(app: Flask) -> None:
    """Register /webhook and its body limit."""
    # Flask's default config holds MAX_CONTENT_LENGTH=None, so setdefault would not do.
    if app.config.get("MAX_CONTENT_LENGTH") is None:
        app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.register_blueprint(blueprint)
