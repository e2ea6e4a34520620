"""The Faust app: normalize raw frames, keep the latest-rate table, publish rates.latest.

:class:`Pipeline` declares the topics, the table, two agents, two timers and the broadcast
reader; the decisions are made by pure code it calls (pipeline/normalize.py,
pipeline/latest.py, pipeline/failover.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2

from common.clock import utcnow
from common.throttle import Throttled
from connectors import registry
from connectors.venues.base import excerpt
from pipeline import metrics, workarounds
from pipeline.broadcast import Broadcast, follow
from pipeline.latest import DurableBooks, LatestRates
from pipeline.normalize import Conversion, Normalized, Normalizer
from pipeline.settings import WorkerSettings
from schemas.errors import FrameError, RecordError, UnknownSymbol
from schemas.records import Latest, Quote, RawFrame
from schemas.topics import ACTIVE_KEY

log = logging.getLogger(__name__)


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner (murmur2) gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


@dataclass(frozen=True, slots=True)
class Skipped:
    """A raw frame that yields no quote, and why."""

    venue: str
    reason: str  # bad_record, malformed, unknown_symbol
    message: str


def normalize_frame(value: bytes, normalizer: Normalizer, now: datetime) -> Normalized | Skipped:
    """A ticks.raw record's quotes and references, or why there are none."""
    try:
        frame = RawFrame.from_json(value)
    except RecordError as exc:
        return Skipped("?", "bad_record", str(exc))
    metrics.FRAMES.labels(frame.venue).inc()
    try:
        return normalizer(frame, now)
    except FrameError as exc:
        reason = "unknown_symbol" if isinstance(exc, UnknownSymbol) else "malformed"
        return Skipped(frame.venue, reason, f"{exc} in {excerpt(frame.frame)}")


def faust_app(settings: WorkerSettings) -> faust.App:
    """The Faust app, configured for Tansu (docs/architecture.md)."""
    app = faust.App(
        settings.topics.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=str(settings.rates_state_dir / "faust" / settings.topics.app_id),
        topic_partitions=settings.rates_partitions,
        # Tansu makes every group join take session_timeout/2.
        broker_session_timeout=settings.worker_session_timeout_s,
        broker_heartbeat_interval=1.0,
        broker_rebalance_timeout=settings.worker_session_timeout_s,
        # Tansu under-reports ListOffsets(latest); the check would fail recovery.
        recovery_consistency_check=False,
        # Tansu has no idempotent producer or transactions.
        processing_guarantee="at_least_once",
        # Standbys (like GlobalTable) stop converging with two workers (faust-streaming #283).
        table_standby_replicas=0,
        producer_acks=-1,
        producer_linger=settings.kafka_linger_ms / 1000,
        producer_compression_type=settings.compression_type,
        web_enabled=False,
    )
    workarounds.lower_fetch_max_wait(app, settings.kafka_fetch_max_wait_ms)
    if settings.kafka_idempotent:
        workarounds.make_producer_idempotent(app)
    return app


