"""``GET /api/v2/courses/stream``: server-sent events of every change, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from datetime import datetime
from typing import Any

import orjson
from fastapi.responses import StreamingResponse

from api import metrics
from api.answers import unavailable
from api.render.v2 import active, course
from api.snapshot import Snapshot
from schemas.topics import ACTIVE_KEY

#: A comment line this often keeps proxies and clients from timing out an idle stream.
KEEPALIVE_S = 15.0
#: Milliseconds a client waits before reconnecting (the SSE ``retry`` field).
RETRY_MS = 1000
#: Changes stamped this long before a client's Last-Event-ID are sent again on resume:
#: stamps are producer times, ordered per partition but not across partitions.
RESUME_MARGIN_MS = 2000


def event(snapshot: Snapshot, key: str, now: datetime) -> bytes:
    """One change as an SSE event; its id is the change's Kafka timestamp in ms."""
    if key == ACTIVE_KEY:
        name, data = b"active", active(snapshot.active)
    else:
        name, data = b"course", course(key, snapshot.latest.get(key), now)
    stamp = snapshot.changed_ms.get(key, 0)
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (stamp, name, orjson.dumps(data))


def resume_keys(
    snapshot: Snapshot, directions: Sequence[str], last_event_id: str | None
) -> list[str]:
    """The keys a (re)connecting client must receive first, oldest change first.

    Without a usable Last-Event-ID: everything it asked for. With one: what changed since
    (a margin earlier). Each event carries a key's whole state, so a missed change is
    repaired by its latest state, and any process of the API can resume any client.
    """
    keys = [ACTIVE_KEY, *directions]
    since: int | None = None
    if last_event_id is not None and last_event_id.strip().isdigit():
        since = int(last_event_id.strip()) - RESUME_MARGIN_MS
    known = [k for k in keys if k in snapshot.changed_ms]
    if since is not None:
        known = [k for k in known if snapshot.changed_ms[k] >= since]
    return to_send(snapshot, known, directions)


def to_send(snapshot: Snapshot, keys: Iterable[str], directions: Sequence[str]) -> list[str]:
    """The changed keys a stream of these directions sends, oldest change first."""
    asked = set(directions)
    chosen = [k for k in keys if k == ACTIVE_KEY or k in asked]
    return sorted(chosen, key=lambda k: (snapshot.changed_ms.get(k, 0), k))


async def course_events(
    snapshot: Snapshot,
    directions: Sequence[str],
    last_event_id: str | None,
    max_s: float,
    now: Callable[[], datetime],
) -> AsyncIterator[bytes]:
    """The current state (or what changed since ``last_event_id``), then every change."""
    # Subscribe first: a change during the catch-up is sent again rather than lost.
    changes = snapshot.subscribe()
    metrics.STREAMS.inc()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_s
    try:
        yield b"retry: %d\n\n" % RETRY_MS
        for key in resume_keys(snapshot, directions, last_event_id):
            yield event(snapshot, key, now())
        while (remaining := deadline - loop.time()) > 0:
            keys = await changes.wait(min(KEEPALIVE_S, remaining))
            if not keys:
                yield b": keep-alive\n\n"
                continue
            for key in to_send(snapshot, keys, directions):
                yield event(snapshot, key, now())
    finally:
        snapshot.unsubscribe(changes)
        metrics.STREAMS.dec()


class StreamSlots:
    """Open event streams of this process, up to a cap (``API_MAX_STREAMS``)."""

    def __init__(self) -> None:
        self.open = 0

    def take(self, cap: int) -> None:
        """Reserve a slot; a 503 (with Retry-After) when ``cap`` streams are open."""
        if self.open >= cap:
            raise unavailable(
                f"too many open event streams: {cap} per process (API_MAX_STREAMS); "
                "poll /api/v2/courses or retry later"
            )
        self.open += 1

    def give(self) -> None:
        self.open = max(0, self.open - 1)


#: This process's slots (each API process caps its own streams).
SLOTS = StreamSlots()


class SlotStream(StreamingResponse):
    """A streaming response that gives its slot back however it ends (done, or the client
    gone before or while streaming)."""

    def __init__(self, content: AsyncIterator[bytes], slots: StreamSlots, **kwargs: Any) -> None:
        super().__init__(content, **kwargs)
        self._slots = slots

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._slots.give()
