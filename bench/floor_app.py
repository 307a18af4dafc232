"""The floor for bench/webhook_floor.py: a minimal Flask app answering fixed TwiML on /webhook.

It does what any Flask webhook does (route, read the form, build a response) and nothing the
bot adds (signature, shapes, answers, metrics, logging), under the same gunicorn settings."""

from __future__ import annotations

from flask import Flask, Response, request

TWIML = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Message><Body>'
    "Hola: para el Ingreso Mínimo Vital, pide cita en la Seguridad Social.</Body>"
    "</Message></Response>"
)

app = Flask(__name__)


@app.post("/webhook")
def webhook() -> Response:
    """Read the form as the bot does, answer fixed TwiML."""
    request.form.get("Body", "")
    return Response(TWIML, 200, mimetype="application/xml")


@app.get("/health")
def health() -> Response:
    """What the benchmark waits for before the load."""
    return Response('{"status": "ok"}', 200, mimetype="application/json")
