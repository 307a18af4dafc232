"""The one registry of checks: id -> Check. Gates in opsctl.toml name checks by these ids."""

from __future__ import annotations

from checks.audio import AudioCheck
from checks.deployfiles import DeployFilesCheck
from checks.deps import DependencyAuditCheck
from checks.http import HealthCheck, HttpsCheck, MetricsCheck, WarmupCheck
from checks.hygiene import HygieneCheck
from checks.interface import Check
from checks.keepalive import KeepAliveCheck
from checks.lint import LintCheck
from checks.notion import NotionCheck
from checks.secrets import SecretScanCheck
from checks.testsuite import TestSuiteCheck
from checks.webhook import WebhookCheck

CHECKS: dict[str, Check] = {
    check.id: check
    for check in (
        HttpsCheck(),
        HealthCheck(),
        WarmupCheck(),
        AudioCheck(),
        MetricsCheck(),
        WebhookCheck(),
        SecretScanCheck(),
        HygieneCheck(),
        DependencyAuditCheck(),
        LintCheck(),
        TestSuiteCheck(),
        DeployFilesCheck(),
        KeepAliveCheck(),
        NotionCheck(),
    )
}
