"""Limits the server hooks (bot/serving.py) and the app (bot/webhook.py) must agree on, in a
module of their own: gunicorn's master imports the hooks, and should not load Flask for them."""

MAX_BODY_BYTES = 64 * 1024
"""The largest webhook body read; Twilio's forms are a few KB."""
