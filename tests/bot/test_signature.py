"""Twilio's published signature vectors go through the bot's own validation code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from bot.signature import NoSharedKey, is_valid_signature, public_url, sign, signing_key

# twilio-python tests/unit/test_request_validator.py (see ../shared/docs/twilio-render-schedule.md)
VECTOR_TOKEN = "12345"
VECTOR_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="  # pragma: allowlist secret
SIGNATURE_WITH_PORT = "kvajT1Ptam85bY51eRf/AJRuM3w="  # pragma: allowlist secret
SIGNATURE_REPEATED_KEYS = "IK+Dwps556ElfBT0I3Rgjkr1wJU="  # pragma: allowlist secret
VECTOR_PARAMS = MultiDict(
    {
        "CallSid": "CA1234567890ABCDE",  # pragma: allowlist secret
        "Caller": "+14158675309",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
    }
)


def test_published_vector() -> None:
    assert is_valid_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, SIGNATURE)
    assert sign(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS) == SIGNATURE


def test_published_vector_with_port_443() -> None:
    url = "https://mycompany.com:443/myapp.php?foo=1&bar=2"
    assert sign(VECTOR_TOKEN, url, VECTOR_PARAMS) == SIGNATURE_WITH_PORT
    # the validator accepts either form of the URL for either signature
    assert is_valid_signature(VECTOR_TOKEN, url, VECTOR_PARAMS, SIGNATURE)
    assert is_valid_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, SIGNATURE_WITH_PORT)


def test_published_vector_with_repeated_keys() -> None:
    params = MultiDict(
        [
            ("Sid", "CA123"),
            ("SidAccount", "AC123"),
            ("Digits", "5678"),
            ("Digits", "1234"),
            ("Digits", "1234"),
        ]
    )
    assert is_valid_signature(VECTOR_TOKEN, VECTOR_URL, params, SIGNATURE_REPEATED_KEYS)


def test_a_genuine_request_costs_one_hmac_a_bad_one_two(monkeypatch: pytest.MonkeyPatch) -> None:
    """twilio's validate() signs twice per request; ours signs the usual URL first (issue 17)."""
    calls: list[str] = []
    original = RequestValidator.compute_signature

    def counted(self: RequestValidator, uri: str, *args: Any, **kwargs: Any) -> str:
        calls.append(uri)
        return str(original(self, uri, *args, **kwargs))

    monkeypatch.setattr(RequestValidator, "compute_signature", counted)
    assert is_valid_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, SIGNATURE)
    assert calls == [VECTOR_URL]
    calls.clear()
    assert not is_valid_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, "x" + SIGNATURE[1:])
    assert calls == [VECTOR_URL, VECTOR_URL.replace(".com/", ".com:443/")]


