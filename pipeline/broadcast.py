"""Broadcast state every worker needs whatever partitions it owns, read in full.

Venue states (venues.status), references (rates.reference) and the chosen rates
(rates.latest) are small topics. Each worker follows them with its own group-less consumer
(common/follower.py) from their recent tail: a GlobalTable would do the same, but does not
converge with two workers here (faust-streaming #283).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

from common.follower import Follower
from pipeline import metrics
from pipeline.health import Health, VenueHealth
from pipeline.normalize import References
from schemas.errors import RecordError
from schemas.records import Latest, Quote, VenueStatus
from schemas.settings import CommonSettings
from schemas.topics import ACTIVE_KEY, Topics

log = logging.getLogger(__name__)

Kind = Literal["status", "reference", "latest"]

#: Records read back per partition at start: each topic republishes its keys often.
TAIL: dict[Kind, int] = {"status": 200, "reference": 2000, "latest": 4000}


def kinds(topics: Topics) -> dict[str, Kind]:
    """topic name -> what its records are."""
    return {topics.venues_status: "status", topics.reference: "reference", topics.latest: "latest"}


def published_at(stamp_ms: int, now: datetime) -> datetime:
    """A record's producer timestamp, never in the future (the producer's clock may be ahead)."""
    return min(datetime.fromtimestamp(stamp_ms / 1000, UTC), now)


@dataclass
class Broadcast:
    """This worker's copy of the broadcast topics."""

    health: Health = field(default_factory=Health)
    references: References = field(default_factory=References)
    #: direction (and "*") -> the last record seen on rates.latest, from any worker.
    latest: dict[str, Latest] = field(default_factory=dict)
    #: Set once the tails read at start are applied: decisions wait for it.
    loaded: asyncio.Event = field(default_factory=asyncio.Event)

    def apply_status(self, status: VenueStatus, published_at: datetime) -> None:
        statuses = self.health.statuses
        current = statuses.get(status.venue)
        if current is None or current.seen_at <= published_at:
            statuses[status.venue] = VenueHealth(status.state, status.since, published_at)

    def apply(self, kind: Kind, value: bytes, stamp_ms: int, now: datetime) -> Latest | None:
        """Take one record; return a direction's rates.latest record (not the active venue's).

        A record that does not decode is counted, logged and skipped.
        """
        try:
            if kind == "status":
                self.apply_status(VenueStatus.from_json(value), published_at(stamp_ms, now))
            elif kind == "reference":
                self.references.update(Quote.from_json(value))
            else:
                latest = Latest.from_json(value)
                self.latest[latest.direction] = latest
                return None if latest.direction == ACTIVE_KEY else latest
        except RecordError as exc:
            metrics.BAD_RECORDS.labels(kind).inc()
            log.warning("skipping a bad %s record: %s", kind, exc)
        return None


async def follow(
    state: Broadcast,
    settings: CommonSettings,
    on_latest: Callable[[Latest], Awaitable[None]],
    clock: Callable[[], datetime],
) -> None:
    """Keep ``state`` current forever; ``on_latest`` hears of every direction's record."""
    kind_of = kinds(settings.topics)
    reader = Follower(
        settings.bootstrap,
        {topic: TAIL[kind] for topic, kind in kind_of.items()},
        name="broadcast reader",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )
    async with aclosing(reader.fetches()) as fetches:
        async for fetched in fetches:
            for record in fetched.records:
                value = record.value or b""
                latest = state.apply(kind_of[record.topic], value, record.timestamp, clock())
                if latest is not None:
                    await on_latest(latest)
            if fetched.caught_up and not state.loaded.is_set():
                log.info("broadcast state loaded")
                state.loaded.set()
