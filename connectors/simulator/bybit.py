"""Bybit v5 public spot as the simulator speaks it: op ping/pong, <= 10 args, tickers snapshots."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription
from connectors.venues import bybit

UNKNOWN_SYMBOL = "NOPEUSDT"


class BybitSim(SimVenue):
    """Spot ticker snapshots for the symbols of connectors.venues.bybit."""

    name = bybit.NAME
    naming = bybit.NAMING
    defaults = bybit.MARKETS
    offset = Decimal("0.0001")

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v5/public/spot", self._ws),
            web.get("/v5/market/instruments-info", self._instruments),
        ]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"BYBIT_WS_URL": f"{ws_base}/v5/public/spot", "BYBIT_API_URL": http_base}

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.accept(request, Subscription())

    def subscribe_all(self) -> Subscription:
        return Subscription(set(self.listing))

    # -- frames ---------------------------------------------------------------------------

    def _ticker(self, symbol: str, last: Decimal, ms: int) -> str:
        rng = random.Random(f"{symbol}{self.seq}")
        data = {
            "symbol": symbol,
            "lastPrice": str(last),
            "highPrice24h": str(last * Decimal("1.02")),
            "lowPrice24h": str(last * Decimal("0.98")),
            "prevPrice24h": str(last),
            "volume24h": str(Decimal(rng.randint(10**6, 10**9)) / 10**4),
            "turnover24h": str(Decimal(rng.randint(10**9, 10**12)) / 10**4),
            "price24hPcnt": "0.0196",
            "usdIndexPrice": str(last),
        }
        frame = {
            "topic": f"{bybit.TOPIC}{symbol}",
            "ts": ms,
            "type": "snapshot",
            "cs": 2588407389 + self.seq,
            "data": data,
        }
        return orjson.dumps(frame).decode()

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        frames = [
            self._ticker(symbol, self.venue_price(market), now_ms)
            for symbol, market in self.listing.items()
            if symbol in sub.streams
        ]
        if self.faults.unknown_symbols:
            frames.append(self._ticker(UNKNOWN_SYMBOL, Decimal("1.2345"), now_ms))
        return frames

    async def on_text(self, client: Client, text: str) -> None:
        conn_id = str(uuid.uuid5(uuid.NAMESPACE_OID, str(id(client))))
        try:
            msg: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict):
            msg = {}
        op, req_id = msg.get("op"), msg.get("req_id", "")
        reply: dict[str, Any] = {"success": True, "conn_id": conn_id, "req_id": req_id, "op": op}
        if op == "ping":
            reply["ret_msg"] = "pong"
        elif op == "subscribe":
            args = [a for a in msg.get("args") or [] if isinstance(a, str)]
            bad = [a for a in args if a.removeprefix(bybit.TOPIC) not in self.listing]
            if len(args) > bybit.MAX_ARGS:
                reply.update(success=False, ret_msg=f"args size >{bybit.MAX_ARGS}")
            elif bad:
                reply.update(success=False, ret_msg=f"error:handler not found,topic:{bad[0]}")
            else:
                reply["ret_msg"] = "subscribe"
            if len(args) <= bybit.MAX_ARGS:
                client.sub.streams.update(a.removeprefix(bybit.TOPIC) for a in args if a not in bad)
        else:
            reply.update(success=False, ret_msg=f"error:unknown op {op!r}")
        await client.send(orjson.dumps(reply).decode())

    # -- REST -----------------------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        found = []
        for index, (symbol, market) in enumerate(self.listing.items()):
            if self.faults.delisted and index == 1:
                continue
            base, quote = market.split("-")
            status = "PreLaunch" if self.faults.delisted and index == 0 else "Trading"
            found.append({"symbol": symbol, "baseCoin": base, "quoteCoin": quote, "status": status})
        return web.json_response(
            {
                "retCode": 0,
                "retMsg": "OK",
                "result": {"category": "spot", "list": found},
                "retExtInfo": {},
            }
        )
