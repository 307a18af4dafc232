"""No secret leaves the check layer: the runner redacts every result, so every output is clean.

A check of our own plants secrets (configured, the target's token, a derived value) everywhere a
result can hold text; the run it makes is then given to every renderer there is (found, not
listed: a new format is covered the day it is added), to the console, to Notion's rows and to an
evidence writer that knows no secret at all, and none of them may show any form of any secret.
"""

from __future__ import annotations

import asyncio
import html
import importlib
import inspect
import io
import json
import pkgutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

import evidence.formats
from checks.interface import Check, CheckContext, CheckResult, Expectations, Status
from evidence.bundle import BundleInputs, EvidenceError, EvidenceWriter
from evidence.redact import REDACTED, Redactor, cut_note, forms
from evidence.transcripts import EXCERPT_BYTES, Exchange, excerpt
from opsctl.config import Gate
from opsctl.results import RunResult
from opsctl.runner import Runner
from tests.loopback import TLS

TOKEN = 'tw/il+io"token\\0123456789'  # pragma: allowlist secret
CONFIGURED = "notion-secret-abcdef0123456789"  # pragma: allowlist secret
DERIVED = "c2lnbmF0dXJlLW9mLXRoZS1yZXF1ZXN0=="  # pragma: allowlist secret
SECRETS = (TOKEN, CONFIGURED, DERIVED)


def needles(secret: str) -> set[str]:
    """Every encoding of the secret, and what HTML and XML make of it."""
    return forms(secret) | {html.escape(secret, quote=False), secret.replace("&", "&amp;")}


def assert_clean(text: str, where: str) -> None:
    for secret in SECRETS:
        for needle in needles(secret):
            assert needle not in text, f"a form of a secret ({needle!r}) in {where}"


class Planting(Check):
    """Puts the secrets in every place a result has text, and one in a tool report."""

    id = "planting"
    title = "plants secrets"
    needs_target = False  # scripted: no bot to wake

    async def run(self, ctx: CheckContext) -> CheckResult:
        ctx.derived_secrets.add(DERIVED)
        ctx.reports["planted.txt"] = f"report quoting {TOKEN}"
        return self.result(
            Status.WARN,
            f"saw {TOKEN} and {quote(CONFIGURED, safe='')} and {DERIVED!r}",
            f"hint with {json.dumps(TOKEN)}",
            details={
                "nested": [{"deep": {"deeper": f"x{CONFIGURED}y"}}, (TOKEN, 1)],
                TOKEN: "a key",
                "derived": DERIVED,
                "number": 3,
            },
        )


class Crashing(Check):
    """Crashes with the token in its exception: the runner's ERROR quotes it, then redacts it."""

    id = "crashing"
    title = "crashes"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        raise RuntimeError(f"could not parse {TOKEN}")


def planted_run() -> tuple[RunResult, list[CheckResult], dict[str, str]]:
    """(the run, every result the runner's events carried, the tool reports) of the two checks."""
    events: list[CheckResult] = []
    reports: dict[str, str] = {}

    def on_event(gate_id: str, check_id: str, result: CheckResult | None) -> None:
        if result is not None:
            events.append(result)

    async def go() -> RunResult:
        async with httpx.AsyncClient(verify=TLS) as client:
            ctx = CheckContext(
                "test",
                "http://127.0.0.1:9",
                "http://127.0.0.1:9",
                Expectations(),
                client,
                {"TWILIO_AUTH_TOKEN": TOKEN},
                reports=reports,
                known_secrets=frozenset({("NOTION_TOKEN", CONFIGURED)}),
            )
            checks: dict[str, Check] = {"planting": Planting(), "crashing": Crashing()}
            gates = [
                Gate(id="G1", title="planted", checks=("planting", "crashing")),
                Gate(id="G2", title="manual", checks=(), manual=(f"checked {CONFIGURED} by hand",)),
            ]
            return await Runner(checks, on_event=on_event).run(gates, ctx)

    return asyncio.run(go()), events, reports


def test_the_runner_redacts_every_result_as_it_produces_it() -> None:
    run, events, reports = planted_run()
    planting = next(r for r in run.gates[0].checks if r.check_id == "planting")
    assert planting.reason == f"saw {REDACTED} and {REDACTED} and '{REDACTED}'"
    assert planting.hint == f'hint with "{REDACTED}"'
    assert planting.details == {
        "nested": [{"deep": {"deeper": f"x{REDACTED}y"}}, (REDACTED, 1)],
        REDACTED: "a key",
        "derived": REDACTED,
        "number": 3,
    }
    crashing = next(r for r in run.gates[0].checks if r.check_id == "crashing")
    assert crashing.reason == f"check crashed: RuntimeError: could not parse {REDACTED}"
    assert {e.check_id for e in events} == {"planting", "crashing"}
    for result in (*events, *run.gates[0].checks, *run.gates[1].checks):
        assert_clean(repr(result), f"the result of {result.check_id}")
    assert_clean(run.gates[0].reason, "the gate's reason")
    assert reports == {"planted.txt": f"report quoting {REDACTED}"}


def _renderers() -> Iterator[tuple[str, Callable[..., Any]]]:
    """Every public function of evidence/formats whose first parameter is the run."""
    for info in pkgutil.iter_modules(evidence.formats.__path__):
        module = importlib.import_module(f"evidence.formats.{info.name}")
        for name, function in inspect.getmembers(module, inspect.isfunction):
            if function.__module__ != module.__name__ or name.startswith("_"):
                continue
            parameters = list(inspect.signature(function).parameters)
            if parameters[:1] == ["run"]:
                yield f"{info.name}.{name}", function


