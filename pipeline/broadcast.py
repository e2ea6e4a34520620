"""Broadcast state every worker needs whatever partitions it owns, read in full.

Venue states (venues.status), references (rates.reference) and the chosen rates
(rates.latest) are small topics. Each worker follows them with its own group-less consumer
from their recent tail: a GlobalTable would do the same, but does not converge with two
workers here (faust-streaming #283).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from pipeline import metrics
from pipeline.failover import Health, VenueHealth
from pipeline.normalize import References
from schemas.errors import RecordError
from schemas.records import Latest, Quote, VenueStatus
from schemas.topics import ACTIVE_KEY, Topics

log = logging.getLogger(__name__)

#: Records read back per partition at start: each topic republishes its keys often.
TAIL = {"status": 200, "reference": 2000, "latest": 4000}


@dataclass
class Broadcast:
    """This worker's copy of the broadcast topics."""

    health: Health = field(default_factory=Health)
    references: References = field(default_factory=References)
    #: direction (and "*") -> the last record seen on rates.latest, from any worker.
    latest: dict[str, Latest] = field(default_factory=dict)

    def apply_status(self, status: VenueStatus, published_at: datetime) -> None:
        statuses = self.health.statuses
        current = statuses.get(status.venue)
        if current is None or current.seen_at <= published_at:
            statuses[status.venue] = VenueHealth(status.state, status.since, published_at)


def _published_at(record: ConsumerRecord[bytes, bytes], now: datetime) -> datetime:
    """The record's producer timestamp, never in the future."""
    stamp = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    return min(stamp, now)


async def follow(
    bootstrap: str,
    topics: Topics,
    state: Broadcast,
    fetch_max_wait_ms: int,
    on_latest: Callable[[Latest], Awaitable[None]],
    clock: Callable[[], datetime],
) -> None:
    """Keep ``state`` current forever; Kafka errors are logged and the reader restarts."""
    kinds = {
        topics.venues_status: "status",
        topics.reference: "reference",
        topics.latest: "latest",
    }
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=fetch_max_wait_ms,
        )
        try:
            await consumer.start()
            # Known from the metadata fetched at start; missing topics need a new consumer.
            missing = [topic for topic in kinds if not consumer.partitions_for_topic(topic)]
            if missing:
                log.info("waiting for %s to exist", ", ".join(missing))
                await asyncio.sleep(1.0)
                continue
            tps = [
                TopicPartition(topic, p)
                for topic in kinds
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            consumer.assign(tps)
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - TAIL[kinds[tp.topic]]))
            log.info("following %s", ", ".join(kinds))
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for tp, records in batch.items():
                    kind = kinds[tp.topic]
                    for record in records:
                        await _apply(kind, record, state, on_latest, clock)
        except KafkaError as exc:
            log.warning("broadcast reader failed (%s); restarting in 1 s", exc)
            await asyncio.sleep(1.0)
        finally:
            await consumer.stop()


async def _apply(
    kind: str,
    record: ConsumerRecord[bytes, bytes],
    state: Broadcast,
    on_latest: Callable[[Latest], Awaitable[None]],
    clock: Callable[[], datetime],
) -> None:
    try:
        if kind == "status":
            state.apply_status(VenueStatus.from_json(record.value), _published_at(record, clock()))
        elif kind == "reference":
            state.references.update(Quote.from_json(record.value))
        else:
            latest = Latest.from_json(record.value)
            state.latest[latest.direction] = latest
            if latest.direction != ACTIVE_KEY:
                await on_latest(latest)
    except RecordError as exc:
        metrics.BAD_RECORDS.labels(kind).inc()
        log.warning("skipping a bad %s record: %s", kind, exc)
