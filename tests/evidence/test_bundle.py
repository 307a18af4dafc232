"""Bundles: whole or absent, never a secret, tampering caught, summary and status golden."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl

import pytest

from bot.signature import sign
from evidence.bundle import BundleInputs, EvidenceError, EvidenceWriter
from evidence.formats.markdown import render_summary
from evidence.phase_status import NOT_RUN, GateRow, render_phase_status
from evidence.redact import REDACTED, Redactor
from evidence.signoffs import Signoff
from evidence.store import list_bundles, verify_bundle
from opsctl.devserver import DevServer
from tests.conftest import BASE_ENV, OPSCTL, PUBLIC, REPO_ROOT, TOKEN, config_copy
from tests.conftest import run_opsctl as opsctl
from tests.evidence.test_formats import GOLDEN, sample_run

SIGNOFFS = (
    Signoff("sign", "P2.5", "Ana", "2026-11-21T09:00:00Z", "demo rehearsed", "video in Drive"),
    Signoff("waive", "P2.3", "PM", "2026-11-21T10:00:00Z", "", "keep-alive | lands with issue 6"),
)


def copy_config(tmp_path: Path) -> Path:
    """The repository's opsctl.toml in a folder of the test's own (evidence goes there)."""
    return config_copy(tmp_path)


def inputs(**changes: object) -> BundleInputs:
    base = BundleInputs(
        run=sample_run(),
        tool_version="0.1.0",
        git_commit="abc1234",
        ended_at="2026-11-22T10:00:13Z",
        signoffs=SIGNOFFS,
    )
    return BundleInputs(**{**base.__dict__, **changes})  # type: ignore[arg-type]


def fixed_now() -> datetime:
    return datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


# --- golden files -------------------------------------------------------------------------


def test_summary_md_golden() -> None:
    text = render_summary(
        sample_run(),
        {"webhook": "unsigned 403; signed 200"},
        {"P2.1/webhook": "transcripts/P2.1--webhook.json"},
        SIGNOFFS,
    )
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "summary.md").write_text(text)
    assert text == (GOLDEN / "summary.md").read_text()


def test_phase_status_golden_and_stable() -> None:
    rows = {
        "render": [
            GateRow(
                "P2.1",
                "Twilio pipeline",
                "FAIL",
                "2026-11-20",
                "2026-11-22T09:00:00Z",
                "evidence-out/a/summary.md",
            ),
            GateRow("P2.2", "Render deploy", NOT_RUN, "", "", ""),
            GateRow(
                "P2.3",
                "Keep-alive",
                "DOCUMENTED-BLOCKED",
                "2026-11-21",
                "2026-11-21T08:00:00Z",
                "evidence-out/b/summary.md",
            ),
        ],
        "local": [
            GateRow(
                "P2.1",
                "Twilio pipeline",
                "PASS",
                "2026-11-22",
                "2026-11-22T10:00:00Z",
                "evidence-out/c/summary.md",
            )
        ],
    }
    text = render_phase_status(rows, SIGNOFFS)
    if os.environ.get("UPDATE_GOLDEN"):
        (GOLDEN / "PHASE-STATUS.md").write_text(text)
    assert text == (GOLDEN / "PHASE-STATUS.md").read_text()
    assert render_phase_status(dict(reversed(rows.items())), SIGNOFFS) == text


# --- writing ---------------------------------------------------------------------------------


def test_bundle_has_every_file_and_a_manifest(tmp_path: Path) -> None:
    folder = EvidenceWriter(tmp_path, now=fixed_now).write(inputs(), secrets=[])
    assert folder.name == "20261122T100000Z_render"
    names = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert names == ["MANIFEST.sha256", "junit.xml", "report.html", "run.json", "summary.md"]
    run = json.loads((folder / "run.json").read_text())
    assert run["schema"] == "opsctl.evidence/v1"
    assert run["tool"] == {"name": "opsctl", "version": "0.1.0"}
    assert (run["git_commit"], run["outcome"], run["ended_at"]) == (
        "abc1234",
        "completed",
        "2026-11-22T10:00:13Z",
    )
    assert run["signoffs"][1]["kind"] == "waive"
    assert verify_bundle(folder) == []
    again = EvidenceWriter(tmp_path, now=fixed_now).write(inputs(), secrets=[])
    assert again.name == "20261122T100000Z_render-2"


def test_secrets_are_redacted_in_every_form(tmp_path: Path) -> None:
    secret = "s3cr3t/token+value=="  # pragma: allowlist secret
    run = sample_run()
    text = (
        f"token {secret} url {secret.replace('/', '%2F').replace('+', '%2B').replace('=', '%3D')}"
    )
    folder = EvidenceWriter(tmp_path, now=fixed_now).write(
        inputs(run=run, reports={"lint.txt": text}), secrets=[secret]
    )
    report = (folder / "reports" / "lint.txt").read_text()
    assert report == f"token {REDACTED} url {REDACTED}"
    assert Redactor([secret]).leaks(folder) == []


def test_a_secret_that_survives_aborts_the_write(tmp_path: Path) -> None:
    class Leaky(Redactor):
        def redact(self, text: str) -> str:  # a redaction bug, simulated
            return text

    def leaky(secrets: Iterable[str]) -> Redactor:
        return Leaky(secrets)

    writer = EvidenceWriter(tmp_path, now=fixed_now, redactor=leaky)
    with pytest.raises(EvidenceError, match=r"a secret survived redaction in reports/notes.txt"):
        writer.write(
            inputs(reports={"notes.txt": "the token is hunter2-secret"}), secrets=["hunter2-secret"]
        )
    assert list(tmp_path.iterdir()) == []


def test_tampering_with_any_byte_is_caught(tmp_path: Path) -> None:
    folder = EvidenceWriter(tmp_path, now=fixed_now).write(inputs(), secrets=[])
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != "MANIFEST.sha256"):
        original = path.read_bytes()
        path.write_bytes(bytes([original[0] ^ 0x01]) + original[1:])
        assert verify_bundle(folder) == [f"changed: {path.relative_to(folder).as_posix()}"]
        path.write_bytes(original)
    assert verify_bundle(folder) == []


# --- end to end ------------------------------------------------------------------------------


def test_verify_local_leaves_a_bundle_evidence_verify_accepts(tmp_path: Path) -> None:
    config = copy_config(tmp_path)
    done = opsctl("verify", "--env", "local", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1].startswith("evidence: ")
    checked = opsctl("evidence", "verify", "latest", "--config", str(config))
    assert checked.returncode == 0, checked.stdout
    assert checked.stdout.startswith("OK: ") and "files match MANIFEST.sha256" in checked.stdout
    status = (tmp_path / "PHASE-STATUS.md").read_text()
    assert "| P2.1 Twilio pipeline | PASS |" in status
    listed = opsctl("evidence", "list", "--config", str(config)).stdout
    assert "_local  local    PASS with warnings" in listed
    bundle = list_bundles(tmp_path / "evidence-out")[0].path
    assert {p.name for p in (bundle / "transcripts").iterdir()} == {
        "P2.1--webhook.json",
        "P2.2--audio.json",
        "P2.2--health.json",
        "P2.2--metrics.json",
        "P2.2--warmup.json",
        "wake.json",  # the run's one wake of the target, before any check
    }


def test_no_file_of_any_bundle_holds_the_token_or_a_signature(
    tmp_path: Path, start_bot: Callable[..., DevServer]
) -> None:
    """The real bot with a known TWILIO_AUTH_TOKEN; then search every byte of every bundle."""
    # Its own MP3s (not the base environment's CDN): the webhook check fetches the reply's audio.
    server = start_bot({"AUDIO_BASE_URL": ""})
    config = config_copy(tmp_path)
    config.write_text(
        config.read_text()
        + f'\n[environments.known]\nbase_url = "{server.url}"\npublic_url = "{PUBLIC}"\n'
        "require_https = false\n"
    )
    env_file = tmp_path / ".env"
    # The bot answers only messages for its own account (as Twilio addresses them).
    env_file.write_text(
        f"TWILIO_AUTH_TOKEN={TOKEN}\nTWILIO_ACCOUNT_SID={BASE_ENV['TWILIO_ACCOUNT_SID']}\n"
    )
    for _ in range(2):
        done = opsctl(
            "verify",
            "--env",
            "known",
            "--config",
            str(config),
            "--env-file",
            str(env_file),
            "--only",
            "P2.1",
        )
        assert done.returncode == 0, done.stdout + done.stderr
    forbidden = {TOKEN}
    for bundle in list_bundles(tmp_path / "evidence-out"):
        for exchange in json.loads(
            (bundle.path / "transcripts" / "P2.1--webhook.json").read_text()
        ):
            form = dict(parse_qsl(exchange["request_body"]))
            for url in (f"{PUBLIC}/webhook", f"http://{PUBLIC.split('://')[1]}/webhook"):
                forbidden.add(sign(TOKEN, url, form))
            assert exchange["request_headers"].get("x-twilio-signature", REDACTED) == REDACTED
    assert len(forbidden) > 8
    files = [p for p in (tmp_path / "evidence-out").rglob("*") if p.is_file()]
    files.append(tmp_path / "PHASE-STATUS.md")
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        for value in forbidden:
            assert value.encode() not in data, (path, value)


def test_sigkill_mid_write_leaves_no_complete_looking_bundle(tmp_path: Path) -> None:
    """Kill the run the moment its hidden folder appears; what is listed must be untouched."""
    config = copy_config(tmp_path)
    first = opsctl("verify", "--env", "local", "--config", str(config), "--only", "P2.1")
    assert first.returncode == 0
    root = tmp_path / "evidence-out"
    before = opsctl("evidence", "list", "--config", str(config)).stdout
    killed_while_partial = 0
    for _ in range(3):
        process = subprocess.Popen(
            [*OPSCTL, "verify", "--env", "local", "--config", str(config), "--only", "P2.1"],
            cwd=REPO_ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if any(p.name.startswith(".partial-") for p in root.iterdir()):
                os.killpg(process.pid, signal.SIGKILL)
                killed_while_partial += 1
                break
            time.sleep(0.0005)
        process.wait(30)
        for bundle in list_bundles(root):
            assert verify_bundle(bundle.path) == [], bundle.name
        listed = opsctl("evidence", "list", "--config", str(config)).stdout
        assert listed.endswith(before), "older bundles must be listed unchanged"
    assert killed_while_partial >= 1, "never caught a bundle being written"


def test_redactor_ignores_values_too_short_to_be_secrets() -> None:
    assert Redactor(["ab", ""]).redact("ab abc") == "ab abc"
