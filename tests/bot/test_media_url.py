"""Where the <Media> URL points: AUDIO_BASE_URL, else the public base URL's /static/cache."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from tests.conftest import PUBLIC, message_sid, signed_headers, whatsapp_form


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"AUDIO_BASE_URL": "https://cdn.example.org/a/"}, "https://cdn.example.org/a/imv_fr.mp3"),
        ({"AUDIO_BASE_URL": ""}, f"{PUBLIC}/static/cache/imv_fr.mp3"),
    ],
)
def test_media_url(make_app: Callable[..., Flask], env: dict[str, str], expected: str) -> None:
    form = whatsapp_form("je veux le revenu minimum vital", sid=message_sid("media"))
    response = make_app(env).test_client().post("/webhook", data=form, headers=signed_headers(form))
    assert f"<Media>{expected}</Media>" in response.get_data(as_text=True)
