"""Write an evidence bundle: render, redact, prove no secret is left, then rename into place.

The results arrive redacted (the runner redacts each check's result) and so do the transcripts
(the recorder redacts each body before cutting it); the writer redacts again with every secret
value the run knows, before serialising (a value in a JSON body is escaped twice in a JSON
transcript) and after rendering, then scans what it wrote and keeps nothing if a secret is left.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from evidence.redact import Redactor
from evidence.signoffs import Signoff
from evidence.transcripts import Exchange
from opsctl.errors import OpsctlError
from opsctl.exitcodes import ExitCode
from opsctl.results import RunResult

BUNDLE_SCHEMA = "opsctl.evidence/v1"
MANIFEST = "MANIFEST.sha256"
PARTIAL_PREFIX = ".partial-"


class EvidenceError(OpsctlError):
    """A bundle could not be written (or would have held a secret); nothing was left behind."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class BundleInputs:
    """Everything a bundle is made of; the writer only renders and stores it."""

    run: RunResult
    tool_version: str
    git_commit: str
    ended_at: str
    outcome: str = "completed"
    """'completed' or 'interrupted'."""
    exchanges: Sequence[Exchange] = ()
    signoffs: Sequence[Signoff] = ()
    definitions: Mapping[str, str] = field(default_factory=dict)
    """Check id -> definition of done, for summary.md."""
    reports: Mapping[str, str] = field(default_factory=dict)
    """Extra files by relative path (repository gates' reports)."""


def sha256_of(path: Path) -> str:
    """The file's SHA-256 in hex."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _transcripts(
    exchanges: Sequence[Exchange], redactor: Redactor
) -> tuple[dict[str, str], dict[str, str]]:
    """(files by path, path by 'GATE/CHECK'): one JSON file of exchanges per check, each value
    redacted before it is escaped into JSON."""
    by_check: dict[str, list[dict[str, Any]]] = {}
    for exchange in exchanges:
        item = redactor.redact_data(exchange.as_dict())
        by_check.setdefault(exchange.check or "other", []).append(item)
    files, links = {}, {}
    for key, items in sorted(by_check.items()):
        path = f"transcripts/{key.replace('/', '--')}.json"
        files[path] = json.dumps(items, indent=2, ensure_ascii=False) + "\n"
        links[key] = path
    return files, links


def render_files(inputs: BundleInputs, redactor: Redactor | None = None) -> dict[str, str]:
    """Every file of the bundle but the manifest, by relative path."""
    # Here, not at the top: what only lists or reads bundles (evidence/store.py, opsctl's
    # repository-only runs) does not load the renderers (jinja among them).
    from evidence.formats.html import render_html
    from evidence.formats.json_format import as_data
    from evidence.formats.junit import render_junit
    from evidence.formats.markdown import render_summary

    run = inputs.run
    transcripts, links = _transcripts(inputs.exchanges, redactor or Redactor(()))
    data = as_data(run)
    data.update(
        schema=BUNDLE_SCHEMA,
        tool={"name": "opsctl", "version": inputs.tool_version},
        git_commit=inputs.git_commit,
        ended_at=inputs.ended_at,
        outcome=inputs.outcome,
        signoffs=[asdict(s) for s in inputs.signoffs],
        transcripts=sorted(transcripts),
    )
    reports = {f"reports/{name}": text for name, text in inputs.reports.items()}
    # What the summary and the report link: every file of the bundle but the report itself.
    linked = ["summary.md", "run.json", "junit.xml", MANIFEST, *sorted(reports), *transcripts]
    files = {
        "run.json": json.dumps(data, indent=2, ensure_ascii=False) + "\n",
        "summary.md": render_summary(
            run,
            inputs.definitions,
            links,
            inputs.signoffs,
            inputs.outcome,
            files=linked,
            made_by=f"opsctl {inputs.tool_version}, commit {inputs.git_commit}",
        ),
        "junit.xml": render_junit(run),
        "report.html": render_html(
            run,
            inputs.outcome,
            tool_version=inputs.tool_version,
            git_commit=inputs.git_commit,
            transcripts=links,
            files=linked,
        ),
        **transcripts,
        **reports,
    }
    return files


class EvidenceWriter:
    """Writes bundles under `root`: each appears whole (renamed from a hidden folder) or never."""

    def __init__(
        self,
        root: Path,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        redactor: Callable[[Iterable[str]], Redactor] = Redactor,
    ) -> None:
        self.root = root
        self._now = now
        self._redactor = redactor

    def write(self, inputs: BundleInputs, secrets: Iterable[str]) -> Path:
        """Render, redact, scan, hash, rename. Returns the bundle's folder."""
        name = f"{self._now().strftime('%Y%m%dT%H%M%SZ')}_{inputs.run.env}"
        self.root.mkdir(parents=True, exist_ok=True)
        partial = self.root / f"{PARTIAL_PREFIX}{name}-{os.getpid()}"
        redactor = self._redactor(secrets)
        try:
            for relative, text in render_files(inputs, redactor).items():
                _write_synced(partial / relative, redactor.redact(text))
            leaked = redactor.leaks(partial)
            if leaked:
                raise EvidenceError(
                    f"evidence not written: a secret survived redaction in {', '.join(leaked)}; "
                    "report this as a bug (nothing was kept)"
                )
            manifest = "".join(
                f"{sha256_of(path)}  {path.relative_to(partial).as_posix()}\n"
                for path in sorted(p for p in partial.rglob("*") if p.is_file())
            )
            _write_synced(partial / MANIFEST, manifest)  # last: its presence marks a whole bundle
            final = self._free_name(name)
            os.rename(partial, final)
            _fsync_dir(self.root)
        except BaseException:
            shutil.rmtree(partial, ignore_errors=True)
            raise
        return final

    def _free_name(self, name: str) -> Path:
        final, n = self.root / name, 1
        while final.exists():  # two runs in the same second
            n += 1
            final = self.root / f"{name}-{n}"
        return final


def _write_synced(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
