"""Exponential backoff with equal jitter, capped: the one delay rule of every retry loop."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with equal jitter, capped; a long-lived attempt resets it."""

    base_s: float = 0.5
    cap_s: float = 30.0
    #: A connection that lived at least this long counts as healthy: the next retry is fast.
    reset_after_s: float = 60.0
    #: A normal end sooner than this is treated like a failure, so a venue that closes at
    #: once cannot make the loop spin.
    min_lived_s: float = 1.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based)."""
        ceiling = min(self.cap_s, self.base_s * 2.0 ** max(0, attempt - 1))
        return ceiling / 2 + rand() * ceiling / 2
