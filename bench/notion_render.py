"""What a project manager reading only Notion sees after `opsctl notion sync`, as text.

Builds a small history in a temporary project (three runs of `render`, sign-offs, owners,
published bundles), syncs it to the tests' fake Notion API with the real planner and sync, then
prints what the fake holds, read back as a person would: the phase row, the gate rows, the run
rows, and the pages of the newest run and of the failing gate. Enough to answer: is Fase 2
closed? Which gate blocks it, why, since when? Who signed what? Where is the evidence?
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))  # for tests.*

from checks.interface import CheckResult, Status  # noqa: E402
from tests.fakes.notion_api import FakeNotion  # noqa: E402
from tests.opsctl.notion_world import GATES, PHASE, RUNS, world  # noqa: E402

COLUMNS = {
    PHASE: ["Phase", "State", "Progress", "Blocked by", "Why open", "Last verified", "Last run"],
    GATES: ["Gate", "Status", "Since", "Set by", "Last run", "Owner", "Sign-offs", "Needs"],
    RUNS: ["Run ID", "Verdict", "Started", "Evidence"],
}
GAP = CheckResult(
    "keepalive",
    "keep-alive effective",
    Status.FAIL,
    "a gap of 41 min at 03:10 UTC in keepalive-log/render.jsonl",
    hint="run opsctl warmup as a service (README: keep-alive)",
)
UNSIGNED = CheckResult(
    "manual: demo rehearsed",
    "demo rehearsed",
    Status.WARN,
    "not signed off yet",
    hint="opsctl gate sign P2.5 --item 'demo rehearsed' --by NAME",
)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp, FakeNotion() as fake:
        w = world(Path(tmp), fake)
        w.edit(
            {
                "notion.evidence_url": "https://ci.example.org/evidence",
                'gates."P2.3".owner': "Marta (ops)",
                'gates."P2.5".owner': "Luis (QA)",
            }
        )
        w.init()
        w.sign("P2.5", "UAT checklist completed", "Ana", "2026-11-18T15:00:00Z", "12/12 cases")
        w.sign("P2.4", "Notion pages reviewed", "PMO", "2026-11-19T09:30:00Z")
        failing = {"P2.3": Status.FAIL, "P2.5": Status.WARN}
        checks = {"P2.3": [GAP], "P2.5": [UNSIGNED]}
        reasons = {"P2_3": GAP.reason, "P2_5": "1 manual item not signed off: demo rehearsed"}
        w.run("render", "2026-11-19T10:00:00+00:00")
        w.run("render", "2026-11-20T10:00:00+00:00", failing, checks, **reasons)
        w.sync()
        newest = w.run("render", "2026-11-21T07:30:00+00:00", failing, checks, **reasons)
        report = w.sync()
        print(f"# after two syncs ({report.line()})\n")
        print(w.view(COLUMNS))
        print(f"\n== page of the run {newest}")
        print(w.page(RUNS, newest))
        print("\n== page of the gate P2.3 Keep-alive")
        print(w.page(GATES, "P2.3 Keep-alive"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
