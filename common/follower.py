"""Follows topics without a consumer group: every partition, from a recent tail, forever.

Each API process and each worker keeps its own in-memory copy of a few small topics
(rates.latest, venues.status, rates.reference). Tansu never compacts, so the copy is rebuilt
from the recent tail of each partition (every key is republished often), not from offset 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping
from dataclasses import dataclass
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from common.backoff import Backoff

log = logging.getLogger(__name__)

#: A record of a followed topic, as aiokafka returns it.
Record: TypeAlias = ConsumerRecord[bytes, bytes]

#: Restarts after a Kafka error: the first within a second, then up to 5 s apart.
RESTART = Backoff(base_s=0.5, cap_s=5.0, reset_after_s=30.0)


@dataclass(frozen=True, slots=True)
class Fetched:
    """What one poll returned."""

    records: list[Record]
    #: Every partition of every topic has been read up to the high-water mark of the fetch
    #: responses (Tansu's ListOffsets under-reports, its fetch high-water mark does not).
    #: Stays true for the life of the consumer; a restart starts over.
    caught_up: bool
    #: The first poll of a consumer: the broker answered (again).
    first: bool


def tail_start(end: int, tail: int) -> int:
    """Where to start reading to get the last ``tail`` records before ``end``."""
    return max(0, end - tail)


class Follower:
    """Reads ``tails`` (topic -> records to read back per partition) without a group."""

    def __init__(
        self,
        bootstrap: str,
        tails: Mapping[str, int],
        *,
        name: str,
        fetch_max_wait_ms: int,
        backoff: Backoff = RESTART,
        on_error: Callable[[KafkaError], None] | None = None,
        recheck_s: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.tails = dict(tails)
        self.name = name
        self.fetch_max_wait_ms = fetch_max_wait_ms
        self.backoff = backoff
        self.on_error = on_error
        #: While a topic is missing, the broker is asked this often whether it exists now.
        self.recheck_s = recheck_s

    async def fetches(self) -> AsyncGenerator[Fetched, None]:
        """Every poll's records, forever; Kafka errors restart the consumer with backoff.

        Use it under ``contextlib.aclosing`` so that the consumer stops with the caller.
        """
        attempt = 0
        kept: dict[TopicPartition, int] = {}  # positions carried over a restart for new topics
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self.bootstrap,
                group_id=None,
                enable_auto_commit=False,
                fetch_max_wait_ms=self.fetch_max_wait_ms,
            )
            started = time.monotonic()
            try:
                await consumer.start()
                missing = await self._assign(consumer, kept)
                kept = {}
                recheck_at = time.monotonic() + self.recheck_s
                caught_up, first = False, True
                while True:
                    batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                    caught_up = caught_up or await self._caught_up(consumer)
                    yield Fetched([r for rs in batch.values() for r in rs], caught_up, first)
                    first = False
                    if not missing or time.monotonic() < recheck_at:
                        continue
                    recheck_at = time.monotonic() + self.recheck_s
                    if missing & await consumer.topics():
                        # A new topic needs a new consumer (the metadata of one is fetched
                        # at start); the partitions already followed keep their positions.
                        kept = {tp: await consumer.position(tp) for tp in consumer.assignment()}
                        break
            except KafkaError as exc:
                if time.monotonic() - started >= self.backoff.reset_after_s:
                    attempt = 0
                attempt += 1
                delay = self.backoff.delay(attempt)
                log.warning("%s failed (%s); restarting in %.1f s", self.name, exc, delay)
                if self.on_error is not None:
                    self.on_error(exc)
                await asyncio.sleep(delay)
            finally:
                await consumer.stop()

    async def _assign(
        self, consumer: AIOKafkaConsumer, kept: Mapping[TopicPartition, int]
    ) -> set[str]:
        """Assign every partition of the topics that exist; return the missing topics."""
        found = {topic: consumer.partitions_for_topic(topic) for topic in self.tails}
        missing = {topic for topic, parts in found.items() if not parts}
        tps = [TopicPartition(t, p) for t, parts in found.items() for p in sorted(parts or ())]
        consumer.assign(tps)
        if tps:
            # end_offsets() under-reports on Tansu by a batch at most: the tails are generous.
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, kept.get(tp, tail_start(ends[tp], self.tails[tp.topic])))
        followed = sorted(topic for topic in self.tails if topic not in missing)
        if followed:
            log.info("%s: following %s (%d partitions)", self.name, ", ".join(followed), len(tps))
        if missing:
            log.info("%s: waiting for %s to exist", self.name, ", ".join(sorted(missing)))
        return missing

    async def _caught_up(self, consumer: AIOKafkaConsumer) -> bool:
        assigned = consumer.assignment()
        if {tp.topic for tp in assigned} != set(self.tails):
            return False
        for tp in assigned:
            highwater = consumer.highwater(tp)  # None until a fetch for it was answered
            if highwater is None or await consumer.position(tp) < highwater:
                return False
        return True
