"""What every simulated venue shares: clients, the tick broadcast, pings and fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import WSMsgType, web

from connectors.simulator.market import Market
from connectors.venues.naming import Naming

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Faults a test (or a curious user) can switch on per venue."""

    #: Send nothing at all: no data, no pings, no heartbeats; REST requests hang.
    silent: bool = False
    #: Refuse new connections and requests (HTTP 503).
    refuse: bool = False
    #: Replace every Nth data frame (REST: answer) by a malformed one (0: never).
    malformed_every: int = 0
    #: Also send frames for a symbol that the venue module does not know.
    unknown_symbols: bool = False
    #: Wait this long before each data frame or REST answer (a slow venue).
    delay_s: float = 0.0
    #: Answer HTTP 429 with Retry-After (REST endpoints and websocket handshakes).
    http_429: bool = False
    retry_after_s: int = 2
    #: False: the 429 answers carry no Retry-After header at all.
    retry_after: bool = True
    #: Cut every Nth data frame (REST: answer) in the middle (0: never).
    truncated_every: int = 0
    #: The venue's clock is this many seconds off: its event times in frames say so.
    clock_skew_s: float = 0.0
    #: Every price the venue shows is this text, verbatim ("0", "-1", "NaN", "Infinity",
    #: "1e400", "6.5E4"; empty: the market's price).
    price_text: str = ""
    #: Every price the venue shows is the market's times this (1000: absurd).
    price_factor: float = 1.0
    #: The markets the two price faults apply to, comma-separated (empty: all).
    price_markets: str = ""

    def prices_faulted(self, market: str) -> bool:
        """Whether the price faults apply to this market."""
        return not self.price_markets or market in self.price_markets.split(",")

    #: The REST symbol listing shows the first symbol as not trading and omits the second;
    #: a polled source's answers leave out the first coin (CoinGecko) or currency (CBR).
    delisted: bool = False

    def update(self, changes: Mapping[str, Any]) -> None:
        """Apply a partial update; ValueError on an unknown name or a mistyped value."""
        known = {f.name: f for f in fields(self)}
        for name, value in changes.items():
            if name not in known:
                raise ValueError(f"unknown fault {name!r} (known: {', '.join(known)})")
            kind = type(getattr(self, name))
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                value = float(value)
            if type(value) is not kind:
                raise ValueError(f"fault {name!r} takes a {kind.__name__}, got {value!r}")
            if name == "price_text" and value:
                try:
                    Decimal(value)
                except InvalidOperation:
                    raise ValueError(f"price_text must read as a decimal, got {value!r}") from None
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Subscription:
    """What one client asked for: venue streams or symbols, and the framing it chose."""

    streams: set[str] = field(default_factory=set)
    #: Binance: frames wrapped as {"stream", "data"} (/stream) rather than bare (/ws).
    combined: bool = False
    #: Other channels the client subscribed to (Coinbase ``heartbeats``).
    channels: set[str] = field(default_factory=set)
    #: Messages numbered so far on this connection (Coinbase ``sequence_num``).
    sequence: int = 0

    def next_sequence(self) -> int:
        number = self.sequence
        self.sequence += 1
        return number


@dataclass(eq=False)
class Client:
    """One websocket connection to a simulated venue."""

    ws: web.WebSocketResponse
    sub: Subscription = field(default_factory=Subscription)
    #: When the oldest unanswered server ping went out (None: every ping was answered).
    ping_unanswered_since: float | None = None
    #: When the last data frame went to this client (heartbeats fill quiet seconds).
    last_data: float = 0.0
    sent: int = 0
    received: deque[float] = field(default_factory=deque)

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)
            self.sent += 1


def now_ms() -> int:
    return int(time.time() * 1000)


#: What venue_price() returns while ``price_text`` is set: frames are built with it, then
#: its text (as each venue formats it: ``7777777``, ``7777777.00000000``, ``7777777,0000``)
#: is replaced by the fault's text, so the venue's own framing (string, number, XML) stays.
PRICE_MARKER = Decimal(7777777)
_MARKER_TEXT = re.compile(r"(?<![0-9.,])7777777(?:[.,]0+)?(?![0-9]|[.,][0-9])")
#: Bytes of the frame the ``oversized`` action sends (more than any client accepts).
OVERSIZED_BYTES = 10 * 1024 * 1024


def rfc3339_nanos(ms: int) -> str:
    """``2026-11-24T16:00:00.123000000Z`` (Coinbase's nanosecond timestamps)."""
    dt = datetime.fromtimestamp(ms / 1000, UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}000000Z"


