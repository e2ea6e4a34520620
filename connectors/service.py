"""The connector process: one supervised connection (or poll) per venue, publishing to Kafka."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import aiohttp
from aiokafka import AIOKafkaProducer
from websockets.exceptions import ConnectionClosed, InvalidStatus

from common.backoff import Backoff
from common.clock import utcnow
from connectors import http, metrics, registry, subscriptions
from connectors.connection import (
    ConnectionContext,
    RateLimiter,
    connect_once,
    publish_status_change,
)
from connectors.outbox import Outbox
from connectors.polling import poll_once
from connectors.publisher import KafkaPublisher, Sink
from connectors.settings import ConnectorSettings
from connectors.status import VenueTracker
from connectors.subscriptions import Plan
from connectors.supervisor import Attempt, supervise
from connectors.symbols import count_missing, plan_venue, report
from connectors.venues.base import PollingVenue, Venue, WebsocketVenue
from schemas.errors import RateLimited, VenueError
from schemas.records import VENUE_STATES

log = logging.getLogger(__name__)


def describe(exc: BaseException | None) -> tuple[str, str]:
    """(metric reason, plain words) for why a connection ended."""
    if exc is None:
        return "requested", "the venue asked to reconnect"
    if isinstance(exc, socket.gaierror):
        return "error", f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "error", "connection refused"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return describe(exc.os_error)
    if isinstance(exc, RateLimited):
        return "limited", str(exc)
    if isinstance(exc, VenueError):
        return "error", str(exc)
    if isinstance(exc, InvalidStatus):
        return "error", f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed | aiohttp.ServerDisconnectedError):
        return "closed", f"the venue closed the connection ({exc})"
    if isinstance(exc, TimeoutError):
        return "silent", str(exc) or "no answer in time"
    return "error", f"{type(exc).__name__}: {exc}"


class Reachability:
    """Says once, in plain words, when no venue could be reached at all (no internet?)."""

    def __init__(self, venues: Sequence[str]) -> None:
        self._failed: dict[str, str] = {}
        self._venues = set(venues)
        self._up: set[str] = set()
        self._said = False

    def up(self, venue: str) -> None:
        self._up.add(venue)

    def failed(self, venue: str, why: str) -> str | None:
        """The message to log once every venue failed before any came up, else None."""
        self._failed.setdefault(venue, why)
        if self._said or self._up or set(self._failed) != self._venues:
            return None
        self._said = True
        per_venue = "; ".join(f"{v}: {w}" for v, w in sorted(self._failed.items()))
        return (
            f"No venue is reachable ({per_venue}). If this machine has no internet access, "
            "`make demo` runs the whole pipeline on the local venue simulator."
        )


def _on_retry(ctx: ConnectionContext[Any], reach: Reachability, attempt: Attempt) -> None:
    venue = ctx.venue.name
    reason, words = describe(attempt.error)
    metrics.RECONNECTS.labels(venue, reason).inc()
    ctx.tracker.down(ctx.clock(), words)
    publish_status_change(ctx)
    level = logging.INFO if attempt.error is None else logging.WARNING
    log.log(
        level,
        "%s: %s; reconnecting in %.1f s (attempt %d)",
        venue,
        words,
        attempt.delay_s,
        attempt.attempt,
    )
    if not ctx.tracker.ever_up:
        message = reach.failed(venue, words)
        if message:
            log.warning(message)


async def publish_status(
    trackers: Sequence[VenueTracker],
    sink: Sink,
    reach: Reachability,
    clock: Callable[[], datetime],
    every_s: float = 0.5,
) -> None:
    """Keep venues.status and the state metrics current (republished at least every 5 s)."""
    while True:
        now = clock()
        for tracker in trackers:
            tracker.tick(now)
            if tracker.ever_up:
                reach.up(tracker.venue)
            for state in VENUE_STATES:
                metrics.STATE.labels(tracker.venue, state).set(tracker.state == state)
            since = (
                -1.0
                if tracker.last_frame_at is None
                else (now - tracker.last_frame_at).total_seconds()
            )
            metrics.SECONDS_SINCE_FRAME.labels(tracker.venue).set(since)
            status = tracker.due(now)
            if status is not None:
                sink.status(status)
        await asyncio.sleep(every_s)


def _tracker(
    venue: Venue, settings: ConnectorSettings, clock: Callable[[], datetime]
) -> VenueTracker:
    if isinstance(venue, WebsocketVenue):
        limit_s = venue.silence_limit_s
    else:
        limit_s = venue.silence_limit(settings.interval_s(venue))
    return VenueTracker(venue.name, limit_s, clock())


def _websocket(
    venue: WebsocketVenue,
    settings: ConnectorSettings,
    sink: Sink,
    clock: Callable[[], datetime],
    plan: Plan,
    tracker: VenueTracker,
) -> list[ConnectionContext[WebsocketVenue]]:
    """One context per connection: the symbols split by the venue's per-connection limit."""
    attempts = RateLimiter.of(venue.max_connects)
    return [
        ConnectionContext(
            venue=venue,
            url=settings.url(venue),
            symbols=group,
            sink=sink,
            tracker=tracker,
            clock=clock,
            attempts=attempts,
            rotate_after_s=settings.rotate_after_s(venue),
            part=part,
        )
        for part, group in enumerate(
            subscriptions.groups(list(plan.symbols), venue.max_symbols_per_connection)
        )
    ]


