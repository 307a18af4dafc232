"""The files of a repository: what git tracks, or a walk that skips what never belongs to it."""

from __future__ import annotations

import os
from pathlib import Path

from checks import children

GIT_TIMEOUT = 60.0  # seconds: every git call has a deadline; ours take well under one

SKIP_DIRS = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".hypothesis",
        "evidence-out",
        ".opsctl",  # opsctl's own state: the result cache, the Notion outbox
        "build",
        "dist",
    }
)


def is_git_repo(root: Path) -> bool:
    """True when `root` is inside a git work tree."""
    done = children.run(
        ["git", "-C", str(root), "rev-parse", "--is-inside-work-tree"],
        capture_output=True,
        text=True,
        check=False,
        timeout=GIT_TIMEOUT,
    )
    return done.returncode == 0 and done.stdout.strip() == "true"


def tracked_files(root: Path) -> list[Path]:
    """Relative paths of the repository's files (git ls-files, else a walk)."""
    if is_git_repo(root):
        done = children.run(
            [
                "git",
                "-C",
                str(root),
                "ls-files",
                "-z",
                "--cached",
                "--others",
                "--exclude-standard",
            ],
            capture_output=True,
            check=True,
            timeout=GIT_TIMEOUT,
        )
        names = [n for n in done.stdout.decode("utf-8", "replace").split("\0") if n]
        return sorted(Path(n) for n in names if (root / n).is_file())
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        found += [Path(folder, f).relative_to(root) for f in files]
    return sorted(found)


def git_tracked(root: Path) -> list[Path]:
    """Only what git tracks (for hygiene: an untracked .env is fine, a tracked one is not)."""
    if not is_git_repo(root):
        return []
    done = children.run(
        ["git", "-C", str(root), "ls-files", "-z"],
        capture_output=True,
        check=True,
        timeout=GIT_TIMEOUT,
    )
    return sorted(Path(n) for n in done.stdout.decode("utf-8", "replace").split("\0") if n)
