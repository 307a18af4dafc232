"""Dependency audit of the lock files' pins: pip-audit online, or an offline OSV folder."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from checks import children
from checks.interface import AcceptedRisk, Check, CheckContext, CheckError, CheckResult, Status

_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)", re.M)


@dataclass(frozen=True)
class Finding:
    """One advisory hitting one pinned package."""

    package: str
    version: str
    advisory: str
    aliases: tuple[str, ...]
    fixed: tuple[str, ...]


def normalize(name: str) -> str:
    """PEP 503 name normalisation (the advisory folders use it)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def read_pins(lock: Path) -> list[tuple[str, str]]:
    """(name, version) of every `name==version` line of a lock file."""
    return [(normalize(m.group(1)), m.group(2)) for m in _PIN.finditer(lock.read_text("utf-8"))]


def _affected(entry: dict[str, Any], version: str) -> bool:
    from packaging.version import InvalidVersion, Version

    if version in (entry.get("versions") or []):
        return True
    try:
        current = Version(version)
    except InvalidVersion:
        return False
    for range_ in entry.get("ranges") or []:
        if range_.get("type") != "ECOSYSTEM":
            continue  # GIT ranges name commits, not releases
        if _in_range(current, range_.get("events") or []):
            return True
    return False


def _in_range(current: Any, events: list[dict[str, str]]) -> bool:
    """OSV's evaluation (https://ossf.github.io/osv-schema/#evaluation): walk the events in
    version order; an `introduced` at or below the version opens, a `fixed` at or below it
    (or a `last_affected` below it) closes. An `introduced` above it changes nothing, so a
    version in the first of two ranges stays affected."""
    from packaging.version import InvalidVersion, Version

    ordered = []
    for event in events:
        kind, value = next(iter(event.items()), ("", ""))
        try:
            ordered.append((Version("0") if value == "0" else Version(value), kind))
        except InvalidVersion:
            continue
    ordered.sort(key=lambda pair: (pair[0], pair[1] != "introduced"))
    affected = False
    for at, kind in ordered:
        if kind == "introduced" and current >= at:
            affected = True
        elif (kind == "fixed" and current >= at) or (kind == "last_affected" and current > at):
            affected = False
    return affected


