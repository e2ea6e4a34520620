"""Pure time handling of record and replay: the reorder window, the speed and the pacing."""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from datetime import datetime, timedelta

from pipeline.replay.recording import Entry

#: Frames from several partitions arrive interleaved; the recorder holds each this long to
#: write them in ``received_at`` order.
REORDER_WINDOW_S = 1.0


class Reorder:
    """Releases entries in ``received_at`` order, each once ``window_s`` older than the newest."""

    def __init__(self, window_s: float = REORDER_WINDOW_S) -> None:
        self._window = timedelta(seconds=window_s)
        self._heap: list[tuple[datetime, int, Entry]] = []
        self._seq = itertools.count()
        self._newest: datetime | None = None

    def push(self, entry: Entry) -> list[Entry]:
        at = entry.raw.received_at
        heapq.heappush(self._heap, (at, next(self._seq), entry))
        if self._newest is None or at > self._newest:
            self._newest = at
        ready = []
        while self._heap and self._heap[0][0] <= self._newest - self._window:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def drain(self) -> list[Entry]:
        ready = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        self._newest = None
        return ready


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing); ``N`` -> N (> 0)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"expected a positive number or 'max', got {text!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f"expected a positive number or 'max', got {text!r}")
    return speed


class Pacer:
    """When each frame is due: its original offset from the first frame, divided by speed."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self._clock = clock
        self._first: datetime | None = None
        self._start = 0.0

    def delay(self, received_at: datetime) -> float:
        """Seconds to wait before publishing a frame received (originally) at ``received_at``."""
        if self.speed is None:
            return 0.0
        if self._first is None:
            self._first, self._start = received_at, self._clock()
            return 0.0
        due = self._start + (received_at - self._first).total_seconds() / self.speed
        return max(0.0, due - self._clock())
