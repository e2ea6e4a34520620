"""The websocket loop shared by every venue: connect, subscribe, read, publish, keep alive.

A connection is handed over rather than dropped when it must end (its rotation age, a
venue's shutdown or upgrade notice): the new one is opened and subscribed while the old
one still reads, and the old one is closed shortly after the new one delivers data. The
overlap duplicates a few frames; quote ids remove them downstream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

import websockets
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus, WebSocketException

from common.throttle import Throttled
from connectors import metrics
from connectors.http import retry_after_s
from connectors.publisher import Sink
from connectors.status import VenueTracker
from connectors.venues.base import FrameKind, PollingVenue, RateLimit, WebsocketVenue, excerpt
from schemas.errors import RateLimited, RatesError
from schemas.records import RawFrame

log = logging.getLogger(__name__)

#: Both connections of a handover read for this long once the new one delivers data, so no
#: frame is lost between them (the duplicates carry the same quote ids).
HANDOVER_OVERLAP_S = 0.5
#: A handover whose new connection failed is tried again this much later.
HANDOVER_RETRY_S = 5.0

_HANDOVER_WORDS = {
    "rotated": "rotation age reached",
    "requested": "the venue asked to reconnect",
    "retry": "retrying the handover",
}

V = TypeVar("V", WebsocketVenue, PollingVenue)


class RateLimiter:
    """Spaces events so a venue's limit is never hit: ``per_second`` on average, with
    bursts of up to ``burst`` (a token bucket, as GCRA)."""

    def __init__(
        self, per_second: float, burst: int = 1, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = 1.0 / per_second
        self._tolerance = (max(1, burst) - 1) * self._interval
        self._clock = clock
        self._next = 0.0

    @classmethod
    def of(cls, limit: RateLimit) -> RateLimiter:
        return cls(limit.per_second, limit.count)

    def wait_s(self) -> float:
        """Seconds to wait before the next event may happen (and reserve its slot)."""
        now = self._clock()
        start = max(self._next, now)
        self._next = start + self._interval
        return max(0.0, start - now - self._tolerance)


@dataclass
class ConnectionContext(Generic[V]):
    """What one venue's connections (or polls) share across reconnects."""

    venue: V
    url: str
    symbols: Sequence[str]
    sink: Sink
    tracker: VenueTracker
    clock: Callable[[], datetime]
    #: Spaces connection attempts within the venue's limit (None: no limit).
    attempts: RateLimiter | None = None
    #: Websocket venues: hand over to a new connection at this age (None: never).
    rotate_after_s: float | None = None
    connections: int = 0
    #: Polled venues: the first answer has been checked for the configured symbols.
    symbols_checked: bool = False
    #: Symbol -> market of ``symbols``, sent along with every frame (``RawFrame.symbols``)
    #: for a venue whose frames name markets by ids no rule reads (CoinGecko); else empty.
    frame_symbols: Mapping[str, str] = field(default_factory=dict)
    malformed_log: Throttled = field(default_factory=Throttled)
    error_log: Throttled = field(default_factory=Throttled)

    #: Which of the venue's connections this is (0: the first; its symbols beyond the
    #: venue's per-connection limit go to the next).
    part: int = 0

    def next_conn_id(self) -> str:
        self.connections += 1
        name = self.venue.name if self.part == 0 else f"{self.venue.name}.{self.part + 1}"
        return f"{name}-{int(time.time())}-{self.connections}"


def publish_status_change(ctx: ConnectionContext[V]) -> None:
    """Publish the venue's status now if it changed, ahead of the frame that changed it.

    Workers judge a venue by its status: seeing ``up`` before its first quote means they
    never start on another venue and then wait out the hysteresis to come back.
    """
    status = ctx.tracker.due(ctx.clock())
    if status is not None:
        ctx.sink.status(status)


