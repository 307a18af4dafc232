"""Exit codes, the same whatever the output format (defined in checks/, below the statuses)."""

from __future__ import annotations

from checks.exitcodes import EXIT_MEANING as EXIT_MEANING
from checks.exitcodes import ExitCode as ExitCode
