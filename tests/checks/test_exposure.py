"""A bot that hands out its auth token FAILs the check that asked, and the token is in no output.

Real HTTP: the fault-injecting look-alike on 127.0.0.1 echoes the token (or a signature derived
from it) in one place per fault; `opsctl verify` runs against it with every output on.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from evidence.redact import REDACTED, forms
from evidence.store import list_bundles, verify_bundle
from evidence.transcripts import EXCERPT_BYTES
from opsctl.cli import main
from tests.checks.test_faults import check_of
from tests.fakes.bot_target import STRADDLE_AT

# Slash, plus, quote, backslash, equals and ampersand: as is, URL-encoded, JSON-escaped and
# HTML-escaped, it is four different strings, and each must be caught.
LEAKY_TOKEN = 's3cr/et+tok"en\\0123456789=&'  # pragma: allowlist secret
TOKEN_ENV = "FAKE_TWILIO_TOKEN"


def encodings(secret: str) -> set[str]:
    """Every way the value could be written: the redactor's forms and what HTML/XML make of it."""
    return forms(secret) | {html.escape(secret, quote=False), secret.replace("&", "&amp;")}


def halves(secret: str) -> set[str]:
    """Both halves of every encoding: what a cut through the middle of it would keep."""
    return {part for e in encodings(secret) for part in (e[: len(e) // 2], e[len(e) // 2 :])}


@pytest.fixture
def leaky_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty .env; the token is exported (what is exported wins, and it needs no quoting)."""
    monkeypatch.setenv(TOKEN_ENV, LEAKY_TOKEN)
    path = tmp_path / "empty.env"
    path.write_text("")
    return path


@pytest.fixture
def leaky_target(target: Callable[..., str]) -> Callable[[str], str]:
    """A fake bot whose auth token is LEAKY_TOKEN, with one fault."""
    return lambda fault: target(fault, token=LEAKY_TOKEN)


def run_verify(
    config: Path, env_file: Path, out_dir: Path, capsys: pytest.CaptureFixture[str], *extra: str
) -> tuple[int, str, str]:
    """`opsctl verify --env fault` with a JUnit file and a bundle under out_dir."""
    code = main(
        [
            "verify",
            "--env",
            "fault",
            "--config",
            str(config),
            "--env-file",
            str(env_file),
            "--junit",
            str(out_dir / "verify.xml"),
            "--evidence-dir",
            str(out_dir / "evidence"),
            *extra,
        ]
    )
    out, err = capsys.readouterr()
    return code, out, err


def files_under(folder: Path) -> Iterator[Path]:
    return (p for p in sorted(folder.rglob("*")) if p.is_file())


def assert_nowhere(secret: str, texts: dict[str, str], folder: Path, skip: set[Path]) -> None:
    """No encoding of the secret, nor half of one, in the texts or in any file under folder."""
    needles = encodings(secret) | {h for h in halves(secret) if len(h) >= 8}
    for name, text in texts.items():
        for needle in needles:
            assert needle not in text, f"{needle!r} in {name}"
    for path in files_under(folder):
        if path in skip:
            continue
        data = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in data, f"{needle!r} in {path.relative_to(folder)}"


EXPOSURES = [
    (
        "token_in_health",
        "health",
        f"the bot exposes {TOKEN_ENV} in GET /health body at components.debug",
        "PASS",
    ),
    ("token_in_text_health", "health", f"the bot exposes {TOKEN_ENV} in GET /health body", "FAIL"),
    (
        "token_in_header",
        "webhook",
        f"the bot exposes {TOKEN_ENV} in POST /webhook header X-Debug",
        "PASS",
    ),
    ("token_straddles_cut", "metrics", f"the bot exposes {TOKEN_ENV} in GET /metrics body", "PASS"),
]


@pytest.mark.parametrize(("fault", "check_id", "reason", "otherwise"), EXPOSURES)
def test_an_exposed_token_fails_its_check_and_is_in_no_output(
    leaky_target: Callable[[str], str],
    fault_config: Callable[..., Path],
    leaky_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    fault: str,
    check_id: str,
    reason: str,
    otherwise: str,
) -> None:
    config = fault_config(leaky_target(fault))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, err = run_verify(config, leaky_env, out_dir, capsys, "--json")
    run = json.loads(out)
    check = check_of(run, check_id)
    assert check["status"] == "FAIL"
    assert check["reason"] == reason
    assert check["hint"] == (
        f"rotate {TOKEN_ENV} now (whoever asked has it), then remove it from the bot's responses"
    )
    assert check["details"]["exposures"] == [reason.removeprefix("the bot exposes ")]
    assert check["details"]["without_exposure"]["status"] == otherwise
    others = [c for g in run["gates"] for c in g["checks"] if c["id"] != check_id]
    assert all(c["status"] in ("PASS", "SKIP") for c in others), others
    assert code == 1
    assert err == ""

    plain_code, plain, plain_err = run_verify(config, leaky_env, out_dir, capsys)
    assert plain_code == 1 and plain_err == ""
    assert f"FAIL    {check_id}" in plain and reason in plain

    bundles = list_bundles(out_dir / "evidence")
    assert len(bundles) == 2  # neither refused by the leak scan
    for bundle in bundles:
        assert verify_bundle(bundle.path) == []
    junit = (out_dir / "verify.xml").read_text()
    assert reason in junit
    assert_nowhere(
        LEAKY_TOKEN,
        {"--json stdout": out, "stderr": err + plain_err, "text stdout": plain, "junit": junit},
        tmp_path,
        skip={config},
    )


def transcript_of(bundle_dir: Path, check: str) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (bundle_dir / "transcripts" / f"{check.replace('/', '--')}.json").read_text()
    )
    return data


def test_a_token_across_the_cut_is_redacted_whole_before_cutting(
    leaky_target: Callable[[str], str],
    fault_config: Callable[..., Path],
    leaky_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert STRADDLE_AT == EXCERPT_BYTES  # the fake cuts the token where the recorder cuts
    config = fault_config(leaky_target("token_straddles_cut"))
    run_verify(config, leaky_env, tmp_path, capsys, "--json", "--only", "P2.2")
    (bundle,) = list_bundles(tmp_path / "evidence")
    (exchange,) = transcript_of(bundle.path, "P2.2/metrics")
    body = exchange["response_body"]
    start = STRADDLE_AT - len(LEAKY_TOKEN) // 2
    # The token became [REDACTED] before the cut: whole where it began, no half of it after.
    assert body[start : start + len(REDACTED)] == REDACTED
    assert body[EXCERPT_BYTES:].startswith("... [") and body.endswith(" more bytes]")
    assert_nowhere(LEAKY_TOKEN, {"excerpt": body}, bundle.path, skip=set())


def test_a_signature_echoed_back_is_redacted_but_not_an_exposure(
    target: Callable[..., str],
    fault_config: Callable[..., Path],
    leaky_env: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.fakes.bot_target import TargetSettings, serve_target

    settings = TargetSettings(
        token=LEAKY_TOKEN, public_url="https://bot.example.org", fault="signature_echo"
    )
    with serve_target(settings) as url:
        config = fault_config(url)
        _, out, err = run_verify(config, leaky_env, tmp_path, capsys, "--json")
    run = json.loads(out)
    webhook = check_of(run, "webhook")
    assert webhook["status"] == "PASS", webhook
    assert "exposures" not in webhook["details"]
    assert REDACTED in webhook["details"]["cases"]["signed"]["body"]
    checks = [c for g in run["gates"] for c in g["checks"]]
    assert all(c["status"] in ("PASS", "SKIP") for c in checks), checks
    assert err == ""
    # signed (one per audio question: es, fr), tampered, signed for http://
    assert len(settings.signatures) == 5
    for signature in settings.signatures:
        assert_nowhere(signature, {"stdout": out, "stderr": err}, tmp_path, skip=set())


def test_where_a_secret_is_named_in_a_response() -> None:
    import httpx

    from evidence.transcripts import find_exposures

    body = json.dumps(
        {
            "items": [{"ok": 1}, {"note": "encoded " + quote(LEAKY_TOKEN, safe="")}],
            "fine": "nothing here",
        }
    ).encode()
    headers = httpx.Headers([("Content-Type", "application/json"), ("X-Echo", LEAKY_TOKEN)])
    found = find_exposures([(TOKEN_ENV, LEAKY_TOKEN)], "GET", "/status", headers, body)
    assert [str(e) for e in found] == [
        f"{TOKEN_ENV} in GET /status header X-Echo",
        f"{TOKEN_ENV} in GET /status body at items[1].note",
    ]
    whole = json.dumps(LEAKY_TOKEN).encode()  # a JSON string body: the whole body is it
    assert [e.where for e in find_exposures([("T", LEAKY_TOKEN)], "GET", "/", headers, whole)] == [
        "header X-Echo",
        "body",
    ]
    clean = find_exposures([("T", LEAKY_TOKEN)], "GET", "/", httpx.Headers(), b'{"a": "b"}')
    assert clean == []
    too_short = find_exposures([("T", "abc")], "GET", "/", httpx.Headers(), b"abc abc")
    assert too_short == []


def test_a_token_only_in_env_file_is_known_and_ordinary_values_are_not_secrets(
    leaky_target: Callable[[str], str],
    fault_config: Callable[..., Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The token in .env (not exported) is still one the runner looks for; a variable that is
    no secret (here it equals the target's host) is never redacted from the evidence."""
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    monkeypatch.setenv("SOME_ORDINARY_SETTING", "127.0.0.1")
    env_file = tmp_path / ".env"
    env_file.write_text(f"{TOKEN_ENV}={json.dumps(LEAKY_TOKEN)}\n")
    config = fault_config(leaky_target("token_in_health"))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, out, _ = run_verify(config, env_file, out_dir, capsys, "--json", "--only", "P2.2")
    assert check_of(json.loads(out), "health")["reason"].startswith(f"the bot exposes {TOKEN_ENV}")
    (bundle,) = list_bundles(out_dir / "evidence")
    assert json.loads((bundle.path / "run.json").read_text())["target"].startswith(
        "http://127.0.0.1:"
    )
    assert code == 1
