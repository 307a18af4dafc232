"""The content of row pages, as Notion blocks: a run's summary, a gate's criteria.

Every page fits in the one request that creates it, within Notion's limits
(https://developers.notion.com/reference/request-limits and
https://developers.notion.com/reference/patch-block-children): at most 100 blocks in any
`children` array, 1000 block elements in a request, two levels of nesting (we use one), and per
rich text array at most 100 objects of at most 2000 characters each. What does not fit is cut,
and the page says so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from checks.statuses import MEANING, Status
from opsctl.config import Gate
from opsctl.notion.values import MAX_CHUNKS, TEXT_CHUNK

Block = dict[str, Any]
CHILDREN_MAX = 100
"""Blocks in one `children` array."""
BLOCKS_MAX = 1000
"""Block elements in one request, nested ones included."""


@dataclass(frozen=True)
class Span:
    """A piece of a block's text: plain, bold, or a link."""

    text: str
    bold: bool = False
    url: str = ""


def rich_text(spans: Sequence[Span | str]) -> list[dict[str, Any]]:
    """Notion's rich text for `spans`: 2000-character pieces, 100 at most (then a cut marker)."""
    out: list[dict[str, Any]] = []
    for span in (s if isinstance(s, Span) else Span(s) for s in spans):
        for start in range(0, len(span.text), TEXT_CHUNK):
            piece: dict[str, Any] = {
                "type": "text",
                "text": {"content": span.text[start : start + TEXT_CHUNK]},
            }
            if span.url:
                piece["text"]["link"] = {"url": span.url}
            if span.bold:
                piece["annotations"] = {"bold": True}
            out.append(piece)
    if len(out) > MAX_CHUNKS:
        cut = sum(len(p["text"]["content"]) for p in out[MAX_CHUNKS - 1 :])
        out = [*out[: MAX_CHUNKS - 1], _piece(f" [... {cut} more characters cut by opsctl]")]
    return out


def _piece(text: str) -> dict[str, Any]:
    return {"type": "text", "text": {"content": text}}


def paragraph(*spans: Span | str) -> Block:
    """A paragraph block."""
    return {"type": "paragraph", "paragraph": {"rich_text": rich_text(spans)}}


def heading(text: str) -> Block:
    """A level-2 heading block."""
    return {"type": "heading_2", "heading_2": {"rich_text": rich_text([text])}}


def bullet(*spans: Span | str, children: Sequence[Block] = ()) -> Block:
    """A bulleted list item, with nested blocks under it."""
    item: dict[str, Any] = {"rich_text": rich_text(spans)}
    if children:
        item["children"] = list(children)
    return {"type": "bulleted_list_item", "bulleted_list_item": item}


def fit(blocks: Sequence[Block]) -> tuple[Block, ...]:
    """The blocks as one request can carry them; what is cut is named in a last paragraph."""
    budget = [BLOCKS_MAX - 1]  # one element kept for the top level's own cut marker

    def trim(level: Sequence[Block]) -> list[Block]:
        kept: list[Block] = []
        for index, block in enumerate(level):
            room = CHILDREN_MAX - 1 if len(level) > CHILDREN_MAX else CHILDREN_MAX
            if index >= room or budget[0] < 1:
                left = len(level) - index
                return [*kept, paragraph(f"[... {left} more not shown: see the evidence bundle]")]
            budget[0] -= 1
            body = block[block["type"]]
            if "children" in body:
                body = {**body, "children": trim(body["children"])}
            kept.append({**block, block["type"]: body})
        return kept

    return tuple(trim(blocks))


