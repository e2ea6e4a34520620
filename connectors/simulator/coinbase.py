"""Coinbase Advanced Trade as the simulator speaks it: subscriptions, ticker, heartbeats."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

from connectors.simulator.base import Client, SimVenue, Subscription, now_ms, rfc3339_nanos
from connectors.venues import coinbase

UNKNOWN_SYMBOL = "NOPE-USD"


class CoinbaseSim(SimVenue):
    """Ticker updates per product, numbered per connection, and heartbeats every second."""

    name = coinbase.NAME
    naming = coinbase.NAMING
    defaults = coinbase.MARKETS
    offset = Decimal("0.0002")
    heartbeat_interval_s = 1.0

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self._ws),
            web.get("/api/v3/brokerage/market/products", self._products),
            web.get("/api/v3/brokerage/market/products/{product_id}", self._product),
        ]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"COINBASE_WS_URL": ws_base, "COINBASE_API_URL": http_base}

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.accept(request, Subscription())

    def subscribe_all(self) -> Subscription:
        return Subscription(set(self.listing))

    # -- frames ---------------------------------------------------------------------------

    def _message(self, sub: Subscription, channel: str, events: list[Any], ms: int) -> str:
        return orjson.dumps(
            {
                "channel": channel,
                "client_id": "",
                "timestamp": rfc3339_nanos(ms),
                "sequence_num": sub.next_sequence(),
                "events": events,
            }
        ).decode()

    def _ticker(self, product: str, price: Decimal) -> dict[str, Any]:
        rng = random.Random(f"{product}{self.seq}")
        return {
            "type": "ticker",
            "product_id": product,
            "price": str(price),
            "volume_24_h": str(Decimal(rng.randint(10**6, 10**9)) / 10**4),
            "low_24_h": str(price * Decimal("0.98")),
            "high_24_h": str(price * Decimal("1.02")),
            "low_52_w": str(price * Decimal("0.5")),
            "high_52_w": str(price * Decimal("1.5")),
            "price_percent_chg_24_h": "-0.41",
            "best_bid": str(price),
            "best_bid_quantity": str(Decimal(rng.randint(1, 10**6)) / 10**4),
            "best_ask": str(price),
            "best_ask_quantity": str(Decimal(rng.randint(1, 10**6)) / 10**4),
        }

    def _tickers(self, sub: Subscription, kind: str, products: list[str], ms: int) -> list[str]:
        return [
            self._message(
                sub,
                "ticker",
                [{"type": kind, "tickers": [self._ticker(p, self._price(p))]}],
                ms,
            )
            for p in products
        ]

    def _price(self, product: str) -> Decimal:
        market = self.listing.get(product)
        return Decimal("1.2345") if market is None else self.venue_price(market)

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        products = [p for p in self.listing if p in sub.streams]
        if self.faults.unknown_symbols:
            products.append(UNKNOWN_SYMBOL)
        return self._tickers(sub, "update", products, now_ms)

    def heartbeat_frames(self, client: Client, now_ms: int) -> list[str]:
        if "heartbeats" not in client.sub.channels:
            return []
        now = datetime.fromtimestamp(now_ms / 1000, UTC)
        event = {
            "current_time": now.strftime("%Y-%m-%d %H:%M:%S.%f000 +0000 UTC m=+91717.525857105"),
            "heartbeat_counter": str(client.sent),
        }
        return [self._message(client.sub, "heartbeats", [event], now_ms)]

    async def on_text(self, client: Client, text: str) -> None:
        sub = client.sub
        try:
            msg: Any = orjson.loads(text)
        except orjson.JSONDecodeError:
            msg = None
        if not isinstance(msg, dict) or msg.get("type") not in ("subscribe", "unsubscribe"):
            await client.send(orjson.dumps({"type": "error", "message": "malformed"}).decode())
            return
        channel = msg.get("channel")
        products = [p for p in msg.get("product_ids") or [] if isinstance(p, str)]
        unknown = [p for p in products if p not in self.listing]
        if channel == "ticker" and unknown:
            error = {"type": "error", "message": f"failure to subscribe: unknown {unknown[0]}"}
            await client.send(orjson.dumps(error).decode())
            return
        if channel not in ("ticker", "heartbeats"):
            error = {"type": "error", "message": f"unsupported channel {channel!r}"}
            await client.send(orjson.dumps(error).decode())
            return
        if msg["type"] == "unsubscribe":
            sub.streams.difference_update(products)
            sub.channels.discard(channel)
        elif channel == "ticker":
            sub.streams.update(products)
        else:
            sub.channels.add(channel)
        subscriptions: dict[str, list[str]] = {"ticker": sorted(sub.streams)}
        if "heartbeats" in sub.channels:
            subscriptions["heartbeats"] = ["heartbeats"]
        ms = now_ms()
        await client.send(
            self._message(sub, "subscriptions", [{"subscriptions": subscriptions}], ms)
        )
        if channel == "ticker" and msg["type"] == "subscribe":
            for frame in self._tickers(sub, "snapshot", products, ms):
                await client.send(frame)

    # -- REST -----------------------------------------------------------------------------

    def _described(self, product: str) -> dict[str, Any] | None:
        """A product as the REST API describes it; None when not (or no longer) listed."""
        names = list(self.listing)
        if product not in names or (self.faults.delisted and product == names[1]):
            return None
        delisted = self.faults.delisted and product == names[0]
        return {
            "product_id": product,
            "price": str(self.venue_price(self.listing[product])),
            "status": "delisted" if delisted else "online",
            "trading_disabled": delisted,
            "is_disabled": False,
        }

    async def _product(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        described = self._described(request.match_info["product_id"])
        if described is None:
            return web.json_response(
                {"error": "NOT_FOUND", "message": "product not found"}, status=404
            )
        return web.json_response(described)

    async def _products(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        products = [d for p in self.listing if (d := self._described(p)) is not None]
        return web.json_response({"products": products, "num_products": len(products)})
