"""The one registry of checks: id -> Check. Gates in opsctl.toml name checks by these ids."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator, Mapping

from checks.interface import Check

# Where each check lives, "module:Class". A check's module is imported the first time the
# check itself is asked for: listing or validating ids (loading opsctl.toml, `opsctl gates`,
# shell completion) imports none of them, nor the libraries they use (issue 17).
LOCATIONS: dict[str, str] = {
    "https": "checks.http:HttpsCheck",
    "health": "checks.http:HealthCheck",
    "warmup": "checks.http:WarmupCheck",
    "audio": "checks.audio:AudioCheck",
    "metrics": "checks.http:MetricsCheck",
    "webhook": "checks.webhook:WebhookCheck",
    "secrets": "checks.secrets:SecretScanCheck",  # pragma: allowlist secret
    "hygiene": "checks.hygiene:HygieneCheck",
    "deps": "checks.deps:DependencyAuditCheck",
    "lint": "checks.lint:LintCheck",
    "tests": "checks.testsuite:TestSuiteCheck",
    "deploy-files": "checks.deployfiles:DeployFilesCheck",
    "keepalive": "checks.keepalive:KeepAliveCheck",
    "notion": "checks.notion:NotionCheck",
}


class Registry(Mapping[str, Check]):
    """id -> Check, each made (its module imported) on first use, once."""

    def __init__(self, locations: Mapping[str, str]) -> None:
        self._locations = dict(locations)
        self._made: dict[str, Check] = {}
        self._lock = threading.Lock()  # checks run in threads: one instance per id

    def __getitem__(self, check_id: str) -> Check:
        with self._lock:
            if check_id not in self._made:
                module, _, name = self._locations[check_id].partition(":")
                self._made[check_id] = getattr(importlib.import_module(module), name)()
            return self._made[check_id]

    def __iter__(self) -> Iterator[str]:
        return iter(self._locations)

    def __len__(self) -> int:
        return len(self._locations)

    def __contains__(self, check_id: object) -> bool:
        return check_id in self._locations


CHECKS: Mapping[str, Check] = Registry(LOCATIONS)
