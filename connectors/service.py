"""The connector process: one supervised connection per venue, publishing to Kafka."""

from __future__ import annotations

import asyncio
import functools
import logging
import socket
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from websockets.exceptions import ConnectionClosed, InvalidStatus

from connectors import metrics, registry
from connectors.connection import ConnectionContext, connect_once
from connectors.publisher import KafkaPublisher, Sink
from connectors.settings import ConnectorSettings
from connectors.status import VenueTracker
from connectors.supervisor import Attempt, Backoff, supervise
from schemas.records import VENUE_STATES

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(UTC)


def describe(exc: BaseException | None) -> tuple[str, str]:
    """(metric reason, plain words) for why a connection ended."""
    if exc is None:
        return "requested", "the venue asked to reconnect"
    if isinstance(exc, socket.gaierror):
        return "error", f"cannot resolve the host name ({exc.strerror})"
    if isinstance(exc, ConnectionRefusedError):
        return "error", "connection refused"
    if isinstance(exc, InvalidStatus):
        return "error", f"the server answered HTTP {exc.response.status_code}"
    if isinstance(exc, ConnectionClosed):
        return "closed", f"the venue closed the connection ({exc})"
    if isinstance(exc, TimeoutError):
        return "silent", str(exc) or "timed out"
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


def _on_retry(ctx: ConnectionContext, reach: Reachability, attempt: Attempt) -> None:
    venue = ctx.venue.name
    reason, words = describe(attempt.error)
    metrics.RECONNECTS.labels(venue, reason).inc()
    ctx.tracker.down(ctx.clock(), words)
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
    contexts: Sequence[ConnectionContext],
    sink: Sink,
    reach: Reachability,
    clock: Callable[[], datetime],
    every_s: float = 0.5,
) -> None:
    """Keep venues.status and the state metrics current (republished at least every 5 s)."""
    while True:
        now = clock()
        for ctx in contexts:
            tracker = ctx.tracker
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


async def run(
    settings: ConnectorSettings, names: Sequence[str], clock: Callable[[], datetime] = utcnow
) -> None:
    """Connect to these venues and publish until cancelled."""
    venues = [registry.get(name) for name in names]
    producer = AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **settings.producer_options())
    await producer.start()
    publisher = KafkaPublisher(producer, settings.topics, settings.connector_buffer)
    backoff = Backoff(settings.connector_backoff_base_s, settings.connector_backoff_cap_s)
    reach = Reachability(names)
    contexts = [
        ConnectionContext(
            venue=venue,
            url=settings.ws_url(venue),
            symbols=list(venue.markets),
            sink=publisher,
            tracker=VenueTracker(venue.name, venue.silence_limit_s, clock()),
            clock=clock,
        )
        for venue in venues
    ]
    log.info("connecting to %s", ", ".join(f"{c.venue.name} at {c.url}" for c in contexts))
    try:
        async with asyncio.TaskGroup() as tasks:
            tasks.create_task(publisher.run(), name="publisher")
            tasks.create_task(publish_status(contexts, publisher, reach, clock), name="status")
            for ctx in contexts:
                tasks.create_task(
                    supervise(
                        ctx.venue.name,
                        functools.partial(connect_once, ctx),
                        backoff,
                        on_retry=functools.partial(_on_retry, ctx, reach),
                    ),
                    name=ctx.venue.name,
                )
    finally:
        try:
            await publisher.flush()
        except TimeoutError:
            log.warning("stopping with records still buffered (broker unavailable)")
        await producer.stop()
