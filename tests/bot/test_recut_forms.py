"""Re-cut forms: one signed WhatsApp form cut into others under the same signature (issue 14).

Twilio's signature is HMAC-SHA1 of the URL and each name and value, sorted by name, with no
separator: the same characters cut elsewhere (`MessageSid=<sid>NumMedia0` with NumMedia gone)
carry the same signature. Each such form must be refused, or be the same message again."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.datastructures import MultiDict

from bot.signature import sign
from checks.webhook import ACCOUNT_REFUSED
from opsctl.devserver import DevServer
from tests.conftest import BASE_ENV, PUBLIC, TOKEN, whatsapp_form
from tests.loopback import TLS

URL = PUBLIC + "/webhook"
SHAPED = ("MessageSid", "AccountSid", "From", "To")
"""The fields a message rests on: a re-cut that keeps them is the same message again."""
Form = list[tuple[str, str]]


def signed_string(form: Form) -> str:
    """What Twilio signs after the URL: every name and value, sorted by name, no separator."""
    return "".join(name + value for name, value in sorted(form))


def _shifts(form: Form) -> Iterator[Form]:
    """Every form that moves the cut between one piece and the next (name|value, value|name)."""
    pieces = [piece for pair in form for piece in pair]
    for i in range(len(pieces) - 1):
        left, right = pieces[i], pieces[i + 1]
        joined = left + right
        for cut in range(len(joined) + 1):
            if cut == len(left):
                continue
            moved = [*pieces[:i], joined[:cut], joined[cut:], *pieces[i + 2 :]]
            yield list(zip(moved[::2], moved[1::2], strict=True))


def _merges(form: Form) -> Iterator[Form]:
    """Every form that folds one field, name and value, into the value before it."""
    for i in range(1, len(form)):
        name, value = form[i - 1]
        yield [*form[: i - 1], (name, value + form[i][0] + form[i][1]), *form[i + 1 :]]


def recuts(form: dict[str, str]) -> list[Form]:
    """The re-cuts of a form that Twilio's own signature cannot tell from it."""
    original = sorted(form.items())
    wanted = sign(TOKEN, URL, form)
    found: dict[tuple[tuple[str, str], ...], Form] = {}
    for candidate in (*_shifts(original), *_merges(original)):
        names = [name for name, _ in candidate]
        if "" in names or len(set(names)) != len(names) or sorted(candidate) == original:
            continue
        if signed_string(candidate) != signed_string(original):
            continue
        # The proof is twilio-python's own validator, not our reading of it.
        if sign(TOKEN, URL, dict(candidate)) == wanted:
            found[tuple(sorted(candidate))] = candidate
    return list(found.values())


def keeps_the_message(candidate: Form, form: dict[str, str]) -> bool:
    """Does the re-cut hold the shaped fields exactly as the original (the same message)?"""
    return all(
        [value for name, value in candidate if name == field] == [form[field]] for field in SHAPED
    )


