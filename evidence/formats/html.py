"""report.html: one self-contained page (no CDN, no script): verdict, gates, the files of the
bundle linked, the failed tests named, the latency chart with the environment's limits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from checks.interface import CheckResult, Status
from evidence.formats.shared import REPORTS, check_files, failed_tests, own_reason
from opsctl.results import GateResult, RunResult

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:64rem;
color:#1f2328;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .3rem}.meta{color:#59636e;margin:0 0 .3rem}
.files{margin:.6rem 0 1.2rem;color:#59636e;font-size:.9rem}.files a{margin-right:.6rem}
a{color:#0969da}
.verdict{font-size:1.25rem;font-weight:700;padding:.8rem 1rem;border-radius:.4rem;color:#fff}
.gate{margin:1.4rem 0 .4rem;font-size:1.1rem}
table{border-collapse:collapse;width:100%;table-layout:fixed}
td,th{padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;text-align:left;vertical-align:top;
overflow-wrap:break-word}
.badge{display:inline-block;min-width:5.5rem;padding:.1rem .4rem;border-radius:.3rem;color:#fff;
font-weight:600;font-size:.85rem;text-align:center}
.hint{color:#59636e;font-style:italic}.chart{margin-top:2rem}.chart svg{max-width:100%;height:auto}
tr:has(+ tr.failed-tests) td{border-bottom:0}tr.failed-tests td{padding-top:0}
.failed{margin:.2rem 0 0;padding-left:1.2rem}.failed code{font-size:.85rem}
.failed .why{color:#59636e;margin-left:.4rem}
@media (max-width:48rem){table{table-layout:auto}col{width:auto!important}}
"""
COLUMNS = (
    '<colgroup><col style="width:7.5rem"><col style="width:14rem"><col>'
    '<col style="width:4.5rem"><col style="width:9rem"></colgroup>'
)


def _badge(status: Status) -> str:
    colour = status.meaning.colour
    return f'<span class="badge" style="background:{colour}">{escape(status.value)}</span>'


def _link(path: str, label: str | None = None) -> str:
    """A link relative to the report, so the bundle's folder works copied, zipped or served."""
    return f'<a href="{escape(quote(path))}">{escape(label or path)}</a>'


def _latencies(run: RunResult) -> dict[str, Any] | None:
    for gate in run.gates:
        for check in gate.checks:
            if check.check_id == "health" and "warm_samples_ms" in check.details:
                return dict(check.details)
    return None


def _limit(details: Mapping[str, Any], key: str) -> float | None:
    value = details.get(key)
    return float(value) if isinstance(value, int | float) and value > 0 else None