def _fixed(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(
        str(event["fixed"])
        for range_ in entry.get("ranges") or []
        if range_.get("type") == "ECOSYSTEM"
        for event in range_.get("events") or []
        if "fixed" in event
    )


def advisories_folder(source: Path) -> Path:
    """The `vulns/` folder of an advisory database checkout (or the folder itself)."""
    return source / "vulns" if (source / "vulns").is_dir() else source


def snapshot_of(source: Path) -> str:
    """Which snapshot an offline folder is: its SOURCE.txt line, else its newest file's date."""
    note = source / "SOURCE.txt"
    if note.is_file():
        for line in note.read_text(encoding="utf-8").splitlines():
            if line.startswith("source:"):
                return line.removeprefix("source:").strip()
    newest = max((p.stat().st_mtime for p in source.rglob("*.yaml")), default=0)
    return f"files up to {date.fromtimestamp(newest).isoformat()}" if newest else "empty"


def offline_audit(source: Path, pins: list[tuple[str, str]]) -> list[Finding]:
    """Match pins against OSV YAML files by hand: pip-audit has no offline mode (pip-audit#698)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    folder = advisories_folder(source)
    if not folder.is_dir():
        raise CheckError(
            f"cannot read the advisories at {source}",
            "point --advisories (or OPSCTL_ADVISORIES) at an OSV folder",
        )
    findings = []
    for name, version in pins:
        for path in sorted((folder / name).glob("*.yaml")):
            advisory = yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506
            if advisory.get("withdrawn"):
                continue
            for entry in advisory.get("affected") or []:
                package = entry.get("package") or {}
                if package.get("ecosystem") != "PyPI" or normalize(package.get("name", "")) != name:
                    continue
                if _affected(entry, version):
                    findings.append(
                        Finding(
                            name,
                            version,
                            advisory["id"],
                            tuple(advisory.get("aliases") or ()),
                            _fixed(entry),
                        )
                    )
                    break
    return findings


def online_audit(pins: list[tuple[str, str]]) -> tuple[list[Finding], list[str]]:
    """pip-audit once over the union of the locks' pins: (findings, skipped packages)."""
    with tempfile.TemporaryDirectory(prefix="opsctl-audit-") as tmp:
        requirements = Path(tmp) / "pins.txt"
        requirements.write_text("".join(f"{name}=={version}\n" for name, version in pins))
        return _pip_audit(requirements)


def _pip_audit(requirements: Path) -> tuple[list[Finding], list[str]]:
    done = children.run(
        [
            sys.executable,
            "-m",
            "pip_audit",
            "-r",
            str(requirements),
            "--no-deps",
            "--disable-pip",
            "-f",
            "json",
            "--progress-spinner",
            "off",
            "--timeout",
            "15",
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise CheckError(
            f"pip-audit failed: {done.stderr.strip()[-300:] or 'no output'}",
            "is the vulnerability service reachable? work offline with --advisories DIR",
        ) from None
    findings, skipped = [], []
    for dep in report.get("dependencies", []):
        if "skip_reason" in dep:
            skipped.append(f"{dep['name']}: {dep['skip_reason']}")
        for vuln in dep.get("vulns", []):
            findings.append(
                Finding(
                    normalize(dep["name"]),
                    dep.get("version", "?"),
                    vuln["id"],
                    tuple(vuln.get("aliases", [])),
                    tuple(vuln.get("fix_versions", [])),
                )
            )
    return findings, skipped


def _accepted(finding: Finding, risks: tuple[AcceptedRisk, ...]) -> AcceptedRisk | None:
    ids = {finding.advisory, *finding.aliases}
    return next((r for r in risks if r.id in ids), None)


def describe(finding: Finding) -> str:
    """'requests 2.19.0: PYSEC-2018-28 (fixed in 2.20.0)'."""
    fixed = f"fixed in {', '.join(finding.fixed)}" if finding.fixed else "no fix yet"
    return f"{finding.package} {finding.version}: {finding.advisory} ({fixed})"


class DependencyAuditCheck(Check):
    """No known vulnerability in any pinned dependency, except accepted, unexpired risks."""

    id = "deps"
    title = "dependency audit of the lock files"
    done_when = "every pin audited (none skipped); no advisory but accepted, unexpired risks"
    needs_target = False

    async def run(self, ctx: CheckContext) -> CheckResult:
        return await asyncio.to_thread(self._audit, ctx)

    def _audit(self, ctx: CheckContext) -> CheckResult:
        repo = ctx.repository()
        locks = [lock for lock in repo.lock_files if (repo.root / lock).is_file()]
        pins = sorted({pin for lock in locks for pin in read_pins(repo.root / lock)})
        if not pins:
            raise CheckError(
                f"no pinned dependency found in {', '.join(repo.lock_files)}",
                "generate the lock files (make lock)",
            )
        skipped: list[str] = []
        if repo.advisories is not None:
            source = f"offline OSV folder {repo.advisories}"
            snapshot = snapshot_of(repo.advisories)
            findings = offline_audit(repo.advisories, pins)
        else:
            source, snapshot = "pip-audit (PyPI advisories, online)", "live"
            # The locks share most pins: one pip-audit run over their union asks once each.
            findings, skipped = online_audit(pins)
        findings = sorted(set(findings), key=lambda f: (f.package, f.advisory))
        failing, accepted, expired = [], [], []
        for finding in findings:
            risk = _accepted(finding, repo.accepted_risks)
            if risk is None:
                failing.append(describe(finding))
            elif risk.expires < repo.today:
                expired.append(f"{describe(finding)}: accepted risk expired {risk.expires}")
            else:
                accepted.append(
                    f"{describe(finding)}: accepted until {risk.expires}: {risk.reason}"
                )
        details = {
            "source": source,
            "snapshot": snapshot,
            "locks": locks,
            "pins": len(pins),
            "vulnerable": failing + expired,
            "accepted": accepted,
            "skipped": skipped,
        }
        ctx.reports["dependency-audit.json"] = json.dumps(details, indent=2) + "\n"
        if skipped:
            return self.result(
                Status.ERROR,
                f"{len(skipped)} of {len(pins)} dependencies were not audited "
                f"(first: {skipped[0]})",
                "the vulnerability service is unreachable? use --advisories DIR (OSV folder)",
                details=details,
            )
        if failing or expired:
            problems = failing + expired
            return self.result(
                Status.FAIL,
                f"{len(problems)} known vulnerabilit(ies): {'; '.join(problems[:3])}",
                "upgrade to a fixed version (make lock), or accept the risk in opsctl.toml "
                "with a reason and an expiry date",
                details=details,
            )
        note = f"; {len(accepted)} accepted risk(s)" if accepted else ""
        return self.result(
            Status.PASS,
            f"audited {len(pins)} pinned dependencies against {source} ({snapshot}): "
            f"no known vulnerability{note}",
            details=details,
        )

    def budget_s(self, ctx: CheckContext) -> float:
        return 600.0