class SimVenue:
    """A venue's protocol on top of the shared machinery; subclasses fill in the hooks."""

    name: str = ""
    #: Fractional offset of this venue's prices from the market (venues never agree exactly).
    offset: Decimal = Decimal(0)
    #: Actions beyond the shared ``close`` (e.g. ``shutdown`` notices).
    actions: tuple[str, ...] = ()
    #: Seconds between application heartbeats to each client (None: the venue sends none).
    heartbeat_interval_s: float | None = None
    #: Client messages per second above which the venue closes the connection (None: any).
    max_client_messages_per_s: int | None = None
    #: Seconds between a shutdown/upgrade notice and the close of the connections it warned.
    notice_grace_s: float = 2.0
    #: A REST venue, polled: ``close`` drops the connection of the next request.
    polled: bool = False
    #: The venue module's naming rule: which markets of the simulated market it lists.
    naming: Naming | None = None
    #: The venue module's markets of the default directions, listed first in this order.
    defaults: Mapping[str, str] = {}

    def __init__(
        self, market: Market, *, ping_interval_s: float = 20.0, pong_timeout_s: float = 60.0
    ) -> None:
        self.market = market
        self.faults = Faults()
        self.clients: set[Client] = set()
        self.ping_interval_s = ping_interval_s
        self.pong_timeout_s = pong_timeout_s
        self.data_frames = 0
        self.connections = 0
        self.requests = 0
        #: Tick number: frames of one tick carry the same ids on every connection.
        self.seq = 0
        self._drop_requests = 0
        self._oversized_next = False
        self._tasks: set[asyncio.Task[None]] = set()

    # -- hooks ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        """Settings that point this venue's connector at the simulator."""
        raise NotImplementedError

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        """Frames to send on a tick to a client subscribed to ``sub`` (tests call it)."""
        raise NotImplementedError

    def subscribe_all(self) -> Subscription:
        """The subscription of a client that asked for every market (tests use it)."""
        raise NotImplementedError

    def malformed_frame(self) -> str:
        return '{"stream": "broken'

    def heartbeat_frames(self, client: Client, now_ms: int) -> list[str]:
        """Application heartbeats due to this client now."""
        return []

    async def on_text(self, client: Client, text: str) -> None:
        """A text message from the client."""

    async def on_open(self, client: Client) -> None:
        """Frames a venue sends as soon as a client connects."""

    async def server_ping(self, client: Client) -> None:
        """Protocol-level keep-alive from the server (websocket ping by default)."""
        await client.ws.ping(str(now_ms()).encode())

    async def action(self, name: str) -> None:
        """Run a named action (``close``, ``oversized`` and the venue's own)."""
        if name == "close":
            if self.polled:
                # Two: HTTP clients retry a request once when a kept-alive connection drops.
                self._drop_requests = 2
            await self.close_all()
            return
        if name == "oversized":
            # One 10 MB frame to every client now; a polled venue's next answer is one.
            self._oversized_next = self.polled
            for client in list(self.clients):
                await client.send(oversized_frame())
            return
        raise ValueError(
            f"{self.name}: unknown action {name!r} "
            f"(known: close, oversized, {', '.join(self.actions)})"
        )

    def extra_state(self) -> dict[str, Any]:
        """Venue-specific facts for /_sim/state."""
        return {}

    @functools.cached_property
    def listing(self) -> dict[str, str]:
        """Venue symbol -> market of every market this venue lists: its USD (or USDT)
        market of each asset the simulated market prices, by the venue's naming rule."""
        found = dict(self.defaults)
        if self.naming is not None:
            for market in self.market.markets:
                base, quote = market.split("-")
                usd = base != "USDT" and quote in self.naming.usd_quotes
                if usd or market in self.naming.usdt_markets:
                    found.setdefault(self.naming.symbol(market), market)
        return found

    # -- prices ---------------------------------------------------------------------------

    def decimals(self, market: str) -> int | None:
        """Digits after the point of this venue's prices (None: the market's own tick)."""
        return None

    def venue_price(self, market: str) -> Decimal:
        """This venue's price of a market: the market's, offset, at the venue's precision."""
        if self.faults.price_text and self.faults.prices_faulted(market):
            return PRICE_MARKER
        price = self.faulted_price(market, self.market.price(market))
        places = self.decimals(market)
        if self.offset:
            price = price * (1 + self.offset)
            if places is None:
                places = -int(self.market.tick(market).as_tuple().exponent)
        return price if places is None else price.quantize(Decimal(1).scaleb(-places))

    def faulted_price(self, market: str, price: Decimal) -> Decimal:
        """A market's price times the ``price_factor`` fault."""
        factor = self.faults.price_factor
        if factor == 1.0 or not self.faults.prices_faulted(market):
            return price
        return price * Decimal(repr(factor))

    def venue_now_ms(self, now_ms: int | None = None) -> int:
        """The venue's clock: now (or ``now_ms``) plus the ``clock_skew_s`` fault."""
        now = now_ms if now_ms is not None else int(time.time() * 1000)
        return now + int(self.faults.clock_skew_s * 1000)

    # -- websocket machinery --------------------------------------------------------------

    async def accept(self, request: web.Request, sub: Subscription) -> web.StreamResponse:
        """Upgrade to a websocket (unless refusing) and serve the client until it leaves."""
        refused = self.refusal()
        if refused is not None:
            return refused
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = Client(ws=ws, sub=sub)
        self.clients.add(client)
        self.connections += 1
        helpers = [asyncio.create_task(self._keepalive(client))]
        if self.heartbeat_interval_s is not None:
            helpers.append(asyncio.create_task(self._heartbeats(client, self.heartbeat_interval_s)))
        try:
            if not self.faults.silent:
                await self.on_open(client)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if self._over_message_limit(client):
                        log.info("%s: closing a client over the message rate limit", self.name)
                        await ws.close(code=1008, message=b"too many messages")
                        break
                    await self.on_text(client, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    client.ping_unanswered_since = None
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            for helper in helpers:
                helper.cancel()
            self.clients.discard(client)
        return ws

    def _over_message_limit(self, client: Client) -> bool:
        limit = self.max_client_messages_per_s
        if limit is None:
            return False
        now = time.monotonic()
        client.received.append(now)
        while client.received and now - client.received[0] > 1.0:
            client.received.popleft()
        return len(client.received) > limit

    async def _keepalive(self, client: Client) -> None:
        while not client.ws.closed:
            await asyncio.sleep(self.ping_interval_s)
            waiting = client.ping_unanswered_since
            if waiting is not None and time.monotonic() - waiting > self.pong_timeout_s:
                log.info("%s: closing a client that did not answer pings", self.name)
                await client.ws.close(code=1008, message=b"pong timeout")
                return
            if not self.faults.silent:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.server_ping(client)
                    if client.ping_unanswered_since is None:
                        client.ping_unanswered_since = time.monotonic()

    async def _heartbeats(self, client: Client, every_s: float) -> None:
        while not client.ws.closed:
            await asyncio.sleep(every_s)
            if not self.faults.silent:
                for text in self.heartbeat_frames(client, now_ms()):
                    await client.send(text)

    async def tick(self, now_ms: int) -> None:
        """Send this tick's frames to every client (or nothing while silent)."""
        self.seq += 1
        if self.faults.silent:
            return
        for client in list(self.clients):
            venue_ms = self.venue_now_ms(now_ms)
            frames = [
                self._maybe_malformed(text) for text in self.data_frames_for(client.sub, venue_ms)
            ]
            if not frames:
                continue
            client.last_data = time.monotonic()
            if self.faults.delay_s:
                self._spawn(self._send_later(client, frames, self.faults.delay_s))
            else:
                for text in frames:
                    await client.send(text)

    def _maybe_malformed(self, text: str) -> str:
        """A data frame (or REST answer) with the frame faults applied."""
        self.data_frames += 1
        faults = self.faults
        if faults.price_text:
            text = _MARKER_TEXT.sub(faults.price_text, text)
        if faults.truncated_every and self.data_frames % faults.truncated_every == 0:
            text = text[: len(text) // 2]
        every = faults.malformed_every
        return self.malformed_frame() if every and self.data_frames % every == 0 else text

    async def _send_later(self, client: Client, frames: list[str], delay_s: float) -> None:
        await asyncio.sleep(delay_s)
        for text in frames:
            await client.send(text)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def notice_then_close(self, frame_for: Any) -> None:
        """Send each client its notice (``frame_for(client)``), close them after the grace."""
        warned = list(self.clients)
        for client in warned:
            await client.send(frame_for(client))

        async def close_later() -> None:
            await asyncio.sleep(self.notice_grace_s)
            for client in warned:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await client.ws.close(code=1001, message=b"service restart")

        self._spawn(close_later())

    async def close_all(self, code: int = 1001, message: bytes = b"going away") -> None:
        for client in list(self.clients):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.ws.close(code=code, message=message)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await self.close_all()

    # -- REST machinery -------------------------------------------------------------------

    def refusal(self) -> web.Response | None:
        """The answer to a new connection or request while refusing or rate limiting."""
        if self.faults.refuse:
            return web.Response(status=503, text=f"{self.name}: refusing (simulated fault)")
        return self.rest_429()

    def rest_429(self) -> web.Response | None:
        """The simulated rate-limit answer when that fault is on."""
        if not self.faults.http_429:
            return None
        headers = {"Retry-After": str(self.faults.retry_after_s)} if self.faults.retry_after else {}
        return web.json_response(self.rate_limit_body(), status=429, headers=headers)

    def rate_limit_body(self) -> Any:
        return {"code": -1003, "msg": "Too many requests (simulated)."}

    async def rest_faults(self, request: web.Request) -> web.Response | None:
        """Apply the faults to a REST request: an answer that replaces the real one, or None.

        A silent venue holds the request (up to a minute) until the fault is cleared; a
        ``close`` action drops the connection of the next request without an answer.
        """
        self.requests += 1
        if self._drop_requests:
            self._drop_requests -= 1
            if request.transport is not None:
                request.transport.close()
            raise web.HTTPServiceUnavailable()  # never reaches the client
        refused = self.refusal()
        if refused is not None:
            return refused
        for _ in range(1200):
            if not self.faults.silent:
                break
            await asyncio.sleep(0.05)
        if self.faults.delay_s:
            await asyncio.sleep(self.faults.delay_s)
        if self._oversized_next:
            self._oversized_next = False
            return web.Response(text=oversized_frame(), content_type="application/json")
        return None


def oversized_frame() -> str:
    """A well-formed JSON frame of 10 MB that no venue sends."""
    return '{"pad":"' + "x" * OVERSIZED_BYTES + '"}'
