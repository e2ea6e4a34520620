"""The websocket loop shared by every venue: connect, subscribe, read, publish, keep alive."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import websockets
from websockets.asyncio.client import ClientConnection

from connectors import metrics
from connectors.publisher import Sink
from connectors.status import VenueTracker
from connectors.venues.base import FrameKind, WebsocketVenue, excerpt
from schemas.records import RawFrame

log = logging.getLogger(__name__)


class RateLimiter:
    """Spaces client messages so a venue's per-connection message limit is never hit."""

    def __init__(self, per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = 1.0 / per_second
        self._clock = clock
        self._next = 0.0

    def wait_s(self) -> float:
        """Seconds to wait before the next message may go (and reserve its slot)."""
        now = self._clock()
        wait = max(0.0, self._next - now)
        self._next = max(now, self._next) + self._interval
        return wait


@dataclass
class Throttled:
    """Logs a repeated event once per ``every_s``, counting what it held back."""

    every_s: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _last: float | None = None
    _held: int = field(default=0)

    def ready(self) -> int | None:
        """None to stay quiet; else the number of events held back since the last log."""
        now = self.clock()
        if self._last is None or now - self._last >= self.every_s:
            held, self._held, self._last = self._held, 0, now
            return held
        self._held += 1
        return None


@dataclass
class ConnectionContext:
    """What one venue's connections share across reconnects."""

    venue: WebsocketVenue
    url: str
    symbols: Sequence[str]
    sink: Sink
    tracker: VenueTracker
    clock: Callable[[], datetime]
    connections: int = 0
    malformed_log: Throttled = field(default_factory=Throttled)
    error_log: Throttled = field(default_factory=Throttled)


async def _send(ws: ClientConnection, limiter: RateLimiter, message: str) -> None:
    await asyncio.sleep(limiter.wait_s())
    await ws.send(message)


async def _heartbeat(ws: ClientConnection, ctx: ConnectionContext, limiter: RateLimiter) -> None:
    beat = ctx.venue.heartbeat
    assert beat is not None
    while True:
        await asyncio.sleep(beat.interval_s)
        await _send(ws, limiter, beat.message)


def _on_frame(ctx: ConnectionContext, text: str, received_at: datetime, conn_id: str) -> bool:
    """Handle one frame; True when the venue asked us to reconnect."""
    venue = ctx.venue
    frame = venue.classify(text)
    metrics.FRAMES.labels(venue.name, frame.kind.value).inc()
    ctx.tracker.frame(frame.kind, received_at)
    if frame.kind is FrameKind.DATA:
        metrics.LAST_FRAME.labels(venue.name).set(received_at.timestamp())
    ctx.sink.frame(RawFrame(venue.name, received_at, text, conn_id), frame.key)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s frame: %s", venue.name, frame.kind.value, excerpt(text))
    if frame.kind is FrameKind.MALFORMED:
        metrics.MALFORMED.labels(venue.name).inc()
        held = ctx.malformed_log.ready()
        if held is not None:
            log.warning(
                "%s: malformed frame (%d more not shown): %s", venue.name, held, excerpt(text)
            )
    elif frame.kind is FrameKind.ERROR:
        metrics.VENUE_ERRORS.labels(venue.name).inc()
        held = ctx.error_log.ready()
        if held is not None:
            log.warning("%s: venue error (%d more not shown): %s", venue.name, held, excerpt(text))
    elif frame.kind is FrameKind.RECONNECT:
        log.info("%s: venue asks to reconnect: %s", venue.name, excerpt(text))
        return True
    return False


async def connect_once(ctx: ConnectionContext) -> None:
    """One connection, from connect to its end.

    Returns when the venue asks for a reconnect; raises on errors, closes and silence.
    """
    venue = ctx.venue
    ctx.connections += 1
    conn_id = f"{venue.name}-{int(time.time())}-{ctx.connections}"
    url = venue.connect_url(ctx.url, ctx.symbols)
    ctx.tracker.connecting(ctx.clock(), f"connecting to {ctx.url}")
    limiter = RateLimiter(venue.max_messages_per_s)
    async with websockets.connect(
        url,
        open_timeout=10,
        ping_interval=20,
        ping_timeout=20,
        close_timeout=2,
        max_size=2**23,
        max_queue=64,
    ) as ws:
        log.info("%s: connected (%s)", venue.name, conn_id)
        for message in venue.subscribe(ctx.symbols):
            await _send(ws, limiter, message)
        beat = None
        if venue.heartbeat is not None:
            beat = asyncio.create_task(_heartbeat(ws, ctx, limiter), name=f"{venue.name}-beat")
        try:
            while True:
                try:
                    async with asyncio.timeout(venue.silence_limit_s):
                        received = await ws.recv()
                except TimeoutError:
                    raise TimeoutError(
                        f"no frame for {venue.silence_limit_s:g} s (silence limit)"
                    ) from None
                text = (
                    received if isinstance(received, str) else received.decode("utf-8", "replace")
                )
                if _on_frame(ctx, text, ctx.clock(), conn_id):
                    return
        finally:
            if beat is not None:
                beat.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await beat
