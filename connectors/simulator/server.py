"""The simulator process: every venue on its own loopback port, one market, a control API.

The market is a random walk, or a recording played back in a loop for the markets it holds.
It prices every configured direction's asset (``X-USD`` and ``X-USDT``, at a known level for
common assets, a stable default otherwise); each venue lists them by its naming rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
import time
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from connectors.simulator.base import SimVenue
from connectors.simulator.binance import BinanceSim
from connectors.simulator.bybit import BybitSim
from connectors.simulator.cbr import CbrSim
from connectors.simulator.coinbase import CoinbaseSim
from connectors.simulator.coingecko import CoinGeckoSim
from connectors.simulator.kraken import KrakenSim
from connectors.simulator.market import Market, Recording, levels_for
from connectors.simulator.okx import OkxSim
from schemas.directions import assets

log = logging.getLogger(__name__)

SIMULATED: dict[str, type[SimVenue]] = {
    sim.name: sim
    for sim in (BinanceSim, KrakenSim, OkxSim, BybitSim, CoinbaseSim, CoinGeckoSim, CbrSim)
}


class Simulator:
    """Serves each venue on 127.0.0.1 and drives them all from one random-walk market."""

    def __init__(
        self,
        venues: Sequence[str] | None = None,
        *,
        host: str = "127.0.0.1",
        seed: int | None = None,
        tick_interval_s: float = 0.25,
        ping_interval_s: float = 20.0,
        pong_timeout_s: float = 60.0,
        recording: Recording | None = None,
        directions: Sequence[str] = (),
        unlisted: Sequence[str] = (),
    ) -> None:
        names = list(venues) if venues else list(SIMULATED)
        unknown = [n for n in names if n not in SIMULATED]
        if unknown:
            raise ValueError(
                f"no simulator for {', '.join(unknown)} (have: {', '.join(SIMULATED)})"
            )
        self.host = host
        #: Assets no simulated venue lists (to show a direction nobody serves).
        self.unlisted = tuple(unlisted)
        self.market = Market(random.Random(seed), levels_for(assets(directions), self.unlisted))
        keepalive = {"ping_interval_s": ping_interval_s, "pong_timeout_s": pong_timeout_s}
        self.venues: dict[str, SimVenue] = {
            n: SIMULATED[n](self.market, **keepalive) for n in names
        }
        self.tick_interval_s = tick_interval_s
        self.recording = recording
        if recording is not None:
            recording.check(self.market.markets)
        self.env: dict[str, str] = {}
        self.control_url = ""
        self._runners: list[web.AppRunner] = []
        self._ticker: asyncio.Task[None] | None = None

    async def _serve(self, app: web.Application, port: int) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, port))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self._runners.append(runner)
        bound: int = sock.getsockname()[1]
        return bound

    async def start(self, base_port: int = 0) -> None:
        """Listen (on base_port, base_port+1, ... or on free ports when 0) and start ticking."""
        for index, venue in enumerate(self.venues.values()):
            app = web.Application()
            app.add_routes(venue.routes())
            port = await self._serve(app, base_port + index if base_port else 0)
            self.env.update(venue.env(f"ws://{self.host}:{port}", f"http://{self.host}:{port}"))
            log.info("simulating %s on %s:%d", venue.name, self.host, port)
        control = web.Application()
        control.add_routes(self._control_routes())
        port = await self._serve(control, base_port + len(self.venues) if base_port else 0)
        self.control_url = f"http://{self.host}:{port}"
        self._ticker = asyncio.create_task(self._tick_forever(), name="simulator-ticks")

    async def stop(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        for venue in self.venues.values():
            await venue.stop()
        for runner in self._runners:
            await runner.cleanup()

    async def _tick_forever(self) -> None:
        began = time.monotonic()
        recorded = set() if self.recording is None else self.recording.markets
        while True:
            started = time.monotonic()
            for market in self.market.markets:
                if market not in recorded:
                    self.market.step(market)
            if self.recording is not None:
                for market, value in self.recording.due(started - began):
                    self.market.set(market, value)
            now_ms = int(time.time() * 1000)
            await asyncio.gather(*(venue.tick(now_ms) for venue in self.venues.values()))
            await asyncio.sleep(max(0.0, self.tick_interval_s - (time.monotonic() - started)))

    # -- control API ----------------------------------------------------------------------

    def _control_routes(self) -> list[web.RouteDef]:
        return [
            web.get("/_sim/state", self._state),
            web.post("/_sim/price/{market}", self._pin),
            web.delete("/_sim/price/{market}", self._release),
            web.post("/_sim/venues/{venue}/faults", self._faults),
            web.post("/_sim/venues/{venue}/actions/{action}", self._action),
        ]

    def _venue(self, request: web.Request) -> SimVenue:
        name = request.match_info["venue"]
        if name not in self.venues:
            raise web.HTTPNotFound(text=f"no simulated venue {name!r}")
        return self.venues[name]

    async def _state(self, request: web.Request) -> web.Response:
        state: dict[str, Any] = {
            "prices": self.market.state(),
            "venues": {
                name: {
                    "faults": v.faults.as_dict(),
                    "clients": len(v.clients),
                    "connections": v.connections,
                    "data_frames": v.data_frames,
                    "requests": v.requests,
                    **v.extra_state(),
                }
                for name, v in self.venues.items()
            },
        }
        return web.json_response(state)

    async def _pin(self, request: web.Request) -> web.Response:
        """Hold a market at a price; with ``"send": true`` also send a tick at once (from
        every venue, or from those named in ``"venues"``).

        The answer carries ``sent_at`` (Unix time after the frames left), which the latency
        benchmark compares with the time the price shows up at the API.
        """
        market = request.match_info["market"]
        body = await request.json()
        try:
            value = Decimal(str(body["value"]))
            self.market.pin(market, value)
        except (KeyError, InvalidOperation, TypeError):
            raise web.HTTPBadRequest(text='expected {"value": "<decimal>"}') from None
        answer: dict[str, Any] = {"market": market, "value": str(value)}
        if body.get("send"):
            names = body.get("venues") or list(self.venues)
            unknown = [n for n in names if n not in self.venues]
            if unknown:
                raise web.HTTPBadRequest(text=f"no simulated venue {', '.join(map(str, unknown))}")
            now_ms = int(time.time() * 1000)
            await asyncio.gather(*(self.venues[n].tick(now_ms) for n in names))
            answer["sent_at"] = time.time()
        return web.json_response(answer)

    async def _release(self, request: web.Request) -> web.Response:
        self.market.release(request.match_info["market"])
        return web.json_response({"released": request.match_info["market"]})

    async def _faults(self, request: web.Request) -> web.Response:
        venue = self._venue(request)
        try:
            venue.faults.update(await request.json())
        except (ValueError, AttributeError) as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        log.info("%s faults: %s", venue.name, venue.faults.as_dict())
        return web.json_response(venue.faults.as_dict())

    async def _action(self, request: web.Request) -> web.Response:
        venue = self._venue(request)
        try:
            await venue.action(request.match_info["action"])
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        return web.json_response({"done": request.match_info["action"]})
