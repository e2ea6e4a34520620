"""CoinGecko REST ``/simple/price`` and ``/coins/list`` as the simulator serves them (and its
429 with retry-after)."""

from __future__ import annotations

import functools
from collections import Counter
from decimal import Decimal
from typing import Any

from aiohttp import web

from connectors.simulator.base import PRICE_MARKER, SimVenue, Subscription
from connectors.venues import coingecko

UNKNOWN_COIN = "nopecoin"

#: The digits CoinGecko's full precision shows here.
_DECIMALS = {"usd": 8, "rub": 6}

#: A symbol two coins share, neither with the symbol as its id: the lookup names no coin.
AMBIGUOUS = ("ambi", ("ambi-one", "ambi-bridged"))

_RATE_LIMITED = {
    "status": {
        "error_code": 429,
        "error_message": "You've exceeded the Rate Limit. Please visit "
        "https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher "
        "rate limits.",
    }
}


class CoinGeckoSim(SimVenue):
    """Prices per coin and currency; RUB values are the USD value times the USD-RUB reference."""

    name = coingecko.NAME
    defaults = coingecko.MARKETS
    offset = Decimal("-0.0001")
    polled = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: Names of the key headers clients sent (never their values).
        self.key_headers: Counter[str] = Counter()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/v3/simple/price", self._simple_price),
            web.get("/api/v3/coins/list", self._coins_list),
        ]

    @functools.cached_property
    def coins(self) -> dict[str, str]:
        """Coin id -> asset of every asset the simulated market prices in USD: the real ids
        of common assets, the lower-case symbol for the others."""
        found = {}
        for market in self.market.markets:
            asset, quote = market.split("-")
            if quote == "USD" and asset != "USD":
                found[coingecko.DEFAULT_IDS.get(asset, asset.lower())] = asset
        return found

    @functools.cached_property
    def coin_markets(self) -> dict[str, str]:
        """``<coin id>/<vs>`` -> market of every coin (the defaults' order first)."""
        return {**coingecko.MARKETS, **coingecko.markets_for({a: c for c, a in self.coins.items()})}

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"COINGECKO_API_URL": f"{http_base}/api/v3"}

    def subscribe_all(self) -> Subscription:
        return Subscription(set(coingecko.MARKETS))

    def rate_limit_body(self) -> Any:
        return _RATE_LIMITED

    def extra_state(self) -> dict[str, Any]:
        return {"key_headers": dict(self.key_headers)}

    def malformed_frame(self) -> str:
        return '{"bitcoin":{"usd":67187.33,"last_updated_at"'

    def venue_price(self, market: str) -> Decimal:
        if self.faults.price_text and self.faults.prices_faulted(market):
            return PRICE_MARKER
        base, quote = market.split("-")
        usd = super().venue_price(f"{base}-USD")
        value = usd if quote == "USD" else usd * self.market.price("USD-RUB")
        return value.quantize(Decimal(1).scaleb(-_DECIMALS[quote.lower()]))

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        """The one answer body for the coin/currency pairs asked for."""
        updated = now_ms // 1000
        coins: dict[str, list[str]] = {}
        first_coin = next(iter(coingecko.MARKETS)).split("/")[0]
        for symbol, market in self.coin_markets.items():
            coin, vs = symbol.split("/")
            # CoinGecko leaves an id it does not know out of the answer.
            if symbol in sub.streams and not (self.faults.delisted and coin == first_coin):
                coins.setdefault(coin, []).append(f'"{vs}":{self.venue_price(market)}')
        if self.faults.unknown_symbols:
            coins[UNKNOWN_COIN] = ['"usd":1.2345']
        # Written by hand: JSON numbers with the digits CoinGecko shows.
        body = ",".join(
            f'"{coin}":{{{",".join(prices)},"last_updated_at":{updated}}}'
            for coin, prices in coins.items()
        )
        return [f"{{{body}}}"]

    async def _coins_list(self, request: web.Request) -> web.Response:
        """Every coin (id, symbol, name), with decoys: a wrapped twin sharing each other
        asset's symbol, and one symbol only shared (the lookup rule's two cases)."""
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        found = []
        for coin, asset in self.coins.items():
            symbol = asset.lower()
            found.append({"id": coin, "symbol": symbol, "name": asset})
            if coin == symbol:
                found.append({"id": f"wrapped-{symbol}", "symbol": symbol, "name": f"W{asset}"})
        symbol, twins = AMBIGUOUS
        found.extend({"id": twin, "symbol": symbol, "name": twin} for twin in twins)
        return web.json_response(found)

    async def _simple_price(self, request: web.Request) -> web.Response:
        for header in ("x-cg-demo-api-key", "x-cg-pro-api-key"):
            if header in request.headers:
                self.key_headers[header] += 1
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        ids = request.query.get("ids", "").split(",")
        currencies = request.query.get("vs_currencies", "").split(",")
        wanted = {f"{coin}/{vs}" for coin in ids for vs in currencies}
        (body,) = self.data_frames_for(Subscription(wanted), self.venue_now_ms())
        return web.Response(text=self._maybe_malformed(body), content_type="application/json")
