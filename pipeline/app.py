"""The Faust app: normalize raw frames, keep the latest-rate table, publish rates.latest."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka

from connectors import registry
from connectors.venues.base import excerpt
from pipeline import metrics
from pipeline.failover import Policy, choose, choose_active
from pipeline.normalize import Conversion, normalize
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


def utcnow() -> datetime:
    return datetime.now(UTC)


class _LogOnce:
    """Logs the first bad frame per (venue, reason) at WARNING, then one line per 10 s."""

    def __init__(self, every_s: float = 10.0) -> None:
        self._last: dict[tuple[str, str], float] = {}
        self._every = every_s

    def __call__(self, venue: str, reason: str, message: str) -> None:
        now = time.monotonic()
        key = (venue, reason)
        if now - self._last.get(key, -self._every) >= self._every:
            self._last[key] = now
            log.warning("%s: %s frame skipped: %s", venue, reason, message)
        else:
            log.debug("%s: %s frame skipped: %s", venue, reason, message)


def create_app(settings: WorkerSettings, clock: Callable[[], datetime] = utcnow) -> faust.App:
    """The Faust app with its topics, table, agents and timer."""
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
    conversion = Conversion(settings.rates_directions, settings.rates_usdt_as_usd)
    policy = Policy(settings.rates_directions, settings.rates_priority, settings.rates_max_age_s)

    raw_topic = app.topic(
        *(topics.raw(v) for v in venues),
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
    )
    normalized_topic = app.topic(
        topics.normalized, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    latest_topic = app.topic(
        topics.latest, key_serializer="raw", value_serializer="raw", partitions=partitions
    )
    # direction -> {venue -> Quote as a dict}; partitioned like rates.normalized.
    table = app.Table("latest_rates", default=dict, partitions=partitions)
    chosen: dict[str, Latest] = {}
    skipped = _LogOnce()

    def decide(direction: str, book: dict[str, Any], now: datetime) -> Latest:
        quotes = {venue: Quote.from_json(q) for venue, q in book.items()}
        previous = chosen.get(direction)
        latest = choose(direction, quotes, previous, policy, now)
        if previous is not None and latest.venue != previous.venue:
            log.info(
                "switch %s: %s -> %s (%s)", direction, previous.venue, latest.venue, latest.reason
            )
            metrics.SWITCHES.labels(direction, str(latest.venue)).inc()
        chosen[direction] = latest
        return latest

    async def publish(latest: Latest, trigger: str) -> None:
        await latest_topic.send(key=latest.direction.encode(), value=latest.to_json())
        metrics.LATEST_PUBLISHED.labels(trigger).inc()

    @app.agent(raw_topic)
    async def normalize_frames(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                raw = RawFrame.from_json(value)
            except RecordError as exc:
                metrics.BAD_FRAMES.labels("?", "bad_record").inc()
                skipped("?", "bad_record", str(exc))
                continue
            metrics.FRAMES.labels(raw.venue).inc()
            try:
                quotes = normalize(raw, venues, conversion)
            except FrameError as exc:
                reason = "unknown_symbol" if isinstance(exc, UnknownSymbol) else "malformed"
                metrics.BAD_FRAMES.labels(raw.venue, reason).inc()
                skipped(raw.venue, reason, f"{exc} in {excerpt(raw.frame)}")
                continue
            for quote in quotes:
                await normalized_topic.send(key=quote.direction.encode(), value=quote.to_json())
                metrics.QUOTES.labels(quote.venue, quote.direction).inc()

    @app.agent(normalized_topic)
    async def track_latest(stream: faust.StreamT[bytes]) -> None:
        async for value in stream:
            try:
                quote = Quote.from_json(value)
            except RecordError as exc:
                skipped("?", "bad_record", str(exc))
                continue
            book = dict(table[quote.direction])
            book[quote.venue] = quote.to_dict()
            table[quote.direction] = book
            await publish(decide(quote.direction, book, clock()), "change")

    @app.timer(interval=settings.rates_publish_interval_s)  # type: ignore[untyped-decorator]
    async def republish() -> None:
        # During a rebalance the table may be mid-recovery and go backwards: publish nothing.
        if app.rebalancing:
            return
        now = clock()
        for direction, book in list(table.items()):
            await publish(decide(direction, dict(book), now), "timer")
        active = choose_active(chosen, chosen.get(ACTIVE_KEY), policy, now)
        previous = chosen.get(ACTIVE_KEY)
        if previous is not None and previous.venue != active.venue:
            log.info(
                "switch active venue: %s -> %s (%s)", previous.venue, active.venue, active.reason
            )
            metrics.SWITCHES.labels(ACTIVE_KEY, str(active.venue)).inc()
        chosen[ACTIVE_KEY] = active
        await publish(active, "timer")

    return app
