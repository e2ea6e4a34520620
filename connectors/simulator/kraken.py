"""Kraken websocket v2 as the simulator speaks it: status, per-symbol acks, ticker, heartbeats."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription, now_ms
from connectors.venues import kraken

UNKNOWN_SYMBOL = "NOPE/USD"

#: Kraken's price precision per market: prices go out as JSON numbers with these decimals.
DECIMALS = {"BTC-USD": 1, "ETH-USD": 2, "USDT-USD": 5}

#: AssetPairs entries of the default markets (REST names use the v1 asset codes).
_PAIRS = {
    "BTC/USD": ("XXBTZUSD", "XBTUSD", "XBT/USD"),
    "ETH/USD": ("XETHZUSD", "ETHUSD", "ETH/USD"),
    "USDT/USD": ("USDTZUSD", "USDTUSD", "USDT/USD"),
}

#: v2 asset -> the v1 code AssetPairs still uses.
_V1_CODES = {"BTC": "XBT", "DOGE": "XDG"}


def _pair(symbol: str) -> tuple[str, str, str]:
    """(key, altname, wsname) of a pair in AssetPairs."""
    if symbol in _PAIRS:
        return _PAIRS[symbol]
    base, quote = (_V1_CODES.get(part, part) for part in symbol.split("/"))
    return f"{base}{quote}", f"{base}{quote}", f"{base}/{quote}"


def _time(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="microseconds")[:-6] + "Z"


class KrakenSim(SimVenue):
    """Ticker frames with JSON-number prices at Kraken's fixed decimals."""

    name = kraken.NAME
    naming = kraken.NAMING
    defaults = kraken.MARKETS
    offset = Decimal("0.0003")
    heartbeat_interval_s = 1.0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v2", self._ws),
            web.get("/0/public/AssetPairs", self._asset_pairs),
        ]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"KRAKEN_WS_URL": f"{ws_base}/v2", "KRAKEN_API_URL": http_base}

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.accept(request, Subscription())

    def decimals(self, market: str) -> int | None:
        return DECIMALS.get(market)

    def subscribe_all(self) -> Subscription:
        return Subscription(set(self.listing))

    # -- frames ---------------------------------------------------------------------------

    def _ticker(self, symbol: str, kind: str, last: Decimal, places: int, ms: int) -> str:
        """A ticker frame written by hand: its numbers keep their fixed decimals."""
        rng = random.Random(f"{symbol}{self.seq}")
        step = Decimal(1).scaleb(-places)
        bid, ask = last - step, last + step

        def num(value: Decimal, digits: int = places) -> str:
            return f"{value:.{digits}f}"

        entry = (
            f'{{"symbol":{orjson.dumps(symbol).decode()},"bid":{num(bid)},'
            f'"bid_qty":{num(Decimal(rng.randint(1, 10**9)) / 10**4, 8)},"ask":{num(ask)},'
            f'"ask_qty":{num(Decimal(rng.randint(1, 10**9)) / 10**4, 8)},"last":{num(last)},'
            f'"volume":{num(Decimal(rng.randint(10**6, 10**9)) / 10**4, 8)},'
            f'"vwap":{num(last)},"low":{num(last * Decimal("0.98"))},'
            f'"high":{num(last * Decimal("1.02"))},"change":{num(step)},"change_pct":0.01,'
            f'"trades":{rng.randint(1000, 90000)},"timestamp":"{_time(ms)}"}}'
        )
        return f'{{"channel":"ticker","type":"{kind}","data":[{entry}]}}'

    def _frames(self, symbols: list[str], kind: str, ms: int) -> list[str]:
        frames = []
        for symbol in symbols:
            market = self.listing[symbol]
            places = DECIMALS.get(market, -int(self.market.tick(market).as_tuple().exponent))
            frames.append(self._ticker(symbol, kind, self.venue_price(market), places, ms))
        return frames

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        frames = self._frames([s for s in self.listing if s in sub.streams], "update", now_ms)
        if self.faults.unknown_symbols:
            frames.append(self._ticker(UNKNOWN_SYMBOL, "update", Decimal("1.2345"), 4, now_ms))
        return frames

    def heartbeat_frames(self, client: Client, now_ms: int) -> list[str]:
        # Kraken sends heartbeats only in quiet seconds, and only to subscribed clients.
        if client.sub.streams and time.monotonic() - client.last_data >= 1.0:
            return ['{"channel":"heartbeat"}']
        return []

    async def on_open(self, client: Client) -> None:
        status = {
            "channel": "status",
            "type": "update",
            "data": [
                {
                    "version": "2.0.10",
                    "system": "online",
                    "api_version": "v2",
                    "connection_id": 9471984923908980762 + self.connections,
                }
            ],
        }
        await client.send(orjson.dumps(status).decode())

    async def on_text(self, client: Client, text: str) -> None:
        try:
            msg: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            await client.send(
                orjson.dumps({"error": "Malformed request", "success": False}).decode()
            )
            return
        stamp = _time(now_ms())
        method = msg.get("method")
        if method == "ping":
            reply = {"method": "pong", "req_id": msg.get("req_id"), "time_in": stamp}
            await client.send(orjson.dumps({**reply, "time_out": stamp}).decode())
            return
        params: dict[str, Any] = msg["params"] if isinstance(msg.get("params"), dict) else {}
        if method != "subscribe" or params.get("channel") != "ticker":
            error = {"error": "Unsupported request", "method": method, "success": False}
            await client.send(orjson.dumps(error).decode())
            return
        accepted = []
        for symbol in params.get("symbol") or []:
            if symbol in self.listing:
                result = {
                    "channel": "ticker",
                    "event_trigger": "trades",
                    "snapshot": True,
                    "symbol": symbol,
                }
                reply = {"method": "subscribe", "result": result, "success": True}
                accepted.append(symbol)
            else:
                reply = {
                    "error": f"Currency pair not supported {symbol}",
                    "method": "subscribe",
                    "success": False,
                    "symbol": symbol,
                }
            await client.send(orjson.dumps({**reply, "time_in": stamp, "time_out": stamp}).decode())
        client.sub.streams.update(accepted)
        for frame in self._frames(accepted, "snapshot", now_ms()):
            await client.send(frame)

    # -- REST -----------------------------------------------------------------------------

    async def _asset_pairs(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        result = {}
        for index, symbol in enumerate(self.listing):
            if self.faults.delisted and index == 1:
                continue
            key, altname, wsname = _pair(symbol)
            base, quote = symbol.split("/")
            result[key] = {
                "altname": altname,
                "wsname": wsname,
                "base": base,
                "quote": quote,
                "status": "cancel_only" if self.faults.delisted and index == 0 else "online",
            }
        return web.json_response({"error": [], "result": result})
