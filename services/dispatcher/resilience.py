"""Failure handling around one spoke: the retry policy (exponential backoff, full jitter), the circuit breaker, and
readiness (NotReady when the API has not answered for a while)."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    base_seconds: float = 0.1
    max_seconds: float = 2.0

    def delay(self, attempt: int, rng: Callable[[], float] = random.random) -> float:
        """Full jitter: uniform in [0, min(max, base * 2**attempt)]."""
        return rng() * min(self.max_seconds, self.base_seconds * 2**attempt)


class CircuitBreaker:
    """Closed -> open after `failures` consecutive failures; open fails calls at once for `open_seconds`; then
    half-open lets one call through, whose outcome closes or re-opens it."""

    def __init__(self, failures: int, open_seconds: float, now: Callable[[], float] = time.monotonic):
        self.failures_to_open = failures
        self.open_seconds = open_seconds
        self._now = now
        self.failures = 0
        self.opened_at: float | None = None
        self._trial = False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None

    def allow(self) -> bool:
        if self.opened_at is None:
            return True
        if self._now() - self.opened_at >= self.open_seconds and not self._trial:
            self._trial = True
            return True
        return False

    def record_success(self) -> None:
        self.failures = 0
        self.opened_at = None
        self._trial = False

    def record_failure(self) -> None:
        self.failures += 1
        self._trial = False
        if self.opened_at is not None or self.failures >= self.failures_to_open:
            self.opened_at = self._now()


class Readiness:
    """Ready while the API has answered within `not_ready_after` seconds. Starts undecided: a spoke never heard
    from turns NotReady only once that time has passed since start."""

    def __init__(self, not_ready_after: float, now: Callable[[], float] = time.monotonic):
        self.not_ready_after = not_ready_after
        self._now = now
        self.last_contact = now()
        self.ready: bool | None = None
        self.reason = "not contacted yet"

    def contact(self) -> bool:
        """Record an answer; True if the spoke just turned Ready."""
        self.last_contact = self._now()
        changed = self.ready is not True
        self.ready, self.reason = True, ""
        return changed

    def check(self, why: str = "") -> bool:
        """True if the spoke just turned NotReady."""
        silent = self._now() - self.last_contact
        if self.ready is not False and silent >= self.not_ready_after:
            self.ready = False
            self.reason = f"API has not answered for {silent:.1f}s" + (f": {why}" if why else "")
            return True
        return False