def version(blocks: Sequence[Block]) -> str:
    """A short digest of the content: a page whose version differs is written again."""
    text = json.dumps(list(blocks), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


# --- a run's page --------------------------------------------------------------------------------


def run_page(data: Mapping[str, Any], run_id: str, link: str) -> tuple[Block, ...]:
    """What a person reads on the run's row: verdict, evidence, where from, gates, sign-offs."""
    verdict = str(data.get("verdict", {}).get("line", "")) or "no verdict recorded"
    blocks = [
        paragraph(Span(verdict, bold=True)),
        evidence_paragraph(run_id, link),
        paragraph(_provenance(data)),
        heading("Gates"),
        *[_gate_item(gate) for gate in data.get("gates", [])],
        heading("Sign-offs and waivers"),
        *_signoff_items(data.get("signoffs", [])),
    ]
    return fit(blocks)


def evidence_paragraph(run_id: str, link: str) -> Block:
    """Where the evidence is: a link to the published report, or plainly that it is not."""
    if link:
        return paragraph("Evidence: ", Span(f"{run_id}/report.html", url=link))
    return paragraph(
        "Evidence: not published. The bundle ",
        Span(run_id, bold=True),
        " stays on the machine that ran the verification (evidence-out/); set [notion] "
        "evidence_url in opsctl.toml to where bundles are published to link it here.",
    )


def _provenance(data: Mapping[str, Any]) -> str:
    tool = data.get("tool", {})
    return (
        f"{tool.get('name', 'opsctl')} {tool.get('version', '?')} at commit "
        f"{data.get('git_commit') or 'unknown'}; target {data.get('target') or '-'}; started "
        f"{data.get('started_at', '?')}, took {float(data.get('duration_s', 0.0)):.1f} s"
    )


def _gate_item(gate: Mapping[str, Any]) -> Block:
    advisory = "" if gate.get("blocking", True) else " (advisory)"
    checks = [_check_item(c) for c in gate.get("checks", []) if _shows_hint(c)]
    return bullet(
        Span(f"{gate['id']} {gate.get('title', '')}{advisory}: "),
        Span(str(gate["status"]), bold=True),
        f" - {gate.get('reason', '')}",
        children=checks,
    )


def _shows_hint(check: Mapping[str, Any]) -> bool:
    """A check that did not plainly pass: listed under its gate, with what to do."""
    try:
        return MEANING[Status(check["status"])].shows_hint
    except ValueError:
        return True


def _check_item(check: Mapping[str, Any]) -> Block:
    hint = f" Fix: {check['hint']}" if check.get("hint") else ""
    return bullet(
        f"{check.get('title') or check['id']}: ",
        Span(str(check["status"]), bold=True),
        f" - {check.get('reason', '')}.{hint}",
    )


def _signoff_items(signoffs: Sequence[Mapping[str, Any]]) -> list[Block]:
    if not signoffs:
        return [paragraph("None recorded when this run started.")]
    return [bullet(signoff_line(entry)) for entry in signoffs]


def signoff_line(entry: Mapping[str, Any]) -> str:
    """Who signed (or waived) what, when, and why."""
    note = f" ({entry['note']})" if entry.get("note") else ""
    if entry.get("kind") == "waive":
        return (
            f"{entry['gate']} waived (DOCUMENTED-BLOCKED) by {entry['by']} on {entry['at']}{note}"
        )
    return (
        f"{entry['gate']} {entry.get('item', '')}: signed by {entry['by']} on {entry['at']}{note}"
    )


# --- a gate's page -------------------------------------------------------------------------------


def gate_page(gate: Gate) -> tuple[Block, ...]:
    """The gate's criteria as the phase plan tables them, and how opsctl judges it."""
    criteria = [
        bullet(
            Span(criterion.id, bold=True),
            f" {criterion.criterion}",
            children=[
                paragraph(Span("Definition of done: ", bold=True), criterion.done),
                paragraph(Span("Evidence: ", bold=True), criterion.evidence or "-"),
            ],
        )
        for criterion in gate.criteria
    ]
    if not criteria:
        criteria = [
            paragraph(
                f"No criteria for {gate.id} in opsctl.toml; add them as "
                f'[[gates."{gate.id}".criteria]] with id, criterion, done and evidence.'
            )
        ]
    how = [
        bullet(f"Checks: {', '.join(gate.checks)}"),
        bullet(f"Needs: {', '.join(gate.needs) or 'nothing'}"),
        bullet(f"Signed off by a person: {', '.join(gate.manual) or 'nothing'}"),
        bullet("Blocks the verdict" if gate.blocking else "Advisory: does not block the verdict"),
    ]
    return fit(
        [
            heading(f"{gate.id} {gate.title}: criteria"),
            *criteria,
            heading("How opsctl judges it"),
            *how,
        ]
    )
