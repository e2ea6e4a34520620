"""The Faust app: normalize raw frames, keep the latest-rate table, publish rates.latest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import faust
from aiokafka.partitioner import murmur2
from faust.transport.drivers import aiokafka as faust_aiokafka

from common.clock import utcnow
from connectors import registry
from connectors.venues.base import excerpt
from pipeline import metrics
from pipeline.broadcast import Broadcast, follow
from pipeline.latest import LatestRates
from pipeline.normalize import Conversion, Normalized, Normalizer
from pipeline.settings import WorkerSettings
from schemas.errors import FrameError, RecordError, UnknownSymbol
from schemas.records import Latest, Quote, RawFrame
from schemas.topics import ACTIVE_KEY

log = logging.getLogger(__name__)

_ORIGINAL_CONSUMER = faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer


def set_fetch_max_wait(ms: int) -> None:
    """Lower Faust's hard-coded 1500 ms fetch wait (pinned faust-streaming==0.15.3).

    Tansu answers a fetch long-poll only after half the max wait, so the stock value adds
    ~750 ms per hop; 10 ms gives ~5 ms per hop (docs/architecture.md, measured).
    """

    def create(self: Any, transport: Any) -> Any:
        consumer = _ORIGINAL_CONSUMER(self, transport)
        consumer._fetch_max_wait_ms = ms
        return consumer

    faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer = create  # type: ignore[method-assign]


def partition_of(key: str, partitions: int) -> int:
    """The partition the producer's default partitioner (murmur2) gives a key."""
    return int(murmur2(key.encode()) & 0x7FFFFFFF) % partitions


class _Skipped:
    """Counts skipped frames; logs the first per (venue, reason), then one line per 10 s."""

    def __init__(self, every_s: float = 10.0) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._every = every_s

    def __call__(self, venue: str, reason: str, message: str) -> None:
        metrics.BAD_FRAMES.labels(venue, reason).inc()
        now = time.monotonic()
        key = (venue, reason)
        if now - self._last.get(key, -self._every) >= self._every:
            self._last[key] = now
            log.warning("%s: %s frame skipped: %s", venue, reason, message)
        else:
            log.debug("%s: %s frame skipped: %s", venue, reason, message)