def latency_chart(details: Mapping[str, Any] | None) -> str:
    """The warm /health samples as inline SVG columns, with the environment's warn and fail
    limits as labelled horizontal lines; the cold start, in seconds and judged against its own
    budget, is a line of text (on the same axis it would flatten every warm column)."""
    if not details:
        return "<p>No latencies were measured in this run.</p>"
    samples = [float(ms) for ms in details.get("warm_samples_ms", [])]
    warn, fail = _limit(details, "latency_warn_ms"), _limit(details, "latency_fail_ms")
    lines = [
        (fail, f"fail: p95 over {fail:g} ms", Status.FAIL) if fail else None,
        (warn, f"warn: p50 over {warn:g} ms", Status.WARN) if warn else None,
    ]
    limits = [line for line in lines if line is not None]
    top = max([*samples, *(ms for ms, _, _ in limits), 1.0]) * 1.12
    width, height, left, right, bottom = 900, 240, 8, 170, 24
    plot_w, plot_h = width - left - right, height - bottom - 8

    def y(ms: float) -> float:
        return 8 + plot_h * (1 - ms / top)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" '
        'aria-label="warm /health latency per request in milliseconds, with the limits">',
        f'<line x1="{left}" y1="{y(0):.1f}" x2="{left + plot_w}" y2="{y(0):.1f}" '
        'stroke="#8c959f"/>',
    ]
    step = plot_w / max(len(samples), 1)
    for i, ms in enumerate(samples):
        x, bar = left + i * step + step * 0.15, step * 0.7
        parts.append(
            f'<rect x="{x:.1f}" y="{y(ms):.1f}" width="{bar:.1f}" height="{y(0) - y(ms):.1f}" '
            f'fill="#0969da"><title>warm {i + 1}: {ms:.0f} ms</title></rect>'
            # The value under the axis, never above the column, where a limit's line may run.
            f'<text x="{x + bar / 2:.1f}" y="{height - 6}" font-size="12" '
            f'text-anchor="middle">{ms:.0f} ms</text>'
        )
    for ms, label, status in limits:
        colour = status.meaning.colour
        parts.append(
            f'<line class="limit" x1="{left}" y1="{y(ms):.1f}" x2="{left + plot_w}" '
            f'y2="{y(ms):.1f}" stroke="{colour}" stroke-width="2" stroke-dasharray="6 4"/>'
            f'<text x="{left + plot_w + 6}" y="{y(ms) + 4:.1f}" font-size="12" '
            f'fill="{colour}">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts) + _latency_notes(details, bool(limits))


def _latency_notes(details: Mapping[str, Any], limited: bool) -> str:
    """The lines under the chart: the percentiles, the cold start, the limits if unknown."""
    measured = [
        f"{name} {float(details[key]):.0f} ms"
        for name, key in (("p50", "p50_ms"), ("p95", "p95_ms"), ("max", "max_ms"))
        if isinstance(details.get(key), int | float)
    ]
    percentiles = f" ({', '.join(measured)})" if measured else ""
    notes = [f"Columns: the warm samples, in the order sent{percentiles}."]
    if isinstance(details.get("cold_start_s"), int | float):
        budget = _limit(details, "cold_start_budget_s")
        over = f" (its budget: {budget:g} s)" if budget else ""
        cold = float(details["cold_start_s"])
        notes.append(f"Before them, the cold start (the run's one wake) took {cold:.2f} s{over}.")
    if not limited:
        notes.append("This run did not record the environment's latency limits.")
    return "".join(f"<p>{escape(note)}</p>" for note in notes)


def _failed_tests(check: CheckResult) -> str:
    """A row under the tests check's, as wide as the table: each failed test on its own line."""
    tests, more = failed_tests(check)
    if not tests:
        return ""
    items = "".join(
        f"<li><code>{escape(test)}</code>"
        + (f' <span class="why">{escape(message)}</span>' if message else "")
        + "</li>"
        for test, message in tests
    )
    if more:
        items += f"<li>and {more} more</li>"
    count = len(tests) + more
    return (
        f'<tr class="failed-tests"><td></td><td colspan="4">'
        f'{count} failed test{"s" if count != 1 else ""}:<ul class="failed">{items}</ul></td></tr>'
    )


def _check_row(
    gate: GateResult, check: CheckResult, transcripts: Mapping[str, str], files: Sequence[str]
) -> str:
    hint = ""
    if check.hint and check.status.meaning.shows_hint:
        hint = f'<div class="hint">hint: {escape(check.hint)}</div>'
    links = "<br>".join(
        _link(path, label) for label, path in check_files(gate.gate_id, check, transcripts, files)
    )
    return (
        f"<tr><td>{_badge(check.status)}</td><td>{escape(check.title)}</td>"
        f"<td>{escape(check.reason)}{hint}</td>"
        f"<td>{check.duration_s:.2f}s</td><td>{links}</td></tr>{_failed_tests(check)}"
    )


def _files(files: Sequence[str]) -> str:
    """Every file of the bundle, linked: the run's own, the reports, the transcripts."""
    if not files:
        return ""
    groups = (
        ("Bundle", [f for f in files if "/" not in f]),
        ("Reports", [f for f in files if f.startswith(REPORTS)]),
        ("Transcripts", [f for f in files if f.startswith("transcripts/")]),
    )
    rows = [
        f"{name}: " + " ".join(_link(path, path.rsplit("/", 1)[-1]) for path in paths)
        for name, paths in groups
        if paths
    ]
    return '<nav class="files">' + "<br>".join(rows) + "</nav>"


def render_html(
    run: RunResult,
    outcome: str = "completed",
    *,
    tool_version: str = "",
    git_commit: str = "",
    transcripts: Mapping[str, str] | None = None,
    files: Sequence[str] = (),
) -> str:
    """The whole report as one HTML document. `transcripts` maps 'GATE/CHECK' to its transcript
    and `files` lists the bundle's other files (paths relative to the bundle's folder)."""
    transcripts = transcripts or {}
    colour = run.judgement.status.meaning.colour
    note = (
        "" if outcome == "completed" else f"<p><strong>This run was {escape(outcome)}.</strong></p>"
    )
    made_by = " &middot; ".join(
        part
        for part in (
            f"opsctl {escape(tool_version)}" if tool_version else "",
            f"commit <code>{escape(git_commit)}</code>" if git_commit else "",
        )
        if part
    )
    body = [
        f"<h1>Verification of {escape(run.env)}</h1>",
        f'<p class="meta">{escape(run.target or "-")} &middot; started {escape(run.started_at)}'
        f" &middot; {run.duration_s:.1f}s</p>",
        f'<p class="meta" id="made-by">{made_by}</p>' if made_by else "",
        _files(files),
        f'<div class="verdict" id="verdict" style="background:{colour}">'
        f"{escape(run.verdict)}</div>",
        note,
    ]
    for gate in run.gates:
        kind = "" if gate.blocking else " (advisory)"
        reason = own_reason(gate)
        body.append(
            f'<h2 class="gate" id="{escape(gate.gate_id)}">{_badge(gate.status)} '
            f"{escape(gate.gate_id)} {escape(gate.title)}{kind}</h2>"
            + (f"<p>{escape(reason)}</p>" if reason else "")
        )
        if gate.checks:
            body.append(
                f"<table>{COLUMNS}<tr><th>Status</th><th>Criterion</th><th>Reason</th>"
                "<th>Time</th><th>Evidence</th></tr>"
            )
            body.extend(_check_row(gate, c, transcripts, files) for c in gate.checks)
            body.append("</table>")
    chart = latency_chart(_latencies(run))
    body.append(f'<div class="chart" id="latency"><h2>Latency of /health</h2>{chart}</div>')
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>opsctl verify {escape(run.env)}: {escape(run.verdict[:60])}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