def _polling(
    venue: PollingVenue,
    settings: ConnectorSettings,
    sink: Sink,
    clock: Callable[[], datetime],
    plan: Plan,
    tracker: VenueTracker,
) -> ConnectionContext[PollingVenue]:
    interval = settings.interval_s(venue)
    limit = venue.max_requests
    if limit is not None and interval < limit.per_s / limit.count:
        log.warning(
            "%s: polling every %g s exceeds the venue's limit of %d requests per %g s; "
            "expect HTTP 429 answers",
            venue.name,
            interval,
            limit.count,
            limit.per_s,
        )
    if venue.auth is not None:
        plan_name = getattr(settings, venue.auth.plan_setting)
        keyed = "with an API key" if settings.headers(venue) else "without an API key"
        log.info("%s: %s plan, %s", venue.name, plan_name, keyed)
    return ConnectionContext(
        venue=venue,
        url=settings.url(venue),
        symbols=list(plan.symbols),
        sink=sink,
        tracker=tracker,
        clock=clock,
        frame_symbols=plan.symbols if venue.parse_with is not None else {},
    )


@dataclass
class _Start:
    """What every venue's start shares: the connector's parts, and the plans so far."""

    settings: ConnectorSettings
    sink: Sink
    clock: Callable[[], datetime]
    client: aiohttp.ClientSession
    backoff: Backoff
    reach: Reachability
    tasks: asyncio.TaskGroup
    venues: int
    plans: list[Plan] = field(default_factory=list)


async def _start_venue(venue: Venue, tracker: VenueTracker, start: _Start) -> None:
    """Plan a venue's subscriptions (its listing), then a supervised task per connection.

    Venues start independently: a slow listing holds up its own venue only. Once every
    venue has planned, the directions none serves are reported (one WARNING).
    """
    settings = start.settings
    plan = await plan_venue(venue, settings, start.client)
    count_missing(plan)
    tracker.serves, tracker.missing = plan.by_direction(settings.rates_directions)
    start.plans.append(plan)
    if len(start.plans) == start.venues:
        report(settings.rates_directions, start.plans)
    started: list[tuple[ConnectionContext[Any], Callable[[], Awaitable[None]]]]
    if isinstance(venue, WebsocketVenue):
        started = [
            (ws, functools.partial(connect_once, ws))
            for ws in _websocket(venue, settings, start.sink, start.clock, plan, tracker)
        ]
    else:
        polled = _polling(venue, settings, start.sink, start.clock, plan, tracker)
        headers, interval = settings.headers(venue), settings.interval_s(venue)
        started = [(polled, functools.partial(poll_once, polled, start.client, headers, interval))]
    log.info(
        "%s: connecting to %s (%d symbols, %d connection(s))",
        venue.name,
        settings.url(venue),
        len(plan.symbols),
        len(started),
    )
    for index, (ctx, run_once) in enumerate(started):
        name = venue.name if index == 0 else f"{venue.name}-{index + 1}"
        retry = functools.partial(_on_retry, ctx, start.reach)
        start.tasks.create_task(supervise(name, run_once, start.backoff, on_retry=retry), name=name)


async def run(
    settings: ConnectorSettings, names: Sequence[str], clock: Callable[[], datetime] = utcnow
) -> None:
    """Connect to these venues and publish until cancelled."""
    venues = [registry.get(name) for name in names]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **settings.producer_options())
    await producer.start()
    outbox = Outbox(
        capacity=settings.connector_buffer,
        window_s=settings.connector_window_s,
        window_bytes=settings.connector_window_mb << 20,
    )
    publisher = KafkaPublisher(producer, settings.topics, outbox)
    backoff = Backoff(settings.connector_backoff_base_s, settings.connector_backoff_cap_s)
    reach = Reachability(names)
    try:
        trackers = [_tracker(venue, settings, clock) for venue in venues]
        async with http.session() as client, asyncio.TaskGroup() as tasks:
            start = _Start(settings, publisher, clock, client, backoff, reach, tasks, len(venues))
            for venue, tracker in zip(venues, trackers, strict=True):
                tasks.create_task(_start_venue(venue, tracker, start), name=f"{venue.name}-start")
            tasks.create_task(publisher.run(), name="publisher")
            tasks.create_task(publish_status(trackers, publisher, reach, clock), name="status")
    finally:
        try:
            await publisher.flush()
        except TimeoutError:
            log.warning("stopping with records still buffered (broker unavailable)")
        await producer.stop()
