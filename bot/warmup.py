"""The start-up warm-up: runs its steps once per process, in the background, within a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class StepFailed(Exception):
    """A warm-up step found something that keeps the bot from serving correctly."""


class StepWarning(Exception):
    """A warm-up step passed, with something an operator should know."""


@dataclass(frozen=True)
class WarmupStep:
    """A named step; `run` returns a short detail, or raises StepFailed / StepWarning."""

    name: str
    run: Callable[[], str]
    unready: str = ""
    """What /health says when this step fails: fixed words, never the failure's own detail
    (a path, an exception's text), which /status/warmup shows. Empty: the step's name."""

    @property
    def reason(self) -> str:
        """Why the bot cannot serve when this step failed, for /health."""
        return self.unready or f"start-up step {self.name} failed"


@dataclass(frozen=True)
class WarmupReport:
    """What /status/warmup shows; `status` is what /health says."""

    ready: bool
    finished: bool
    duration_sec: float
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    errors: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    """Why the bot is not ready, in the fixed words of each failed step (for /health)."""

    @property
    def status(self) -> str:
        """'ok', 'starting' or 'degraded'."""
        if self.ready:
            return "ok"
        return "degraded" if self.finished else "starting"

    def as_dict(self) -> dict[str, Any]:
        """The JSON body of /status/warmup."""
        return {
            "ready": self.ready,
            "status": self.status,
            "duration_sec": round(self.duration_sec, 3),
            "checks": self.checks,
            "errors": list(self.errors),
            "warnings": list(self.warnings),
        }


class Warmup:
    """Runs the steps in a daemon thread; `report()` is safe to call from any request."""

    def __init__(
        self,
        steps: Sequence[WarmupStep],
        timeout: float,
        clock: Callable[[], float] = time.monotonic,
        on_done: Callable[[WarmupReport], None] | None = None,
    ) -> None:
        self._steps = tuple(steps)
        self._timeout = timeout
        self._clock = clock
        self._on_done = on_done
        self._lock = threading.Lock()
        self._checks: dict[str, dict[str, Any]] = {}
        self._errors: list[str] = []
        self._warnings: list[str] = []
        self._reasons: list[str] = []
        self._started = clock()
        self._ended: float | None = None
        self._running_step = ""

    def start(self) -> None:
        """Start the steps in the background (once)."""
        self._started = self._clock()
        threading.Thread(target=self._run, name="warmup", daemon=True).start()

    def _run(self) -> None:
        for step in self._steps:
            if self._clock() - self._started > self._timeout:
                break
            with self._lock:
                self._running_step = step.name
            ok, detail, warning = self._run_step(step)
            with self._lock:
                self._checks[step.name] = {"ok": ok, "detail": detail}
                if not ok:
                    self._errors.append(f"{step.name}: {detail}")
                    self._reasons.append(step.reason)
                elif warning:
                    self._warnings.append(f"{step.name}: {detail}")
        with self._lock:
            self._ended = self._clock()
            self._running_step = ""
        if self._on_done is not None:
            self._on_done(self.report())

    @staticmethod
    def _run_step(step: WarmupStep) -> tuple[bool, str, bool]:
        try:
            return True, step.run(), False
        except StepWarning as warning:
            return True, str(warning), True
        except StepFailed as failure:
            return False, str(failure), False
        except Exception as exc:  # a broken step must degrade the bot, not kill the thread
            return False, f"{type(exc).__name__}: {exc}", False

    def report(self) -> WarmupReport:
        """A snapshot: still running, finished, or past its deadline (which counts as failed)."""
        with self._lock:
            now = self._clock()
            ended = self._ended
            elapsed = (ended if ended is not None else now) - self._started
            errors = list(self._errors)
            reasons = list(self._reasons)
            overran = elapsed > self._timeout
            if overran:
                where = f" (stuck in {self._running_step})" if self._running_step else ""
                late = f"warm-up did not finish within WARMUP_TIMEOUT_SEC={self._timeout:g}s"
                errors.append(late + where)
                reasons.append(late)
            finished = ended is not None or overran
            return WarmupReport(
                ready=finished and not errors,
                finished=finished,
                duration_sec=elapsed,
                checks={name: dict(check) for name, check in self._checks.items()},
                errors=tuple(errors),
                warnings=tuple(self._warnings),
                reasons=tuple(reasons),
            )