def on_frame(
    ctx: ConnectionContext[V], text: str, received_at: datetime, conn_id: str
) -> FrameKind:
    """Classify, count and publish one frame; a malformed one is logged and skipped."""
    venue = ctx.venue
    frame = venue.classify(text)
    metrics.FRAMES.labels(venue.name, frame.kind.value).inc()
    ctx.tracker.frame(frame.kind, received_at)
    publish_status_change(ctx)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s %s frame: %s", venue.name, frame.kind.value, excerpt(text))
    if frame.kind is FrameKind.MALFORMED:
        metrics.MALFORMED.labels(venue.name).inc()
        held = ctx.malformed_log.ready()
        if held is not None:
            log.warning(
                "%s: malformed frame skipped (%d more not shown): %s",
                venue.name,
                held,
                excerpt(text),
            )
        return frame.kind
    if frame.kind is FrameKind.DATA:
        metrics.LAST_FRAME.labels(venue.name).set(received_at.timestamp())
    ctx.sink.frame(
        RawFrame(venue.name, received_at, text, conn_id, symbols=ctx.frame_symbols), frame.key
    )
    if frame.kind is FrameKind.ERROR:
        metrics.VENUE_ERRORS.labels(venue.name).inc()
        held = ctx.error_log.ready()
        if held is not None:
            log.warning("%s: venue error (%d more not shown): %s", venue.name, held, excerpt(text))
    elif frame.kind is FrameKind.RECONNECT:
        log.info("%s: venue asks to reconnect: %s", venue.name, excerpt(text))
    return frame.kind


async def _send(ws: ClientConnection, limiter: RateLimiter, message: str) -> None:
    await asyncio.sleep(limiter.wait_s())
    await ws.send(message)


