"""report.html: one self-contained page (no CDN, no script): verdict, gates, a latency chart."""

from __future__ import annotations

from html import escape
from typing import Any

from checks.interface import CheckResult, Status
from opsctl.results import RunResult

CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:2rem auto;max-width:60rem;
color:#1f2328;padding:0 1rem}
h1{font-size:1.4rem;margin:0 0 .3rem}.meta{color:#59636e;margin:0 0 1.2rem}
.verdict{font-size:1.25rem;font-weight:700;padding:.8rem 1rem;border-radius:.4rem;color:#fff}
.gate{margin:1.4rem 0 .4rem;font-size:1.1rem}
table{border-collapse:collapse;width:100%}
td,th{padding:.35rem .5rem;border-bottom:1px solid #d1d9e0;text-align:left;vertical-align:top}
.badge{display:inline-block;min-width:5.5rem;padding:.1rem .4rem;border-radius:.3rem;color:#fff;
font-weight:600;font-size:.85rem;text-align:center}
.hint{color:#59636e;font-style:italic}.chart{margin-top:2rem}
"""


def _badge(status: Status) -> str:
    colour = status.meaning.colour
    return f'<span class="badge" style="background:{colour}">{escape(status.value)}</span>'


def _latencies(run: RunResult) -> dict[str, Any] | None:
    for gate in run.gates:
        for check in gate.checks:
            if check.check_id == "health" and "warm_samples_ms" in check.details:
                return dict(check.details)
    return None


def latency_chart(details: dict[str, Any] | None) -> str:
    """Inline SVG bars: the cold start, then each warm sample (milliseconds)."""
    if not details:
        return "<p>No latencies were measured in this run.</p>"
    bars = [("cold start", float(details.get("cold_start_s", 0)) * 1000)]
    bars += [(f"warm {i + 1}", float(ms)) for i, ms in enumerate(details["warm_samples_ms"])]
    top = max((ms for _, ms in bars), default=1.0) or 1.0
    width, row, label = 640, 26, 90
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{row * len(bars) + 10}" '
        'role="img" aria-label="latency per request in milliseconds">'
    ]
    for i, (name, ms) in enumerate(bars):
        length = (width - label - 90) * ms / top
        colour = "#bc4c00" if i == 0 else "#0969da"
        y = i * row + 5
        parts.append(
            f'<text x="0" y="{y + 15}" font-size="13">{escape(name)}</text>'
            f'<rect x="{label}" y="{y}" width="{length:.1f}" height="18" fill="{colour}"/>'
            f'<text x="{label + length + 6:.1f}" y="{y + 15}" font-size="13">{ms:.0f} ms</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _check_row(check: CheckResult) -> str:
    hint = ""
    if check.hint and check.status.meaning.shows_hint:
        hint = f'<div class="hint">hint: {escape(check.hint)}</div>'
    return (
        f"<tr><td>{_badge(check.status)}</td><td>{escape(check.title)}</td>"
        f"<td>{escape(check.reason)}{hint}</td><td>{check.duration_s:.2f}s</td></tr>"
    )


def render_html(run: RunResult, outcome: str = "completed") -> str:
    """The whole report as one HTML document."""
    colour = run.judgement.status.meaning.colour
    note = (
        "" if outcome == "completed" else f"<p><strong>This run was {escape(outcome)}.</strong></p>"
    )
    body = [
        f"<h1>Verification of {escape(run.env)}</h1>",
        f'<p class="meta">{escape(run.target or "-")} &middot; started {escape(run.started_at)}'
        f" &middot; {run.duration_s:.1f}s</p>",
        f'<div class="verdict" id="verdict" style="background:{colour}">'
        f"{escape(run.verdict)}</div>",
        note,
    ]
    for gate in run.gates:
        kind = "" if gate.blocking else " (advisory)"
        body.append(
            f'<h2 class="gate">{_badge(gate.status)} {escape(gate.gate_id)} '
            f"{escape(gate.title)}{kind}</h2><p>{escape(gate.reason)}</p>"
        )
        if gate.checks:
            body.append(
                "<table><tr><th>Status</th><th>Criterion</th><th>Reason</th><th>Time</th></tr>"
            )
            body.extend(_check_row(c) for c in gate.checks)
            body.append("</table>")
    body.append(
        f'<div class="chart"><h2>Latency of /health</h2>{latency_chart(_latencies(run))}</div>'
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>opsctl verify {escape(run.env)}: {escape(run.verdict[:60])}</title>"
        f"<style>{CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
