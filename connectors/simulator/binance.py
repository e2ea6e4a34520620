"""Binance spot as the simulator speaks it: combined and raw trade streams, SUBSCRIBE, REST."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription, now_ms
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
    naming = binance.NAMING
    defaults = binance.MARKETS
    offset = Decimal(0)
    actions = ("shutdown",)
    max_client_messages_per_s = 5

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
        if len(streams) > binance.MAX_STREAMS:  # Binance's limit per connection
            body = {"code": -1, "msg": f"Too many streams: at most {binance.MAX_STREAMS}."}
            return web.json_response(body, status=400)
        return await self.accept(request, Subscription(streams, combined=True))

    async def _raw(self, request: web.Request) -> web.StreamResponse:
        streams = _streams(request.match_info.get("streams", ""))
        return await self.accept(request, Subscription(streams, combined=False))

    # -- frames ---------------------------------------------------------------------------

    def _trade(self, index: int, symbol: str, value: Decimal, now_ms: int) -> dict[str, Any]:
        # The same trade on every connection: ids and sizes follow the tick, not the client.
        trade_id = 100_000_000 + self.seq * 100_000 + index
        rng = random.Random(trade_id)
        qty = Decimal(rng.randint(1, 500_000)) / Decimal(100_000)
        return {
            "e": "trade",
            "E": now_ms,
            "s": symbol,
            "t": trade_id,
            "p": f"{value:.8f}",
            "q": f"{qty:.8f}",
            "T": now_ms,
            "m": rng.random() < 0.5,
            "M": True,
        }

    def subscribe_all(self) -> Subscription:
        return Subscription({f"{s.lower()}@trade" for s in self.listing}, combined=True)

    @staticmethod
    def _wrap(sub: Subscription, stream: str, data: dict[str, Any]) -> str:
        if sub.combined:
            return orjson.dumps({"stream": stream, "data": data}).decode()
        return orjson.dumps(data).decode()

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        frames = []
        for index, (symbol, market) in enumerate(self.listing.items()):
            stream = f"{symbol.lower()}@trade"
            if stream in sub.streams:  # Binance accepts unknown streams and sends nothing
                trade = self._trade(index, symbol, self.venue_price(market), now_ms)
                frames.append(self._wrap(sub, stream, trade))
        if self.faults.unknown_symbols:
            trade = self._trade(99_999, UNKNOWN_SYMBOL, Decimal("1.2345"), now_ms)
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
            event = {"e": "serverShutdown", "E": now_ms()}
            await self.notice_then_close(
                lambda client: self._wrap(client.sub, "!serverShutdown", event)
            )
            return
        await super().action(name)

    # -- REST -----------------------------------------------------------------------------

    def _symbols(self) -> list[dict[str, Any]]:
        found = []
        for index, (symbol, market) in enumerate(self.listing.items()):
            if self.faults.delisted and index == 1:
                continue
            status = "BREAK" if self.faults.delisted and index == 0 else "TRADING"
            base, quote = market.split("-")
            found.append(
                {"symbol": symbol, "status": status, "baseAsset": base, "quoteAsset": quote}
            )
        return found

    async def _exchange_info(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        symbols = self._symbols()
        if "symbol" in request.query:
            names = [request.query["symbol"]]
        elif "symbols" in request.query:
            try:
                names = orjson.loads(request.query["symbols"])
            except orjson.JSONDecodeError:
                return web.json_response({"code": -1100, "msg": "Illegal characters"}, status=400)
        else:
            names = [s["symbol"] for s in symbols]
        known = {s["symbol"] for s in symbols}
        if any(name not in known for name in names):
            return web.json_response({"code": -1121, "msg": "Invalid symbol."}, status=400)
        return web.json_response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "symbols": [s for s in symbols if s["symbol"] in names],
            }
        )

    async def _ticker_price(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        return web.json_response(
            [
                {"symbol": symbol, "price": f"{self.venue_price(market):.8f}"}
                for symbol, market in self.listing.items()
            ]
        )
