"""OKX v5 public websocket as the simulator speaks it: text ping/pong, acks, tickers, 64008."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription
from connectors.venues import okx

UNKNOWN_SYMBOL = "NOPE-USDT"


class OkxSim(SimVenue):
    """Spot tickers for the instruments of connectors.venues.okx."""

    name = okx.NAME
    naming = okx.NAMING
    defaults = okx.MARKETS
    offset = Decimal("-0.0002")
    actions = ("upgrade",)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/ws/v5/public", self._ws),
            web.get("/api/v5/public/instruments", self._instruments),
        ]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"OKX_WS_URL": f"{ws_base}/ws/v5/public", "OKX_API_URL": http_base}

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.accept(request, Subscription())

    def subscribe_all(self) -> Subscription:
        return Subscription(set(self.listing))

    # -- frames ---------------------------------------------------------------------------

    def _ticker(self, inst: str, last: Decimal, ms: int) -> str:
        rng = random.Random(f"{inst}{self.seq}")
        spread = last * Decimal("0.00001")
        data = {
            "instType": "SPOT",
            "instId": inst,
            "last": str(last),
            "lastSz": str(Decimal(rng.randint(1, 10**6)) / 10**5),
            "askPx": str(last + spread),
            "askSz": str(Decimal(rng.randint(1, 10**6)) / 10**3),
            "bidPx": str(last - spread),
            "bidSz": str(Decimal(rng.randint(1, 10**6)) / 10**3),
            "open24h": str(last),
            "high24h": str(last),
            "low24h": str(last),
            "sodUtc0": str(last),
            "sodUtc8": str(last),
            "volCcy24h": str(Decimal(rng.randint(10**6, 10**9)) / 10**2),
            "vol24h": str(Decimal(rng.randint(10**3, 10**6)) / 10**2),
            "ts": str(ms),
        }
        return orjson.dumps(
            {"arg": {"channel": "tickers", "instId": inst}, "data": [data]}
        ).decode()

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        frames = [
            self._ticker(inst, self.venue_price(market), now_ms)
            for inst, market in self.listing.items()
            if inst in sub.streams
        ]
        if self.faults.unknown_symbols:
            frames.append(self._ticker(UNKNOWN_SYMBOL, Decimal("1.2345"), now_ms))
        return frames

    async def on_text(self, client: Client, text: str) -> None:
        if text == "ping":
            await client.send("pong")
            return
        conn_id = uuid.uuid5(uuid.NAMESPACE_OID, str(id(client))).hex[:8]
        try:
            msg: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict) or msg.get("op") != "subscribe":
            error = {
                "event": "error",
                "code": "60012",
                "msg": f"Invalid request: {text[:60]}",
                "connId": conn_id,
            }
            await client.send(orjson.dumps(error).decode())
            return
        for arg in msg.get("args") or []:
            inst = arg.get("instId") if isinstance(arg, dict) else None
            if isinstance(arg, dict) and arg.get("channel") == "tickers" and inst in self.listing:
                client.sub.streams.add(inst)
                reply: dict[str, Any] = {"event": "subscribe", "arg": arg, "connId": conn_id}
            else:
                reply = {
                    "event": "error",
                    "code": "60018",
                    "msg": f"Wrong URL or channel:tickers,instId:{inst} doesn't exist. Please use "
                    "the correct URL, channel and parameters referring to API document.",
                    "connId": conn_id,
                }
            await client.send(orjson.dumps(reply).decode())
        count = {
            "event": "channel-conn-count",
            "channel": "tickers",
            "connCount": "1",
            "connId": conn_id,
        }
        await client.send(orjson.dumps(count).decode())

    async def action(self, name: str) -> None:
        if name == "upgrade":
            notice = {
                "event": "notice",
                "code": okx.UPGRADE_NOTICE,
                "msg": "The connection will soon be closed for a service upgrade. "
                "Please reconnect.",
                "connId": "a4d3ae55",
            }
            await self.notice_then_close(lambda client: orjson.dumps(notice).decode())
            return
        await super().action(name)

    # -- REST -----------------------------------------------------------------------------

    async def _instruments(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        data = []
        for index, (inst, market) in enumerate(self.listing.items()):
            if self.faults.delisted and index == 1:
                continue
            base, quote = market.split("-")
            state = "suspend" if self.faults.delisted and index == 0 else "live"
            data.append(
                {
                    "instType": "SPOT",
                    "instId": inst,
                    "baseCcy": base,
                    "quoteCcy": quote,
                    "state": state,
                }
            )
        return web.json_response({"code": "0", "msg": "", "data": data})
