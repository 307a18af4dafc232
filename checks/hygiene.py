"""Repository hygiene: .gitignore keeps secrets, environments, caches and evidence out of git."""

from __future__ import annotations

import fnmatch
from pathlib import Path

from checks import children
from checks.interface import Check, CheckContext, CheckResult, Status
from checks.repo_files import GIT_TIMEOUT, git_tracked, is_git_repo

# What must be ignored, shown by a sample path of each kind.
MUST_IGNORE = {
    ".env": ".env",
    "virtual environments": ".venv/bin/python",
    "caches": "pkg/__pycache__/m.cpython-311.pyc",
    "local evidence output": "evidence-out/run/run.json",
}
# Tracked files that hold secrets by their very kind.
SECRET_FILE_PATTERNS = (
    ".env",
    ".env.*",
    "*.pem",
    "*.key",
    "id_rsa",
    "id_ed25519",
    "credentials.json",
    "*.p12",
    "*.pfx",
    ".netrc",
)
ALLOWED = ("*.example", "*.sample", "*.template")


def ignored(root: Path, sample: str) -> bool:
    """Would git ignore this path? (git check-ignore, which reads .gitignore as git does)."""
    if is_git_repo(root):
        done = children.run(
            ["git", "-C", str(root), "check-ignore", "-q", "--no-index", sample],
            capture_output=True,
            check=False,
            timeout=GIT_TIMEOUT,
        )
        return done.returncode == 0
    # No git: match the .gitignore lines the simple way (no negations, no anchors).
    patterns = [
        line.strip().rstrip("/")
        for line in _gitignore(root)
        if line.strip() and not line.startswith(("#", "!"))
    ]
    parts = Path(sample).parts
    return any(fnmatch.fnmatch(part, p.lstrip("/")) for p in patterns for part in parts)


def _gitignore(root: Path) -> list[str]:
    path = root / ".gitignore"
    return path.read_text(encoding="utf-8").splitlines() if path.is_file() else []


def secret_files(tracked: list[Path]) -> list[str]:
    """Tracked files whose name says they hold secrets."""
    return [
        p.as_posix()
        for p in tracked
        if any(fnmatch.fnmatch(p.name, pat) for pat in SECRET_FILE_PATTERNS)
        and not any(fnmatch.fnmatch(p.name, ok) for ok in ALLOWED)
    ]


class HygieneCheck(Check):
    """.gitignore covers what must never be committed; nothing like it is tracked."""

    id = "hygiene"
    title = "repository hygiene"
    done_when = ".gitignore covers .env, venvs, caches, evidence; no tracked .env or key file"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        root = ctx.repository().root
        if not (root / ".gitignore").is_file():
            return self.result(Status.FAIL, "no .gitignore", "add one (see this repository's)")
        missing = [kind for kind, sample in MUST_IGNORE.items() if not ignored(root, sample)]
        tracked = git_tracked(root)
        leaks = secret_files(tracked)
        details = {
            "not_ignored": missing,
            "tracked_secret_files": leaks,
            "tracked_files": len(tracked),
        }
        if leaks:
            return self.result(
                Status.FAIL,
                f"tracked file(s) that hold secrets: {', '.join(leaks)}",
                "git rm --cached them, rotate what they held, and ignore them",
                details=details,
            )
        if missing:
            return self.result(
                Status.FAIL,
                f".gitignore does not cover: {', '.join(missing)}",
                "add patterns such as .env, .venv/, __pycache__/, evidence-out/",
                details=details,
            )
        return self.result(
            Status.PASS,
            f".gitignore covers {len(MUST_IGNORE)} kinds; {len(tracked)} tracked files, "
            "none holding secrets by name",
            details=details,
        )
