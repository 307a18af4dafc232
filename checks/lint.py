"""Lint: ruff with the project's configuration, security rules (S, flake8-bandit) included."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from checks import children
from checks.interface import Check, CheckContext, CheckError, CheckResult, Status


def ruff(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """ruff from the same environment as opsctl, run in the repository."""
    return children.run(
        [sys.executable, "-m", "ruff", *args],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def lint(root: Path) -> tuple[list[str], list[dict[str, object]]]:
    """(files linted, findings) with the repository's own ruff configuration."""
    shown = ruff(root, "check", "--show-files", ".")
    files = [line for line in shown.stdout.splitlines() if line.strip()]
    checked = ruff(root, "check", "--output-format", "json", "--no-fix", ".")
    if checked.returncode not in (0, 1):
        raise CheckError(
            f"ruff failed: {checked.stderr.strip()[:300]}",
            "run `ruff check .` and fix its configuration",
        )
    return files, json.loads(checked.stdout or "[]")


class LintCheck(Check):
    """ruff finds nothing, and it looked at files."""

    id = "lint"
    title = "ruff, security rules included"
    done_when = "ruff (with the S rules in place of bandit) reports nothing on at least one file"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        root = ctx.repository().root
        files, findings = await asyncio.to_thread(lint, root)
        listed = [
            f"{Path(str(f['filename'])).resolve().relative_to(root.resolve())}:"
            f"{f['location']['row']}: {f['code']} {f['message']}"  # type: ignore[index]
            for f in findings
        ]
        ctx.reports["lint.txt"] = f"linted {len(files)} files\n" + "\n".join(listed) + "\n"
        details = {"files_linted": len(files), "findings": listed[:200]}
        if not files:
            raise CheckError(
                f"ruff linted no file under {root}",
                "check the ruff configuration's include and exclude settings",
            )
        if listed:
            return self.result(
                Status.FAIL,
                f"{len(listed)} finding(s), first {listed[0]}",
                "fix them, or run `ruff check --fix .`",
                details=details,
            )
        return self.result(Status.PASS, f"linted {len(files)} files: no findings", details=details)

    def budget_s(self, ctx: CheckContext) -> float:
        return 300.0
