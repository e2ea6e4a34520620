"""``GET /api/v2/courses/stream``: server-sent events of every change, resumable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

from api import metrics
from api.snapshot import Snapshot
from api.v2 import event, resume_keys, to_send

#: A comment line this often keeps proxies and clients from timing out an idle stream.
KEEPALIVE_S = 15.0
#: Milliseconds a client waits before reconnecting (the SSE ``retry`` field).
RETRY_MS = 1000


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
