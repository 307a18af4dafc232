"""Twilio signature validation, against the public URL Twilio actually called."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import quote, urlparse

from flask import Request
from twilio.request_validator import (
    HMAC_SHA1,
    RequestValidator,
    add_port,
    compare,
    get_signature_algorithm,
    remove_port,
)
from werkzeug.datastructures import MultiDict


class NoSharedKey(LookupError):
    """A webhook signed with a Twilio SharedKey, and no TWILIO_SHARED_KEY_SECRET to check it."""


def signing_key(settings_header: str, auth_token: str, shared_key_secret: str) -> tuple[str, str]:
    """(secret, algorithm) Twilio signed a webhook with, by its signature settings header.

    No X-Twilio-Webhooks-Signature-Settings: the account's auth token and HMAC-SHA1, as
    always. With it (a Webhook Rule matched the URL), the SharedKey's secret and the header's
    algorithm; the signed string is the same URL and sorted form
    (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys). twilio's own
    get_signature_algorithm reads the header. Raises NoSharedKey when that secret is not set:
    the bot cannot check such a request, which is its configuration's fault, not the caller's.
    """
    if not settings_header:
        return auth_token, HMAC_SHA1
    if not shared_key_secret:
        raise NoSharedKey(settings_header)
    return shared_key_secret, get_signature_algorithm(settings_header)


def is_valid_signature(
    secret: str,
    url: str,
    params: Mapping[str, Any],
    signature: str,
    algorithm: str = HMAC_SHA1,
) -> bool:
    """True when `signature` is Twilio's signature of url + params with this secret (the auth
    token, or a SharedKey's secret: signing_key) and algorithm; False for an unknown algorithm.

    `params` should be the request's form as a multi-dict (werkzeug's `request.form`),
    so repeated keys count as Twilio counts them.
    """
    # validate(..., None) raises TypeError in twilio-python 9: refuse a missing header first.
    if not secret or not signature:
        return False
    # RequestValidator.validate signs twice per request, the URL with and without its default
    # port, since Twilio's own signing is inconsistent there. The same two candidates, the
    # usual one (no port) first: a genuine request costs one HMAC, and only a URL signed with
    # ":443" or a bad signature costs the second (issue 17). The URLs and the signature are
    # twilio's own (remove_port, add_port, compute_signature); only the order is ours.
    validator = _validator(secret)
    form: object = _FormForTwilio(params) if isinstance(params, MultiDict) else params
    try:
        return any(
            compare(validator.compute_signature(candidate, form, algorithm), signature)
            for candidate in _candidate_urls(url)
        )
    except ValueError:  # twilio's "Unsupported webhook signature algorithm": none it can check
        return False


class _FormForTwilio:
    """A werkzeug form as twilio's validator reads a multi-dict first: through `getall`.

    Given werkzeug's MultiDict itself, RequestValidator.get_values tries `getall`, catches the
    AttributeError and falls back to `getlist`, once per field: eight exceptions a webhook, a
    third of the check's time (issue 17). The values are the same `getlist` ones."""

    __slots__ = ("_form",)

    def __init__(self, form: MultiDict[str, Any]) -> None:
        self._form = form

    def __iter__(self) -> Iterator[str]:
        return iter(self._form)

    def __len__(self) -> int:
        return len(self._form)

    def getall(self, name: str) -> list[Any]:
        """Every value of the field, repeated ones included, as Twilio signs them."""
        return self._form.getlist(name)


@functools.lru_cache(maxsize=4)
def _validator(secret: str) -> RequestValidator:
    return RequestValidator(secret)


# Every message comes to the same URL: its two spellings are worked out once, not per request.
# Bounded, since the query string is the caller's.
@functools.lru_cache(maxsize=64)
def _candidate_urls(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    return remove_port(parsed), add_port(parsed)


def sign(secret: str, url: str, params: Mapping[str, Any], algorithm: str = HMAC_SHA1) -> str:
    """The X-Twilio-Signature Twilio would send for this URL and form (for tests and opsctl)."""
    return str(RequestValidator(secret).compute_signature(url, params, algorithm))


def _path_and_query(request: Request) -> str:
    # gunicorn keeps the request target byte for byte in RAW_URI, and QUERY_STRING is raw
    # too: Twilio signed exactly those bytes, so neither is decoded and re-encoded.
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if raw.startswith("/"):
        path = raw.split("?", 1)[0]
    else:
        path = quote(request.script_root + request.path, safe="/%:@!$&'()*+,;=-._~")
    query = request.environ.get("QUERY_STRING", "")
    return path + ("?" + query if query else "")


def public_url(request: Request, public_base_url: str, render_external_url: str) -> str:
    """The URL Twilio signed: PUBLIC_BASE_URL, else RENDER_EXTERNAL_URL, else the request's own.

    The request's own URL takes its scheme from the WSGI server, which honours
    X-Forwarded-Proto only from trusted proxies (gunicorn's forwarded_allow_ips).
    Behind Render's TLS proxy the app sees http:// while Twilio signed https://
    (twilio-python#751), hence the configured bases come first.
    """
    return public_base(request, public_base_url, render_external_url) + _path_and_query(request)


def public_base(request: Request, public_base_url: str, render_external_url: str) -> str:
    """The scheme and host the outside world uses for this bot, without a trailing slash."""
    return (public_base_url or render_external_url or request.host_url).rstrip("/")
