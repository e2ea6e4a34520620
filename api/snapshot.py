"""The API's in-memory copy of rates.latest and venues.status, and who is told of its changes.

The snapshot is written only by the feed (api/feed.py) and read by requests on the same
event loop. A record that changes nothing (the pipeline republishes every key each second)
leaves ``version`` as it is, so answers rendered from it stay valid; a change bumps it and
tells the event streams.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace

from schemas.aliases import aliases, canonical
from schemas.records import Latest, VenueStatus
from schemas.topics import ACTIVE_KEY
from schemas.venues import EXCHANGERS


class Changes:
    """Keys changed since a subscriber last looked, coalesced: bounded by the number of keys."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self._event = asyncio.Event()

    def push(self, key: str) -> None:
        self.pending.add(key)
        self._event.set()

    async def wait(self, timeout_s: float) -> set[str]:
        """The keys changed since the last call; empty after ``timeout_s`` without a change."""
        if not self.pending:
            try:
                await asyncio.wait_for(self._event.wait(), timeout_s)
            except TimeoutError:
                return set()
        self._event.clear()
        keys, self.pending = self.pending, set()
        return keys


class Snapshot:
    """Direction -> Latest, the active venue, and each venue's status, as last seen."""

    def __init__(
        self,
        directions: Sequence[str],
        exchangers: Sequence[str] = EXCHANGERS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.directions = tuple(directions)
        #: Aliases of one market (USDTTRC-USD, USDTERC-USD) share one record: the same venue,
        #: value and time in every answer, whichever of their records arrived last.
        self._canonical = canonical(self.directions)
        self._aliases = aliases(self.directions)
        self.exchangers = tuple(exchangers)
        self.latest: dict[str, Latest] = {}
        self.active: Latest | None = None
        self.venues: dict[str, VenueStatus] = {}
        #: Key (direction or ``*``) -> Kafka timestamp (ms) of its last change.
        self.changed_ms: dict[str, int] = {}
        #: Venue -> Kafka timestamp (ms) of its last status record.
        self.status_ms: dict[str, int] = {}
        #: Monotonic time of the last rates.latest record, changed or not.
        self.updated_at: float | None = None
        #: Bumped by every change of a rate: what was rendered from an older version is stale.
        self.version = 0
        self.clock = clock
        self._subscribers: set[Changes] = set()

    # -- writes (the feed) ------------------------------------------------------------------

    def apply(self, record: Latest, stamp_ms: int) -> bool:
        """Store a rates.latest record; True when it changed something.

        A record of a direction with aliases is stored under each of them (the pipeline
        publishes the same record under each: the first to arrive serves them all).
        """
        self.updated_at = self.clock()
        key = record.direction
        if key == ACTIVE_KEY:
            record = record.onto(self.active)
            if self.active == record:
                return False
            self.active = record
            self._changed(key, stamp_ms)
            return True
        names = self._aliases.get(self._canonical.get(key, key), (key,))
        previous = self.latest.get(key)
        record = record.onto(previous)
        if previous == record:
            return False
        for name in names:
            self.latest[name] = record if name == key else replace(record, direction=name)
            self._changed(name, stamp_ms)
        return True

    def apply_status(self, status: VenueStatus, stamp_ms: int) -> bool:
        """Store a venues.status record; True when it changed something."""
        previous = self.venues.get(status.venue)
        self.venues[status.venue] = status
        self.status_ms[status.venue] = stamp_ms
        return previous != status

    def _changed(self, key: str, stamp_ms: int) -> None:
        self.changed_ms[key] = stamp_ms
        self.version += 1
        for subscriber in self._subscribers:
            subscriber.push(key)

    # -- reads ------------------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        return self.active is not None

    def age_s(self) -> float | None:
        """Seconds since the last rates.latest record (None: never one)."""
        return None if self.updated_at is None else self.clock() - self.updated_at

    def subscribe(self) -> Changes:
        changes = Changes()
        self._subscribers.add(changes)
        return changes

    def unsubscribe(self, changes: Changes) -> None:
        self._subscribers.discard(changes)