def create_app(settings: WorkerSettings, clock: Callable[[], datetime] = utcnow) -> faust.App:
    """The Faust app with its topics, table, agents and timers."""
    set_fetch_max_wait(settings.kafka_fetch_max_wait_ms)
    topics = settings.topics
    partitions = settings.rates_partitions
    app = faust.App(
        topics.app_id,
        broker=f"kafka://{settings.bootstrap}",
        store="memory://",
        datadir=str(settings.rates_state_dir / "faust" / topics.app_id),
        topic_partitions=partitions,
        # Tansu makes every group join take session_timeout/2 (docs/architecture.md).
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
        producer_linger=0.001,
        web_enabled=False,
    )
    venues = {name: registry.get(name) for name in settings.rates_venues}
    policy = settings.policy()
    broadcast = Broadcast()
    normalizer = Normalizer(
        venues,
        Conversion(settings.rates_directions, settings.rates_usdt_as_usd),
        policy,
        broadcast.references,
        broadcast.health,
    )
    rates = LatestRates(policy, broadcast)
    skipped = _Skipped()

    def raw(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer="raw", partitions=partitions)

    raw_topic = app.topic(
        *(topics.raw(v) for v in venues),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    normalized_topic = raw(topics.normalized)
    latest_topic = raw(topics.latest)
    reference_topic = raw(topics.reference)
    # direction -> {venue -> Quote as a dict}: the durable copy of the books, partitioned
    # like rates.normalized, so a worker taking over a partition recovers its books.
    table = app.Table("latest_rates", default=dict, partitions=partitions)
    written: dict[str, float] = {}

    def owned(direction: str) -> bool:
        tp = (topics.normalized, partition_of(direction, partitions))
        return any((t.topic, t.partition) == tp for t in app.assignor.assigned_actives())

    def frame_quotes(value: bytes) -> Normalized | None:
        try:
            frame = RawFrame.from_json(value)
        except RecordError as exc:
            skipped("?", "bad_record", str(exc))
            return None
        metrics.FRAMES.labels(frame.venue).inc()
        now = clock()
        try:
            return normalizer(frame, now)
        except FrameError as exc:
            reason = "unknown_symbol" if isinstance(exc, UnknownSymbol) else "malformed"
            skipped(frame.venue, reason, f"{exc} in {excerpt(frame.frame)}")
            return None

    async def publish(latest: Latest, trigger: str) -> None:
        await latest_topic.send(key=latest.direction.encode(), value=latest.to_json())
        metrics.LATEST_PUBLISHED.labels(trigger).inc()

    @app.agent(raw_topic)
    async def normalize_frames(stream: faust.StreamT[bytes]) -> None:
        await broadcast.loaded.wait()  # references and venue states first
        async for value in stream:
            result = frame_quotes(value)
            if result is None:
                continue
            for ref in result.references:
                key = f"{ref.direction}|{ref.venue}".encode()
                await reference_topic.send(key=key, value=ref.to_json())
                metrics.REFERENCES.labels(ref.venue, ref.direction).inc()
            for quote in result.quotes:
                await normalized_topic.send(key=quote.direction.encode(), value=quote.to_json())
                metrics.QUOTES.labels(quote.venue, quote.direction).inc()

    @app.agent(normalized_topic)
    async def track_latest(stream: faust.StreamT[bytes]) -> None:
        await broadcast.loaded.wait()  # venue states and previous choices first
        async for value in stream:
            try:
                quote = Quote.from_json(value)
            except RecordError as exc:
                metrics.BAD_RECORDS.labels("normalized").inc()
                log.warning("skipping a bad rates.normalized record: %s", exc)
                continue
            direction = quote.direction
            if direction not in rates.books:
                rates.load(direction, {v: Quote.from_json(q) for v, q in table[direction].items()})
            latest = rates.add(quote, clock())
            now = time.monotonic()
            if now - written.get(direction, -1e9) >= settings.rates_table_write_interval_s:
                table[direction] = {v: q.to_dict() for v, q in rates.books[direction].items()}
                written[direction] = now
            if latest is not None:
                await publish(latest, "change")

    @app.timer(interval=settings.rates_publish_interval_s)  # type: ignore[untyped-decorator]
    async def republish() -> None:
        # During a rebalance the table may be mid-recovery and go backwards: publish nothing.
        if app.rebalancing or not broadcast.loaded.is_set():
            return
        now = clock()
        for direction in settings.rates_directions:
            if not owned(direction):
                rates.forget(direction)
                continue
            if direction not in rates.books:
                recovered = table.get(direction) or {}
                if not recovered:
                    continue
                rates.load(direction, {v: Quote.from_json(q) for v, q in recovered.items()})
            await publish(rates.decide(direction, now), "timer")

    async def on_latest(record: Latest) -> None:
        # The leader owns the active venue. It reacts at once when the active venue is
        # unhealthy (or there is none yet); coverage changes wait for the timer, because
        # directions are decided on different workers and may disagree for milliseconds.
        if not app.is_leader() or app.rebalancing or not broadcast.loaded.is_set():
            return
        now = clock()
        current = rates.chosen.get(ACTIVE_KEY) or broadcast.latest.get(ACTIVE_KEY)
        healthy = (
            current is not None
            and current.venue is not None
            and broadcast.health.healthy_for(current.venue, now, policy) is not None
        )
        if healthy:
            return
        active = rates.active(now)
        if current is None or current.venue != active.venue:
            await publish(active, "change")

    @app.timer(interval=settings.rates_publish_interval_s, on_leader=True)  # type: ignore[untyped-decorator]
    async def republish_active() -> None:
        if not app.rebalancing and broadcast.loaded.is_set():
            await publish(rates.active(clock()), "timer")

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **_: Any) -> None:
        (assigned,) = args
        mine = sorted(tp.partition for tp in assigned if tp.topic == topics.normalized)
        metrics.OWNED_PARTITIONS.set(len(mine))
        log.info("owning partitions %s of %s", mine, topics.normalized)

    @app.task  # type: ignore[untyped-decorator]
    async def follow_broadcast() -> None:
        await follow(
            settings.bootstrap,
            topics,
            broadcast,
            settings.kafka_fetch_max_wait_ms,
            on_latest,
            clock,
        )

    return app
