"""What every simulated venue shares: clients, the tick broadcast, pings and fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any

from aiohttp import WSMsgType, web

from connectors.simulator.market import Market

log = logging.getLogger(__name__)


@dataclass
class Faults:
    """Faults a test (or a curious user) can switch on per venue."""

    #: Send nothing at all: no data, no pings, no heartbeats.
    silent: bool = False
    #: Refuse new websocket connections (HTTP 503).
    refuse: bool = False
    #: Replace every Nth data frame by a malformed one (0: never).
    malformed_every: int = 0
    #: Also send frames for a symbol that the venue module does not know.
    unknown_symbols: bool = False
    #: Wait this long before each data frame (a slow venue).
    delay_s: float = 0.0
    #: REST endpoints answer HTTP 429 with Retry-After.
    http_429: bool = False
    retry_after_s: int = 2

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
            setattr(self, name, value)

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class Subscription:
    """What one client asked for: venue streams or symbols, and the framing it chose."""

    streams: set[str] = field(default_factory=set)
    #: Binance: frames wrapped as {"stream", "data"} (/stream) rather than bare (/ws).
    combined: bool = False


@dataclass(eq=False)
class Client:
    """One websocket connection to a simulated venue."""

    ws: web.WebSocketResponse
    sub: Subscription = field(default_factory=Subscription)
    last_pong: float = field(default_factory=time.monotonic)
    sent: int = 0

    async def send(self, text: str) -> None:
        if self.ws.closed:
            return
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)
            self.sent += 1


class SimVenue:
    """A venue's protocol on top of the shared machinery; subclasses fill in the hooks."""

    name: str = ""
    #: Fractional offset of this venue's prices from the market (venues never agree exactly).
    offset: Decimal = Decimal(0)
    #: Actions beyond the shared ``close`` (e.g. ``shutdown`` notices).
    actions: tuple[str, ...] = ()

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

    # -- hooks ----------------------------------------------------------------------------

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        """Settings that point this venue's connector at the simulator."""
        raise NotImplementedError

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        """Frames to send on a tick to a client subscribed to ``sub`` (pure: tests call it)."""
        raise NotImplementedError

    def subscribe_all(self) -> Subscription:
        """The subscription of a client that asked for every market (tests use it)."""
        raise NotImplementedError

    def malformed_frame(self) -> str:
        return '{"stream": "broken'

    async def on_text(self, client: Client, text: str) -> None:
        """A text message from the client."""

    async def server_ping(self, client: Client) -> None:
        """Protocol-level keep-alive from the server (websocket ping by default)."""
        await client.ws.ping(str(int(time.time() * 1000)).encode())

    async def action(self, name: str) -> None:
        """Run a named action (``close`` and the venue's own)."""
        if name == "close":
            await self.close_all()
            return
        raise ValueError(
            f"{self.name}: unknown action {name!r} (known: close, {', '.join(self.actions)})"
        )

    # -- shared machinery -----------------------------------------------------------------

    def venue_price(self, market: str) -> Decimal:
        price = self.market.price(market)
        return price if not self.offset else price * (1 + self.offset)

    async def accept(self, request: web.Request, sub: Subscription) -> web.StreamResponse:
        """Upgrade to a websocket (unless refusing) and serve the client until it leaves."""
        if self.faults.refuse:
            return web.Response(status=503, text=f"{self.name}: refusing (simulated fault)")
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        client = Client(ws=ws, sub=sub)
        self.clients.add(client)
        self.connections += 1
        pinger = asyncio.create_task(self._keepalive(client))
        try:
            await self.on_open(client)
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    await self.on_text(client, msg.data)
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    client.last_pong = time.monotonic()
                elif msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                    break
        finally:
            pinger.cancel()
            self.clients.discard(client)
        return ws

    async def on_open(self, client: Client) -> None:
        """Frames a venue sends as soon as a client connects."""

    async def _keepalive(self, client: Client) -> None:
        while not client.ws.closed:
            await asyncio.sleep(self.ping_interval_s)
            if time.monotonic() - client.last_pong > self.pong_timeout_s:
                log.info("%s: closing a client that did not answer pings", self.name)
                await client.ws.close(code=1008, message=b"pong timeout")
                return
            if not self.faults.silent:
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await self.server_ping(client)

    async def tick(self, now_ms: int) -> None:
        """Send this tick's frames to every client (or nothing while silent)."""
        if self.faults.silent:
            return
        for client in list(self.clients):
            for text in self.data_frames_for(client.sub, now_ms):
                self.data_frames += 1
                every = self.faults.malformed_every
                if every and self.data_frames % every == 0:
                    text = self.malformed_frame()
                if self.faults.delay_s:
                    await asyncio.sleep(self.faults.delay_s)
                await client.send(text)

    async def broadcast(self, text: str) -> None:
        for client in list(self.clients):
            await client.send(text)

    async def close_all(self, code: int = 1001, message: bytes = b"going away") -> None:
        for client in list(self.clients):
            with contextlib.suppress(ConnectionError, RuntimeError):
                await client.ws.close(code=code, message=message)

    def rest_429(self) -> web.Response | None:
        """The simulated rate-limit answer when that fault is on."""
        if not self.faults.http_429:
            return None
        return web.json_response(
            {"code": -1003, "msg": "Too many requests (simulated)."},
            status=429,
            headers={"Retry-After": str(self.faults.retry_after_s)},
        )
