"""Throttled logging: a repeated event is logged once per interval, with a count of the rest."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Throttled:
    """Logs a repeated event once per ``every_s``, counting what it held back."""

    every_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None
    _held: int = field(default=0)

    def ready(self) -> int | None:
        """None to stay quiet; else the number of events held back since the last log."""
        now = self.clock()
        if self._last is None or now - self._last >= self.every_s:
            held, self._held, self._last = self._held, 0, now
            return held
        self._held += 1
        return None