class _Connection:
    """One open websocket: a task reading it, and its heartbeat task when the venue needs one."""

    def __init__(
        self, ctx: ConnectionContext[WebsocketVenue], ws: ClientConnection, conn_id: str
    ) -> None:
        self.ws = ws
        self.conn_id = conn_id
        self.opened = time.monotonic()
        self.got_data = asyncio.Event()
        self.reconnect = asyncio.Event()
        self.limiter = RateLimiter(ctx.venue.max_messages_per_s)
        self.reader = asyncio.create_task(self._read(ctx), name=f"{conn_id}-read")
        self.beat: asyncio.Task[None] | None = None
        if ctx.venue.heartbeat is not None:
            self.beat = asyncio.create_task(self._heartbeat(ctx), name=f"{conn_id}-beat")

    async def _read(self, ctx: ConnectionContext[WebsocketVenue]) -> None:
        """Read until the connection fails: silence, a close or an error (raised)."""
        limit = ctx.venue.silence_limit_s
        while True:
            try:
                async with asyncio.timeout(limit):
                    received = await self.ws.recv()
            except TimeoutError:
                raise TimeoutError(f"no frame for {limit:g} s (silence limit)") from None
            text = received if isinstance(received, str) else received.decode("utf-8", "replace")
            kind = on_frame(ctx, text, ctx.clock(), self.conn_id)
            if kind is FrameKind.DATA:
                self.got_data.set()
            elif kind is FrameKind.RECONNECT:
                self.reconnect.set()

    async def _heartbeat(self, ctx: ConnectionContext[WebsocketVenue]) -> None:
        beat = ctx.venue.heartbeat
        assert beat is not None
        while True:
            await asyncio.sleep(beat.interval_s)
            await _send(self.ws, self.limiter, beat.message)

    async def close(self) -> None:
        for task in (self.reader, self.beat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        with contextlib.suppress(Exception):
            await self.ws.close()


async def _open(ctx: ConnectionContext[WebsocketVenue]) -> _Connection:
    """Connect (within the venue's connect limit) and subscribe."""
    venue = ctx.venue
    if ctx.attempts is not None:
        await asyncio.sleep(ctx.attempts.wait_s())
    conn_id = ctx.next_conn_id()
    ctx.tracker.connecting(ctx.clock(), f"connecting to {ctx.url}")
    try:
        ws = await websockets.connect(
            venue.connect_url(ctx.url, ctx.symbols),
            open_timeout=10,
            ping_interval=20,
            ping_timeout=20,
            close_timeout=2,
            max_size=2**23,
            max_queue=64,
        )
    except InvalidStatus as exc:
        if exc.response.status_code == 429:
            wait = retry_after_s(exc.response.headers.get("Retry-After"), ctx.clock(), default=1.0)
            raise RateLimited(f"rate limited (HTTP 429, retry after {wait:g} s)", wait) from None
        raise
    conn = _Connection(ctx, ws, conn_id)
    try:
        for message in venue.subscribe(ctx.symbols):
            await _send(ws, conn.limiter, message)
    except BaseException:
        await conn.close()
        raise
    log.info("%s: connected (%s)", venue.name, conn_id)
    return conn


async def _successor(ctx: ConnectionContext[WebsocketVenue]) -> _Connection:
    """A new connection that has delivered data (else it is closed and the failure raised)."""
    new = await _open(ctx)
    got_data = asyncio.create_task(new.got_data.wait())
    try:
        done, _ = await asyncio.wait(
            {got_data, new.reader},
            timeout=ctx.venue.silence_limit_s,
            return_when=asyncio.FIRST_COMPLETED,
        )
    except BaseException:  # cancelled while waiting: the new connection must not leak
        await new.close()
        raise
    finally:
        got_data.cancel()
    if got_data not in done:
        await new.close()
        failure = new.reader.exception() if new.reader in done else None
        if failure is not None:
            raise failure
        raise TimeoutError(f"the new connection sent no data for {ctx.venue.silence_limit_s:g} s")
    return new


async def _until_handover(
    ctx: ConnectionContext[WebsocketVenue], current: _Connection, retry_at: float | None
) -> str:
    """Wait until ``current`` must be handed over: why ("rotated", "requested", "retry").

    Raises when the connection fails first.
    """
    if retry_at is not None:
        deadline: float | None = retry_at
    elif ctx.rotate_after_s is not None:
        deadline = current.opened + ctx.rotate_after_s
    else:
        deadline = None
    timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
    waits: set[asyncio.Future[Any]] = {current.reader}
    asked = None
    if retry_at is None:
        asked = asyncio.ensure_future(current.reconnect.wait())
        waits.add(asked)
    try:
        done, _ = await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if asked is not None:
            asked.cancel()
    if current.reader in done:
        current.reader.result()  # raises why the connection ended
        raise ConnectionError("the connection ended")  # the reader never returns
    if retry_at is not None:
        return "retry"
    return "requested" if asked in done else "rotated"


async def connect_once(ctx: ConnectionContext[WebsocketVenue]) -> None:
    """A venue's connection, handed over as needed, until it fails (raises).

    The supervisor calls this again after a failure, with backoff. A handover whose new
    connection cannot be opened keeps the old one and is tried again HANDOVER_RETRY_S later.
    """
    venue = ctx.venue
    current = await _open(ctx)
    retry_at: float | None = None
    reason = ""
    try:
        while True:
            why = await _until_handover(ctx, current, retry_at)
            reason = reason if why == "retry" else why
            log.info(
                "%s: %s; handing %s over to a new connection",
                venue.name,
                _HANDOVER_WORDS[why],
                current.conn_id,
            )
            try:
                new = await _successor(ctx)
            except (OSError, TimeoutError, WebSocketException, RatesError) as exc:
                retry_at = time.monotonic() + HANDOVER_RETRY_S
                log.warning(
                    "%s: the new connection failed (%s); keeping %s, trying again in %g s",
                    venue.name,
                    str(exc) or type(exc).__name__,
                    current.conn_id,
                    HANDOVER_RETRY_S,
                )
                continue
            retry_at = None
            try:
                await asyncio.sleep(HANDOVER_OVERLAP_S)
            finally:
                old, current = current, new
                await old.close()
            metrics.RECONNECTS.labels(venue.name, reason).inc()
            log.info("%s: handed over from %s to %s", venue.name, old.conn_id, new.conn_id)
    finally:
        await current.close()
