"""Secret scan: detect-secrets as a library over the repository's files, against the baseline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from checks.interface import Check, CheckContext, CheckError, CheckResult, Status
from checks.repo_files import tracked_files

BASELINE = ".secrets.baseline"
PLUGINS_FILE = Path(__file__).with_name("secret_plugins.py")
OUR_PLUGINS = ("TwilioAuthTokenDetector", "GoogleApiKeyDetector", "NotionTokenDetector")
# Never scanned: lock hashes and binary assets are high-entropy by nature.
EXCLUDED_SUFFIXES = (".mp3", ".png", ".lock")
EXCLUDED_PREFIXES = ("requirements/",)


def scan_settings() -> dict[str, Any]:
    """Every built-in plugin and ours; no filter that calls vendors' APIs."""
    from detect_secrets.settings import default_settings

    with default_settings() as settings:
        plugins: list[dict[str, Any]] = settings.json()["plugins_used"]
    return {
        "plugins_used": [
            *plugins,
            *({"name": n, "path": PLUGINS_FILE.as_uri()} for n in OUR_PLUGINS),
        ]
    }


@contextmanager
def our_settings() -> Iterator[None]:
    """detect-secrets configured with our plugins for the duration."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.settings import transient_settings

    config = scan_settings()
    with transient_settings(config):
        # detect-secrets caches its plugin classes and its cache_bust() misses this cache.
        get_mapping_from_secret_type_to_class.cache_clear()
        try:
            yield
        finally:
            get_mapping_from_secret_type_to_class.cache_clear()


def files_to_scan(root: Path) -> list[str]:
    """The repository's text files, relative, minus what cannot hold a written secret."""
    return [
        p.as_posix()
        for p in tracked_files(root)
        if not p.as_posix().startswith(EXCLUDED_PREFIXES)
        and p.suffix not in EXCLUDED_SUFFIXES
        and p.name != BASELINE
    ]


def scan(root: Path, files: list[str]) -> Any:
    """A detect-secrets SecretsCollection of the files (paths relative to root)."""
    from detect_secrets import SecretsCollection

    collection = SecretsCollection(root=str(root))
    with our_settings():
        collection.scan_files(*files)  # a process per core, as `detect-secrets scan`
    return collection


def write_baseline(root: Path) -> tuple[Path, int]:
    """Refresh .secrets.baseline from a scan now (hashes only, never values)."""
    from detect_secrets.core import baseline

    collection = scan(root, files_to_scan(root))
    with our_settings():
        data = baseline.format_for_output(collection)
    data.pop("generated_at", None)  # a baseline that did not change makes no diff
    for plugin in data["plugins_used"]:  # relative, so the file reads the same on every machine
        if "path" in plugin:
            plugin["path"] = (
                "file://" + PLUGINS_FILE.relative_to(Path(__file__).parents[1]).as_posix()
            )
    path = root / BASELINE
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    return path, sum(len(v) for v in data["results"].values())


def new_findings(root: Path, files: list[str]) -> list[tuple[str, int, str]]:
    """(file, line, type) of each finding not in the baseline; values are never returned."""
    from detect_secrets import SecretsCollection

    current = scan(root, files)
    baseline_path = root / BASELINE
    if baseline_path.is_file():
        old = SecretsCollection.load_from_baseline(json.loads(baseline_path.read_text()))
        current = current - old
    found = [(filename, secret.line_number or 0, secret.type) for filename, secret in current]
    return sorted(found)


class SecretScanCheck(Check):
    """No secret in the repository's files beyond those accepted in .secrets.baseline."""

    id = "secrets"
    title = "no new secrets in the repository"
    done_when = "detect-secrets (and our Twilio, Google, Notion detectors) finds nothing new"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        root = ctx.repository().root
        files = files_to_scan(root)
        if not files:
            raise CheckError(f"no files to scan under {root}", "is this the repository root?")
        findings = await asyncio.to_thread(new_findings, root, files)
        report = "\n".join(f"{f}:{line}: {kind}" for f, line, kind in findings)
        ctx.reports["secret-scan.txt"] = (
            f"scanned {len(files)} files; {len(findings)} new finding(s)\n{report}\n"
        )
        details = {
            "files_scanned": len(files),
            "findings": [{"file": f, "line": line, "type": kind} for f, line, kind in findings],
        }
        if findings:
            first = findings[0]
            return self.result(
                Status.FAIL,
                f"{len(findings)} new secret(s), first {first[2]} at {first[0]}:{first[1]}",
                "remove it and rotate it; a false positive: `# pragma: allowlist secret` "
                "or `opsctl secrets baseline`",
                details=details,
            )
        return self.result(
            Status.PASS, f"scanned {len(files)} files: no new secrets", details=details
        )

    def budget_s(self, ctx: CheckContext) -> float:
        return 120.0
