"""The polling loop shared by every REST venue: GET every interval, publish each answer.

Each answer body is one frame (``RawFrame.frame`` is the body as received, decoded with its
charset; the Kafka key is the venue name). It shares the websocket loop's supervisor,
status tracking, publisher and metrics; HTTP 429 raises RateLimited, so the supervisor
waits for Retry-After before the next request. The first answer with data is the symbol
check: a configured symbol it has no price for is a WARNING.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

import aiohttp

from connectors.connection import ConnectionContext, on_frame
from connectors.http import get_text
from connectors.symbols import check_answer
from connectors.venues.base import FrameKind, PollingVenue

log = logging.getLogger(__name__)

#: A request never waits longer than this, whatever the interval.
MAX_REQUEST_S = 30.0


async def poll_once(
    ctx: ConnectionContext[PollingVenue],
    client: aiohttp.ClientSession,
    headers: Mapping[str, str],
    interval_s: float,
) -> None:
    """Poll until a request fails (raises); the supervisor calls this again with backoff."""
    venue = ctx.venue
    url = venue.request_url(ctx.url, ctx.symbols)
    timeout_s = min(venue.silence_limit(interval_s), MAX_REQUEST_S)
    conn_id = ctx.next_conn_id()
    ctx.tracker.connecting(ctx.clock(), f"polling {ctx.url}")
    first = True
    while True:
        started = time.monotonic()
        _, text = await get_text(client, url, headers, timeout_s, retry_default_s=interval_s)
        if first:
            log.info("%s: polling every %g s (%s)", venue.name, interval_s, conn_id)
            first = False
        received_at = ctx.clock()
        kind = on_frame(ctx, text, received_at, conn_id)
        if kind is FrameKind.DATA and not ctx.symbols_checked:
            markets = ctx.frame_symbols or {s: venue.markets[s] for s in ctx.symbols}
            ctx.symbols_checked = check_answer(venue, markets, text, received_at) is not None
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - started)))
