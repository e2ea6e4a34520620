"""The Kafka side of the connectors: an outbox between websockets and the producer.

Reading a venue never waits for Kafka: frames go into a bounded outbox (connectors/outbox.py)
that one task drains into the producer. A record stays there until the broker confirms it;
one that fails goes again. While the broker is away the outbox fills; when it is full the
oldest record is dropped and counted, so memory stays bounded and the newest data survives.
When a delivery shows that the broker was replaced (the embedded one restarted or was
recycled, and lost what it held), the records of the last ``CONNECTOR_WINDOW_S`` seconds and
the newest of each key are sent again, so that nothing a venue sent is missing downstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from common.throttle import Throttled
from connectors import metrics
from connectors.outbox import Outbox, Record
from schemas.records import RawFrame, VenueStatus
from schemas.topics import Topics

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where the connection loop puts what it receives."""

    def frame(self, raw: RawFrame, key: str) -> None: ...

    def status(self, status: VenueStatus) -> None: ...


class KafkaPublisher:
    """A Sink that publishes to Kafka from its outbox, retrying until each record is confirmed."""

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        outbox: Outbox | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._producer = producer
        self._topics = topics
        self.outbox = outbox or Outbox()
        self._monotonic = monotonic
        self._ready = asyncio.Event()
        #: Since when records fail (None: they do not); the warning is logged once per 10 s.
        self._failing_since: float | None = None
        self._failures = Throttled(clock=monotonic)

    def _put(self, kind: str, topic: str, key: str, value: bytes) -> None:
        dropped = self.outbox.put(kind, topic, key.encode(), value)
        if dropped is not None:
            metrics.DROPPED.labels(dropped.kind).inc()
        self._gauges()
        self._ready.set()

    def frame(self, raw: RawFrame, key: str) -> None:
        self._put("raw", self._topics.raw(raw.venue), key, raw.to_json())

    def status(self, status: VenueStatus) -> None:
        self._put("status", self._topics.venues_status, status.venue, status.to_json())

    def _gauges(self) -> None:
        box = self.outbox
        metrics.BUFFERED.set(box.waiting)
        metrics.INFLIGHT.set(len(box.inflight))
        metrics.WINDOW_RECORDS.set(len(box.recent))
        metrics.WINDOW_BYTES.set(box.recent_bytes)

    async def run(self, retry_s: float = 0.5) -> None:
        """Hand the outbox to the producer forever."""
        while True:
            record = self.outbox.take()
            if record is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            try:
                delivery = await self._producer.send(
                    record.topic, value=record.value, key=record.key
                )
            except KafkaError as exc:
                self._failed(record, exc)
                await asyncio.sleep(retry_s)
                continue
            delivery.add_done_callback(lambda fut, record=record: self._done(fut, record))

    def _failed(self, record: Record, exc: BaseException) -> None:
        self.outbox.failed(record)
        metrics.PUBLISH_ERRORS.labels(record.kind).inc()
        if self._failing_since is None:
            self._failing_since = self._monotonic()
        held = self._failures.ready()
        if held is not None:
            log.warning(
                "Kafka does not accept records (%s; %d more failures not shown); holding them, "
                "retrying",
                exc or type(exc).__name__,
                held,
            )
        self._gauges()
        self._ready.set()

    def _done(self, fut: asyncio.Future[Any], record: Record) -> None:
        if fut.cancelled():
            self._failed(record, asyncio.CancelledError())
            return
        exc = fut.exception()
        if exc is not None:
            self._failed(record, exc)
            return
        if self._failing_since is not None:
            failed_s = self._monotonic() - self._failing_since
            if failed_s >= 1.0:
                log.info(
                    "Kafka accepts records again after %.1f s; %d waiting",
                    failed_s,
                    self.outbox.waiting,
                )
            self._failing_since = None
        metadata = fut.result()
        metrics.PUBLISHED.labels(record.kind).inc()
        if self.outbox.delivered(record, metadata.partition, metadata.offset, self._monotonic()):
            self._broker_replaced(record.topic)
        self._gauges()
        if self.outbox.waiting:
            self._ready.set()  # room in flight again

    def _broker_replaced(self, topic: str) -> None:
        queued = self.outbox.again()
        metrics.BROKER_REPLACED.inc()
        metrics.REPUBLISHED.inc(queued)
        log.warning(
            "the broker was replaced (the offsets of %s started over) and lost what it held: "
            "sending the %d records of the last %g s (and the newest of each key) again",
            topic,
            queued,
            self.outbox.window_s,
        )
        self._ready.set()

    async def flush(self, timeout_s: float = 5.0) -> None:
        """Wait (bounded) until every record is handed over and confirmed."""
        async with asyncio.timeout(timeout_s):
            while not self.outbox.empty:  # noqa: ASYNC110 - a bounded wait at shutdown only
                await asyncio.sleep(0.01)
            await self._producer.flush()