def metric(client: FlaskClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def processed(client: FlaskClient) -> float:
    """Messages answered anew (cache hits and misses): a refused or repeated one adds none."""
    return metric(client, "clara_cache_hits_total") + metric(client, "clara_cache_misses_total")


def post(client: FlaskClient, form: Form | dict[str, str], signature: str) -> int:
    pairs = list(form.items()) if isinstance(form, dict) else form
    response = client.post(
        "/webhook",
        data=MultiDict(pairs),
        headers={"X-Twilio-Signature": signature},
        base_url=PUBLIC,
    )
    return response.status_code


GENUINE = whatsapp_form("necesito el ingreso minimo vital", sid="SM" + "0123456789abcdef" * 2)


def test_the_recuts_exist_and_keep_the_signature() -> None:
    """The attack is real: many forms, the issue's example among them, one signature."""
    found = recuts(GENUINE)
    assert len(found) >= 20
    sid = GENUINE["MessageSid"]
    assert any(dict(c).get("MessageSid") == sid + "NumMedia0" for c in found)
    assert any(not keeps_the_message(c, GENUINE) for c in found)


def test_every_recut_is_refused_or_the_same_message(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    signature = sign(TOKEN, URL, GENUINE)
    assert post(client, GENUINE, signature) == 200  # the genuine form is a message
    assert processed(client) == 1
    new_messages, repeats = [], []
    for candidate in recuts(GENUINE):
        status = post(client, candidate, signature)
        (repeats if keeps_the_message(candidate, GENUINE) else new_messages).append(
            (status, candidate)
        )
    # A re-cut with other shaped fields: refused, 400 (a field not as Twilio sends it).
    assert new_messages and {status for status, _ in new_messages} == {400}
    # One that keeps them (NumMedia=0 as NumMedia0=, WaId=34... as WaId3=4...) is the message
    # again: answered from memory while its MessageSid is remembered (the README's limit).
    assert {status for status, _ in repeats} <= {200}
    assert processed(client) == 1, "a re-cut was answered as a new message"
    refused = metric(client, "clara_webhook_form_rejections_total")
    assert refused == len(new_messages)
    assert metric(client, "clara_webhook_duplicates_total") == len(repeats)


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("MessageSid", "SM" + "0" * 31, "message_sid"),
        ("MessageSid", "SM" + "0" * 32 + "N", "message_sid"),
        ("MessageSid", "CA" + "0" * 32, "message_sid"),
        ("MessageSid", "SM" + "g" * 32, "message_sid"),
        ("MessageSid", "SM" + "٣" * 32, "message_sid"),  # not ASCII hex
        ("AccountSid", "AC" + "0" * 33, "account_sid"),
        ("From", "+34612345678", "from"),
        ("From", "whatsapp:+34612345678\n", "from"),
        ("From", "whatsapp:+3461234567812345", "from"),  # 17 digits: no E.164 number
        ("To", "whatsapp:34612345678", "to"),
        ("To", "", "to"),
    ],
)
def test_a_signed_field_not_as_twilio_sends_it_is_400(
    make_app: Callable[..., Flask], field: str, value: str, reason: str
) -> None:
    client = make_app().test_client()
    form = {**GENUINE, field: value}
    response = client.post(
        "/webhook",
        data=form,
        headers={"X-Twilio-Signature": sign(TOKEN, URL, form)},
        base_url=PUBLIC,
    )
    assert response.status_code == 400
    assert response.get_data(as_text=True) == f"Bad Request: {field} is not as Twilio sends it\n"
    assert metric(client, "clara_webhook_form_rejections_total", reason=reason) == 1
    assert processed(client) == 0


def test_a_field_sent_twice_is_400(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    pairs = [*GENUINE.items(), ("MessageSid", "SM" + "f" * 32)]
    status = post(client, pairs, sign(TOKEN, URL, MultiDict(pairs)))
    assert status == 400
    assert processed(client) == 0


def test_another_account_is_403(make_app: Callable[..., Flask]) -> None:
    client = make_app().test_client()
    form = {**GENUINE, "AccountSid": "AC" + "1" * 32}
    response = client.post(
        "/webhook",
        data=form,
        headers={"X-Twilio-Signature": sign(TOKEN, URL, form)},
        base_url=PUBLIC,
    )
    assert response.status_code == 403
    # The words opsctl's webhook check reads to name the setting to compare, not the token.
    assert ACCOUNT_REFUSED in response.get_data(as_text=True)
    assert "AC" + "1" * 32 not in response.get_data(as_text=True)
    assert metric(client, "clara_webhook_form_rejections_total", reason="other_account") == 1
    assert processed(client) == 0


def test_a_development_bot_without_an_account_takes_any_account(
    make_app: Callable[..., Flask],
) -> None:
    env = {
        "TWILIO_AUTH_TOKEN": "",
        "TWILIO_ACCOUNT_SID": "",
        "DEV_ALLOW_UNSIGNED_WEBHOOK": "true",
        "FLASK_ENV": "development",
    }
    client = make_app(env).test_client()
    assert post(client, {**GENUINE, "AccountSid": "AC" + "1" * 32}, "") == 200
    assert post(client, {**GENUINE, "MessageSid": "SM1"}, "") == 400  # shapes still hold


def test_the_issues_recut_is_refused_under_gunicorn(start_bot: Callable[..., DevServer]) -> None:
    """The request the issue replayed, over HTTP to the image's command; nothing logged of it."""
    server = start_bot({"OBSERVABILITY_ON": "false"})
    signature = sign(TOKEN, URL, GENUINE)
    recut = [
        (name, value + "NumMedia0" if name == "MessageSid" else value)
        for name, value in GENUINE.items()
        if name != "NumMedia"
    ]
    assert sign(TOKEN, URL, dict(recut)) == signature
    headers = {"X-Twilio-Signature": signature}
    genuine = httpx.post(
        server.url + "/webhook", data=GENUINE, headers=headers, timeout=10, verify=TLS
    )
    again = httpx.post(
        server.url + "/webhook", data=dict(recut), headers=headers, timeout=10, verify=TLS
    )
    assert (genuine.status_code, again.status_code) == (200, 400)
    server.stop()
    assert not any("NumMedia0" in line for line in server.lines)
    assert sum("not as Twilio sends it" in line for line in server.lines) == 1
    assert BASE_ENV["TWILIO_ACCOUNT_SID"] not in "\n".join(server.lines)
