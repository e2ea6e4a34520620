"""Binance spot as the simulator speaks it: combined and raw trade streams, SUBSCRIBE, REST."""

from __future__ import annotations

import itertools
import random
import time
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription
from connectors.venues import binance

UNKNOWN_SYMBOL = "NOPEUSDT"

_ERRORS = {
    "json": {"code": 3, "msg": "Invalid JSON: expected value at line 1 column 1"},
    "method": {
        "code": 2,
        "msg": "Invalid request: unknown variant, expected one of `SUBSCRIBE`, "
        "`UNSUBSCRIBE`, `LIST_SUBSCRIPTIONS`, `SET_PROPERTY`, `GET_PROPERTY`",
    },
}


def _streams(names: str) -> set[str]:
    return {s for s in names.split("/") if s}


class BinanceSim(SimVenue):
    """Trades for the symbols of connectors.venues.binance at 8-decimal zero-padded prices."""

    name = binance.NAME
    offset = Decimal(0)
    actions = ("shutdown",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trade_ids = itertools.count(100_000_000)
        self._rng = random.Random(7)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/stream", self._combined),
            web.get("/ws", self._raw),
            web.get("/ws/{streams:.*}", self._raw),
            web.get("/api/v3/exchangeInfo", self._exchange_info),
            web.get("/api/v3/ticker/price", self._ticker_price),
        ]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"BINANCE_WS_URL": ws_base, "BINANCE_API_URL": http_base}

    async def _combined(self, request: web.Request) -> web.StreamResponse:
        streams = _streams(request.query.get("streams", ""))
        return await self.accept(request, Subscription(streams, combined=True))

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        streams = _streams(request.match_info.get("streams", ""))
        return await self.accept(request, Subscription(streams, combined=False))

    # -- frames ---------------------------------------------------------------------------

    def _trade(self, symbol: str, value: Decimal, now_ms: int) -> dict[str, Any]:
        qty = Decimal(self._rng.randint(1, 500_000)) / Decimal(100_000)
        return {
            "e": "trade",
            "E": now_ms,
            "s": symbol,
            "t": next(self._trade_ids),
            "p": f"{value:.8f}",
            "q": f"{qty:.8f}",
            "T": now_ms,
            "m": self._rng.random() < 0.5,
            "M": True,
        }

    def subscribe_all(self) -> Subscription:
        return Subscription({f"{s.lower()}@trade" for s in binance.MARKETS}, combined=True)

    @staticmethod
    def _wrap(sub: Subscription, stream: str, data: dict[str, Any]) -> str:
        if sub.combined:
            return orjson.dumps({"stream": stream, "data": data}).decode()
        return orjson.dumps(data).decode()

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        frames = []
        for stream in sorted(sub.streams):
            symbol, _, kind = stream.partition("@")
            market = binance.MARKETS.get(symbol.upper())
            if kind != "trade" or market is None:
                continue  # Binance accepts unknown streams and then sends nothing
            trade = self._trade(symbol.upper(), self.venue_price(market), now_ms)
            frames.append(self._wrap(sub, stream, trade))
        if self.faults.unknown_symbols:
            trade = self._trade(UNKNOWN_SYMBOL, Decimal("1.2345"), now_ms)
            frames.append(self._wrap(sub, f"{UNKNOWN_SYMBOL.lower()}@trade", trade))
        return frames

    async def on_text(self, client: Client, text: str) -> None:
        try:
            msg = orjson.loads(text)
        except orjson.JSONDecodeError:
            await client.send(orjson.dumps(_ERRORS["json"]).decode())
            return
        if not isinstance(msg, dict):
            await client.send(orjson.dumps(_ERRORS["json"]).decode())
            return
        method, ident = msg.get("method"), msg.get("id")
        params = [p for p in msg.get("params") or [] if isinstance(p, str)]
        if method == "SUBSCRIBE":
            client.sub.streams.update(params)
            reply: dict[str, Any] = {"result": None, "id": ident}
        elif method == "UNSUBSCRIBE":
            client.sub.streams.difference_update(params)
            reply = {"result": None, "id": ident}
        elif method == "LIST_SUBSCRIPTIONS":
            reply = {"result": sorted(client.sub.streams), "id": ident}
        else:
            reply = {**_ERRORS["method"], "id": ident}
        await client.send(orjson.dumps(reply).decode())

    async def action(self, name: str) -> None:
        if name == "shutdown":
            for client in list(self.clients):
                event = {"e": "serverShutdown", "E": self._now_ms()}
                await client.send(self._wrap(client.sub, "!serverShutdown", event))
            return
        await super().action(name)

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    # -- REST -----------------------------------------------------------------------------

    async def _exchange_info(self, request: web.Request) -> web.Response:
        limited = self.rest_429()
        if limited is not None:
            return limited
        symbols = [
            {
                "symbol": symbol,
                "status": "TRADING",
                "baseAsset": market.split("-")[0],
                "quoteAsset": market.split("-")[1],
            }
            for symbol, market in binance.MARKETS.items()
        ]
        wanted = request.query.get("symbols")
        if wanted:
            try:
                names = orjson.loads(wanted)
            except orjson.JSONDecodeError:
                return web.json_response({"code": -1100, "msg": "Illegal characters"}, status=400)
            unknown = [n for n in names if n not in binance.MARKETS]
            if unknown:
                return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
            symbols = [s for s in symbols if s["symbol"] in names]
        return web.json_response(
            {"timezone": "UTC", "serverTime": self._now_ms(), "symbols": symbols}
        )

    async def _ticker_price(self, request: web.Request) -> web.Response:
        limited = self.rest_429()
        if limited is not None:
            return limited
        return web.json_response(
            [
                {"symbol": symbol, "price": f"{self.venue_price(market):.8f}"}
                for symbol, market in binance.MARKETS.items()
            ]
        )
