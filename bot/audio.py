"""Serve the pre-recorded answers under /static/cache/, and tell a real MP3 from anything else."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, current_app, send_from_directory
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

DEFAULT_AUDIO_DIR = Path(__file__).parent / "static" / "cache"
AUDIO_ROUTE_PREFIX = "/static/cache"

blueprint = Blueprint("audio", __name__)


def looks_like_mp3(head: bytes) -> bool:
    """True when the bytes start with an ID3v2 tag or an MPEG audio frame sync."""
    if head[:3] == b"ID3":
        return True
    # Frame sync: eleven set bits, then a version and layer that are not 'reserved'.
    return (
        len(head) >= 2
        and head[0] == 0xFF
        and head[1] & 0xE0 == 0xE0
        and (head[1] >> 3) & 0b11 != 0b01
        and (head[1] >> 1) & 0b11 != 0b00
    )


@blueprint.route(f"{AUDIO_ROUTE_PREFIX}/<path:name>", methods=["GET", "HEAD"])
def serve_audio(name: str) -> ResponseReturnValue:
    """One MP3, with Content-Length, ETag and Range handled by werkzeug's send_file."""
    if not name.endswith(".mp3") or "/" in name or "\\" in name:
        raise NotFound()
    # send_from_directory refuses '..' and absolute paths with a 404 (werkzeug safe_join).
    response = send_from_directory(
        current_app.config["AUDIO_DIR"],
        name,
        mimetype="audio/mpeg",
        conditional=True,
        etag=True,
        max_age=3600,
    )
    response.headers["Accept-Ranges"] = "bytes"
    return response


def init_app(app: Flask) -> None:
    """Register the audio route."""
    app.config.setdefault("AUDIO_DIR", str(DEFAULT_AUDIO_DIR))
    app.register_blueprint(blueprint)