class Pipeline:
    """The worker's app: its topics, the table ``latest_rates``, agents, timers and tasks."""

    def __init__(self, settings: WorkerSettings, clock: Callable[[], datetime] = utcnow) -> None:
        self.settings = settings
        self.clock = clock
        self.app = app = faust_app(settings)
        self.partitions = partitions = settings.rates_partitions
        topics = settings.topics
        venues = {name: registry.get(name) for name in settings.rates_venues}
        policy = settings.policy()
        self.broadcast = Broadcast()
        self.normalizer = Normalizer(
            venues,
            Conversion(settings.rates_directions, settings.rates_usdt_as_usd),
            policy,
            self.broadcast.references,
            self.broadcast.health,
        )
        self.rates = LatestRates(policy, self.broadcast)
        self.skip_logs: dict[tuple[str, str], Throttled] = {}

        self.raw_topic = self._topic(*(topics.raw(v) for v in venues))
        self.normalized_topic = self._topic(topics.normalized)
        self.latest_topic = self._topic(topics.latest)
        self.reference_topic = self._topic(topics.reference)
        # direction -> {venue -> Quote as a dict}: the durable copy of the books, partitioned
        # like rates.normalized, so a worker taking over a partition recovers its books.
        table = app.Table("latest_rates", default=dict, partitions=partitions)
        self.books = DurableBooks(self.rates, table, settings.rates_table_write_interval_s)

        app.agent(self.raw_topic, name="normalize_frames")(self.normalize_frames)
        app.agent(self.normalized_topic, name="track_latest")(self.track_latest)
        interval = settings.rates_publish_interval_s
        app.timer(interval, name="republish")(self.republish)
        app.timer(interval, on_leader=True, name="republish_active")(self.republish_active)
        app.task(self.follow_broadcast)
        app.on_partitions_assigned.connect(self.on_assigned)

    def _topic(self, *names: str) -> faust.TopicT:
        return self.app.topic(
            *names, key_serializer="raw", value_serializer="raw", partitions=self.partitions
        )

    # -- agents ---------------------------------------------------------------------------

    async def normalize_frames(self, frames: faust.StreamT[bytes]) -> None:
        await self.broadcast.loaded.wait()  # references and venue states first
        async for value in frames:
            result = normalize_frame(value, self.normalizer, self.clock())
            if isinstance(result, Skipped):
                self.skip(result)
            else:
                await self.send(result)

    async def track_latest(self, quotes: faust.StreamT[bytes]) -> None:
        await self.broadcast.loaded.wait()  # venue states and previous choices first
        async for value in quotes:
            try:
                quote = Quote.from_json(value)
            except RecordError as exc:
                metrics.BAD_RECORDS.labels("normalized").inc()
                log.warning("skipping a bad rates.normalized record: %s", exc)
                continue
            latest = self.books.add(quote, self.clock())
            if latest is not None:
                await self.publish(latest, "change")

    # -- timers and the broadcast reader ----------------------------------------------------

    async def republish(self) -> None:
        """Every owned direction, with every venue's quote, each publish interval."""
        if not self.deciding():
            return
        now = self.clock()
        for direction in self.settings.rates_directions:
            if self.rates.is_alias(direction):
                continue  # published with its canonical direction
            if not self.owned(direction):
                self.rates.forget(direction)
            elif self.books.recover(direction):
                await self.publish(self.rates.decide(direction, now), "timer")

    async def republish_active(self) -> None:
        """The active venue (key ``*``), from the consumer group's leader only.

        Not before some direction's rate is on rates.latest: a worker that just started on
        an empty broker (a new one, after a recycle) would otherwise announce that no venue
        is fresh, and the API would answer 503 until the rates arrive.
        """
        if self.deciding() and self.rates.seen_rates():
            active = self.rates.active(self.clock())
            if active is not None:  # None: some direction still warming up
                await self.publish(active, "timer")

    async def on_latest(self, record: Latest) -> None:
        """A direction's record on rates.latest: the leader checks the active venue at once."""
        if self.app.is_leader() and self.deciding():
            active = self.rates.active_if_unhealthy(self.clock())
            if active is not None:
                await self.publish(active, "change")

    async def follow_broadcast(self) -> None:
        await follow(self.broadcast, self.settings, self.on_latest, self.clock)

    async def on_assigned(self, sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        (assigned,) = args
        normalized = self.settings.topics.normalized
        mine = sorted(tp.partition for tp in assigned if tp.topic == normalized)
        metrics.OWNED_PARTITIONS.set(len(mine))
        log.info("owning partitions %s of %s", mine, normalized)

    # -- helpers --------------------------------------------------------------------------

    def deciding(self) -> bool:
        # During a rebalance the table may be mid-recovery and go backwards; before the
        # broadcast state is loaded, venue states and previous choices are unknown.
        return not self.app.rebalancing and self.broadcast.loaded.is_set()

    def owned(self, direction: str) -> bool:
        tp = (self.settings.topics.normalized, partition_of(direction, self.partitions))
        return any((t.topic, t.partition) == tp for t in self.app.assignor.assigned_actives())

    async def send(self, result: Normalized) -> None:
        for ref in result.references:
            key = f"{ref.direction}|{ref.venue}".encode()
            await self.reference_topic.send(key=key, value=ref.to_json())
            metrics.REFERENCES.labels(ref.venue, ref.direction).inc()
        for quote in result.quotes:
            await self.normalized_topic.send(key=quote.direction.encode(), value=quote.to_json())
            metrics.QUOTES.labels(quote.venue, quote.direction).inc()

    async def publish(self, latest: Latest, trigger: str) -> None:
        """A change of a rate carries only the chosen venue's quote; the timer's record has
        every venue's (rates.latest readers merge the two: ``Latest.onto``). A direction's
        aliases (USDTERC-USD for USDTTRC-USD) get the same record under their own key."""
        partial = trigger == "change" and latest.direction != ACTIVE_KEY
        record = latest.change() if partial else latest
        for name in self.rates.names(latest.direction):
            named = record if name == record.direction else replace(record, direction=name)
            await self.latest_topic.send(key=name.encode(), value=named.to_json())
            metrics.LATEST_PUBLISHED.labels(trigger).inc()

    def skip(self, skipped: Skipped) -> None:
        """Count a skipped frame; log the first per venue and reason, then one per 10 s."""
        metrics.BAD_FRAMES.labels(skipped.venue, skipped.reason).inc()
        throttle = self.skip_logs.setdefault((skipped.venue, skipped.reason), Throttled())
        held = throttle.ready()
        if held is None:
            log.debug("%s: %s frame skipped: %s", skipped.venue, skipped.reason, skipped.message)
        else:
            log.warning(
                "%s: %s frame skipped (%d more not shown): %s",
                skipped.venue,
                skipped.reason,
                held,
                skipped.message,
            )


def create_app(settings: WorkerSettings, clock: Callable[[], datetime] = utcnow) -> faust.App:
    """The Faust app with its topics, table, agents and timers."""
    return Pipeline(settings, clock).app
