"""The Kafka side of the connectors: a bounded buffer between websockets and the producer.

Reading a venue never waits for Kafka: frames go into a bounded queue that one task drains
into the producer. While the broker is away the queue fills; when it is full the oldest
record is dropped and counted, so memory stays bounded and the newest data survives.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from connectors import metrics
from schemas.records import RawFrame, VenueStatus
from schemas.topics import Topics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where the connection loop puts what it receives."""

    def frame(self, raw: RawFrame, key: str) -> None: ...

    def status(self, status: VenueStatus) -> None: ...


class KafkaPublisher:
    """A Sink that publishes to Kafka from a bounded buffer, retrying while the broker is away."""

    def __init__(self, producer: AIOKafkaProducer, topics: Topics, capacity: int = 50_000) -> None:
        self._producer = producer
        self._topics = topics
        self._buffer: deque[tuple[str, str, bytes, bytes]] = deque()
        self._capacity = capacity
        self._ready = asyncio.Event()
        self._failing = False

    def _put(self, kind: str, topic: str, key: str, value: bytes) -> None:
        if len(self._buffer) >= self._capacity:
            dropped_kind = self._buffer.popleft()[0]
            metrics.DROPPED.labels(dropped_kind).inc()
        self._buffer.append((kind, topic, key.encode(), value))
        metrics.BUFFERED.set(len(self._buffer))
        self._ready.set()

    def frame(self, raw: RawFrame, key: str) -> None:
        self._put("raw", self._topics.raw(raw.venue), key, raw.to_json())

    def status(self, status: VenueStatus) -> None:
        self._put("status", self._topics.venues_status, status.venue, status.to_json())

    async def run(self, retry_s: float = 0.5) -> None:
        """Drain the buffer into the producer forever."""
        while True:
            if not self._buffer:
                self._ready.clear()
                await self._ready.wait()
                continue
            kind, topic, key, value = self._buffer[0]
            try:
                delivery = await self._producer.send(topic, value=value, key=key)
            except KafkaError as exc:
                metrics.PUBLISH_ERRORS.labels(kind).inc()
                if not self._failing:
                    log.warning("Kafka does not accept records (%s); buffering, retrying", exc)
                    self._failing = True
                await asyncio.sleep(retry_s)
                continue
            if self._failing:
                log.info("Kafka accepts records again; %d buffered", len(self._buffer))
                self._failing = False
            self._buffer.popleft()
            metrics.BUFFERED.set(len(self._buffer))
            metrics.PUBLISHED.labels(kind).inc()
            delivery.add_done_callback(lambda fut, kind=kind: self._delivered(fut, kind))

    def _delivered(self, fut: asyncio.Future[object], kind: str) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if exc is not None:
            metrics.PUBLISH_ERRORS.labels(kind).inc()
            log.warning("Kafka lost a %s record after retries: %s", kind, exc)

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until the buffer is handed over and the producer has sent it."""
        async with asyncio.timeout(timeout_s):
            while self._buffer:  # noqa: ASYNC110 - a bounded wait at shutdown only
                await asyncio.sleep(0.01)
            await self._producer.flush()
