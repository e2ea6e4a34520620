"""Publishing replayed frames: fresh receive times, pacing, venue states and a progress bar.

A replay publishes the frames back to ``ticks.raw.<venue>`` (under another topic prefix) with
a fresh ``received_at``, the original kept as ``recorded_at``, so the same agents normalize
them again and freshness works as live; its pacing follows the original inter-arrival times
divided by the speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import replace
from datetime import datetime
from typing import Any, NoReturn, TextIO

from aiokafka import AIOKafkaProducer
from tqdm import tqdm

from common.clock import utcnow
from pipeline.replay.recording import Entry
from pipeline.replay.timing import Pacer
from schemas.errors import BrokerUnavailable
from schemas.records import RawFrame, VenueState, VenueStatus
from schemas.settings import CommonSettings
from schemas.topics import Topics

#: The replayer republishes each venue's state this often (a connector does at least every 5 s).
STATUS_EVERY_S = 1.0
#: Deliveries awaited at once: the producer is flushed and every delivery checked this often.
SETTLE_EVERY = 5000


def replayed(raw: RawFrame, now: datetime) -> RawFrame:
    """The frame as replayed now: fresh ``received_at``, the original kept as ``recorded_at``."""
    return replace(raw, received_at=now, recorded_at=raw.recorded_at or raw.received_at)


def replay_producer(settings: CommonSettings) -> AIOKafkaProducer:
    options = settings.producer_options()
    # Big batches at full speed (aiokafka sends one request per partition at a time, so
    # the default 16 KiB caps a replay at a few thousand frames/s); a few ms of delay at 1x.
    options.update(linger_ms=5, max_batch_size=1 << 20)
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **options)


def progress_bar(total: float, unit: str, stream: TextIO) -> tqdm[NoReturn]:
    """A replay's progress bar on ``stream``, shown only when it is a terminal."""
    return tqdm(
        total=total,
        desc="replay",
        unit=unit,
        unit_scale=True,
        file=stream,
        mininterval=0.1,
        disable=not stream.isatty(),
    )


def advance(bar: tqdm[NoReturn], done: float, frames: int) -> None:
    """Show ``done`` (of the bar's total) and the frames published so far."""
    if bar.disable:
        return
    bar.set_postfix_str(f"{frames} frames", refresh=False)
    bar.update(done - bar.n)


class Replayer:
    """Publishes entries to ``ticks.raw.<venue>`` under a topic prefix, paced by speed.

    It also publishes each replayed venue's state to ``venues.status`` (``up`` while its
    frames flow, ``down`` at the end), as a connector would.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        speed: float | None,
        source: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.speed = speed
        self.source = source
        self.clock = clock
        self.count = 0
        self._deliveries: list[asyncio.Future[Any]] = []
        self._last_frame: dict[str, datetime] = {}
        self._status_at = 0.0
        self._started = clock()

    async def publish(
        self, entries: AsyncIterator[Entry] | Iterable[Entry], progress: Callable[[int], None]
    ) -> int:
        """Publish every entry in order (``progress`` is told the count after each one)."""
        pacer = Pacer(self.speed)
        self._started = self.clock()
        async for entry in _aiter(entries):
            delay = pacer.delay(entry.raw.received_at)
            if delay > 0:
                await asyncio.sleep(delay)
            raw = replayed(entry.raw, self.clock())
            self._deliveries.append(
                await self.producer.send(
                    self.topics.raw(raw.venue), key=entry.key.encode(), value=raw.to_json()
                )
            )
            self.count += 1
            self._last_frame[raw.venue] = raw.received_at
            if len(self._deliveries) >= SETTLE_EVERY:
                await self._settle()
            if time.monotonic() - self._status_at >= STATUS_EVERY_S:
                await self._status("up", self.source)
            progress(self.count)
        await self._status("down", f"{self.source} finished")
        await self._settle()
        return self.count

    async def _status(self, state: VenueState, detail: str) -> None:
        self._status_at = time.monotonic()
        since = self._started if state == "up" else self.clock()
        for venue, last in self._last_frame.items():
            status = VenueStatus(venue, state, since, last, detail)
            self._deliveries.append(
                await self.producer.send(
                    self.topics.venues_status, key=venue.encode(), value=status.to_json()
                )
            )

    async def _settle(self) -> None:
        pending, self._deliveries = self._deliveries, []
        await self.producer.flush()
        for delivery in pending:
            exc = delivery.exception()
            if exc is not None:
                raise BrokerUnavailable(f"the broker did not accept a replayed frame: {exc}")


async def _aiter(entries: AsyncIterator[Entry] | Iterable[Entry]) -> AsyncIterator[Entry]:
    if isinstance(entries, AsyncIterator):
        async for entry in entries:
            yield entry
        return
    for number, entry in enumerate(entries):
        yield entry
        if number % 500 == 499:
            await asyncio.sleep(0)  # reading a file never blocks: let the producer run
