"""The one registry of checks: id -> Check. Gates in opsctl.toml name checks by these ids."""

from __future__ import annotations

from checks.audio import AudioCheck
from checks.http import HealthCheck, HttpsCheck, MetricsCheck, WarmupCheck
from checks.interface import Check
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
    )
}