# What the renderers' other required parameters get; a new one fails below until it is added.
ARGUMENTS: dict[str, Any] = {"definitions": {}, "evidence_links": {}}


def test_every_format_is_found() -> None:
    found = {name for name, _ in _renderers()}
    expected = {"html.render_html", "json_format.render_json", "junit.render_junit"}
    assert expected | {"markdown.render_summary", "text.render_text"} <= found


@pytest.mark.parametrize(("name", "render"), list(_renderers()))
def test_every_format_shows_only_redacted_results(name: str, render: Callable[..., Any]) -> None:
    run, _, _ = planted_run()
    required = [
        p
        for p in list(inspect.signature(render).parameters.values())[1:]
        if p.default is inspect.Parameter.empty
    ]
    unknown = [p.name for p in required if p.name not in ARGUMENTS]
    assert not unknown, f"{name} needs {unknown}: add them to ARGUMENTS so it is checked too"
    output = render(run, **{p.name: ARGUMENTS[p.name] for p in required})
    text = output if isinstance(output, str) else json.dumps(output, ensure_ascii=False)
    assert REDACTED in text or html.escape(REDACTED) in text, f"{name} shows no result?"
    assert_clean(text, name)


def test_the_terminal_table_shows_only_redacted_results() -> None:
    from rich.console import Console

    from opsctl.console import print_run

    run, _, _ = planted_run()
    out = io.StringIO()
    print_run(run, Console(file=out, force_terminal=True, width=2000))
    assert REDACTED in out.getvalue()
    assert_clean(out.getvalue(), "the rich table")


def test_notion_rows_show_only_redacted_results() -> None:
    from evidence.formats.json_format import as_data
    from opsctl.notion.service import run_changes

    run, _, _ = planted_run()
    rows = run_changes(as_data(run), "run-1", "", secrets=())  # knowing no secret itself
    text = json.dumps([row.__dict__ for row in rows], ensure_ascii=False, default=str)
    assert REDACTED in text
    assert_clean(text, "the Notion rows")


def test_a_bundle_is_clean_even_from_a_writer_that_knows_no_secret(tmp_path: Path) -> None:
    run, _, reports = planted_run()
    inputs = BundleInputs(run, "0.1.0", "abc1234", "2026-11-22T10:00:13Z", reports=reports)
    folder = EvidenceWriter(tmp_path).write(inputs, secrets=())
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        assert_clean(path.read_text(encoding="utf-8"), str(path.relative_to(folder)))


# --- transcripts: redact, then cut; and the scan that catches the other order ---------------


def test_an_excerpt_is_redacted_before_it_is_cut() -> None:
    secret = TOKEN.encode()
    body = b"x" * (EXCERPT_BYTES - 10) + secret + b"y" * 100
    text = excerpt(body, "text/plain", Redactor([TOKEN]))
    assert text.startswith("x" * (EXCERPT_BYTES - 10) + REDACTED)
    assert TOKEN[:10] not in text
    # Cut first and redacted after, the first ten bytes would have stayed.
    assert Redactor([TOKEN]).redact(excerpt(body, "text/plain")).count(TOKEN[:10]) == 1


def test_a_binary_excerpt_shows_no_secret_in_its_first_bytes() -> None:
    body = b"\x00\x01" + CONFIGURED.encode() + b"\xff" * 50
    text = excerpt(body, "application/octet-stream", Redactor([CONFIGURED]))
    assert CONFIGURED.encode()[:14].hex() not in text
    assert text.startswith(f"<{len(body)} bytes application/octet-stream, starts 0001")


def test_the_leak_scan_finds_a_secret_cut_in_half(tmp_path: Path) -> None:
    redactor = Redactor([CONFIGURED])
    (tmp_path / "half.json").write_text(json.dumps({"body": "ok " + CONFIGURED[:12] + cut_note(9)}))
    (tmp_path / "short.txt").write_text("ok " + CONFIGURED[:5] + cut_note(9))  # too short to tell
    (tmp_path / "uncut.txt").write_text("ok " + CONFIGURED[:12] + " and more")  # not at a cut
    (tmp_path / "redacted.txt").write_text("ok " + REDACTED[:6] + cut_note(9))
    assert redactor.leaks(tmp_path) == ["half.json"]


def test_a_transcript_cut_through_a_secret_is_never_written(tmp_path: Path) -> None:
    """An exchange recorded outside any check (no watch, so not redacted when it was cut)."""
    run, _, _ = planted_run()
    body = excerpt(b"x" * (EXCERPT_BYTES - 8) + CONFIGURED.encode() + b"!" * 10, "text/plain")
    exchange = Exchange("", "GET", "http://127.0.0.1/x", {}, "", 200, {}, body, 1.0)
    inputs = BundleInputs(run, "0.1.0", "abc1234", "2026-11-22T10:00:13Z", exchanges=[exchange])
    with pytest.raises(EvidenceError, match=r"a secret survived redaction in transcripts/other"):
        EvidenceWriter(tmp_path).write(inputs, secrets=[CONFIGURED])
    assert list(tmp_path.iterdir()) == []