def test_a_form_reaches_twilio_through_the_protocol_it_tries_first(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """twilio's get_values tries `getall` first; a werkzeug MultiDict would raise and fall back
    to `getlist` once per field (issue 17). The values twilio signs stay the same."""
    read_through: list[bool] = []
    original = RequestValidator.get_values

    def recorded(self: RequestValidator, param_dict: Any, param_name: str) -> Any:
        read_through.append(callable(getattr(param_dict, "getall", None)))
        return original(self, param_dict, param_name)

    monkeypatch.setattr(RequestValidator, "get_values", recorded)
    params = MultiDict([("Digits", "5678"), ("Digits", "1234"), ("Sid", "CA123")])
    signature = RequestValidator(VECTOR_TOKEN).compute_signature(VECTOR_URL, params)
    read_through.clear()
    assert is_valid_signature(VECTOR_TOKEN, VECTOR_URL, params, signature)
    assert read_through == [True, True]
    tampered = ("y" if signature.startswith("x") else "x") + signature[1:]
    assert not is_valid_signature(VECTOR_TOKEN, VECTOR_URL, params, tampered)


def test_the_signature_settings_header_picks_the_key_and_the_algorithm() -> None:
    """No header: the auth token and HMAC-SHA1. With one: the SharedKey's secret and the
    header's algorithm (https://www.twilio.com/docs/usage/webhooks/webhook-shared-keys)."""
    assert signing_key("", "token", "key-secret") == ("token", "HMAC_SHA1")
    header = "key=webhooks_sharedkey_1,algorithm=HMAC_SHA256"
    assert signing_key(header, "token", "key-secret") == ("key-secret", "HMAC_SHA256")
    assert signing_key("key=webhooks_sharedkey_1", "token", "key-secret") == (
        "key-secret",
        "HMAC_SHA1",
    )
    with pytest.raises(NoSharedKey):
        signing_key(header, "token", "")
    signature = sign("key-secret", VECTOR_URL, VECTOR_PARAMS, "HMAC_SHA256")
    assert is_valid_signature("key-secret", VECTOR_URL, VECTOR_PARAMS, signature, "HMAC_SHA256")
    assert not is_valid_signature("key-secret", VECTOR_URL, VECTOR_PARAMS, signature)
    assert not is_valid_signature("key-secret", VECTOR_URL, VECTOR_PARAMS, signature, "HMAC_MD5")


def test_a_signature_with_characters_beyond_ascii_is_refused_not_raised() -> None:
    assert not is_valid_signature(VECTOR_TOKEN, VECTOR_URL, VECTOR_PARAMS, "é" + SIGNATURE[1:])


@pytest.mark.parametrize(
    ("token", "url", "signature"),
    [
        ("", VECTOR_URL, SIGNATURE),  # no token: fail closed
        (VECTOR_TOKEN, VECTOR_URL, ""),  # no header
        ("54321", VECTOR_URL, SIGNATURE),  # another token
        (VECTOR_TOKEN, VECTOR_URL.replace("https", "http"), SIGNATURE),
        (VECTOR_TOKEN, VECTOR_URL, "RSOYDt4T1cUTdK1PDd93/VVr8B9="),  # tampered
    ],
)
def test_invalid_cases(token: str, url: str, signature: str) -> None:
    assert not is_valid_signature(token, url, VECTOR_PARAMS, signature)


def _request(url: str) -> Request:
    parts = urlsplit(url)
    builder = EnvironBuilder(
        path=parts.path,
        base_url=f"{parts.scheme}://{parts.netloc}",
        query_string=parts.query,
        method="POST",
    )
    return Request(builder.get_environ())


def test_public_url_prefers_public_base_url() -> None:
    request = _request("http://10.0.0.7:10000/webhook?x=1")
    assert (
        public_url(request, "https://bot.example.org", "https://clara.onrender.com")
        == "https://bot.example.org/webhook?x=1"
    )


def test_public_url_then_render_external_url() -> None:
    request = _request("http://10.0.0.7:10000/webhook")
    assert (
        public_url(request, "", "https://clara.onrender.com")
        == "https://clara.onrender.com/webhook"
    )


def test_public_url_falls_back_to_the_request() -> None:
    request = _request("http://127.0.0.1:5000/webhook")
    assert public_url(request, "", "") == "http://127.0.0.1:5000/webhook"


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, "https://bot.example.org/webhook"),  # PUBLIC_BASE_URL of the base environment
        (
            {"PUBLIC_BASE_URL": "", "RENDER_EXTERNAL_URL": "https://clara.onrender.com"},
            "https://clara.onrender.com/webhook",
        ),
        # Neither: the host the container sees, which Twilio never signs for.
        ({"PUBLIC_BASE_URL": "", "RENDER_EXTERNAL_URL": ""}, "http://srv-clara:10000/webhook"),
    ],
)
def test_health_names_the_url_webhook_signatures_are_checked_against(
    make_app: Callable[..., Flask], env: dict[str, str], expected: str
) -> None:
    client = make_app(env).test_client()
    health = client.get("/health", base_url="http://srv-clara:10000").get_json()
    assert health["webhook_url"] == expected
