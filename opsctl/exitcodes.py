"""Exit codes, the same whatever the output format (defined with the statuses they follow from)."""

from __future__ import annotations

from checks.statuses import EXIT_MEANING as EXIT_MEANING
from checks.statuses import ExitCode as ExitCode
