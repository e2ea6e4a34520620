"""The Central Bank of Russia's daily rates document as the simulator serves it (windows-1251)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from aiohttp import web

from connectors.simulator.base import PRICE_MARKER, SimVenue, Subscription
from connectors.venues import cbr

#: Currencies of the document besides USD: (ID, NumCode, Nominal, name, value in USD).
_OTHERS = {
    "EUR": ("R01239", "978", 1, "Евро", Decimal("1.0850")),
    "CNY": ("R01375", "156", 1, "Китайский юань", Decimal("0.1380")),
    "JPY": ("R01820", "392", 100, "Японских иен", Decimal("0.00655")),
}
UNKNOWN_CURRENCY = ("R09999", "999", 1, "Несуществующая валюта", Decimal("2.5"))


def _comma(value: Decimal) -> str:
    return f"{value:.4f}".replace(".", ",")


def _valute(code: str, ident: str, num: str, nominal: int, name: str, rub: Decimal) -> str:
    return (
        f'<Valute ID="{ident}"><NumCode>{num}</NumCode><CharCode>{code}</CharCode>'
        f"<Nominal>{nominal}</Nominal><Name>{name}</Name><Value>{_comma(rub * nominal)}</Value>"
        f"<VunitRate>{_comma(rub)}</VunitRate></Valute>"
    )


class CbrSim(SimVenue):
    """XML_daily.asp with USD from the market's USD-RUB reference (which moves: tests see it)."""

    name = cbr.NAME
    defaults = cbr.MARKETS
    polled = True

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/scripts/XML_daily.asp", self._daily)]

    def env(self, ws_base: str, http_base: str) -> dict[str, str]:
        return {"CBR_URL": f"{http_base}/scripts/XML_daily.asp"}

    def subscribe_all(self) -> Subscription:
        return Subscription(set(cbr.MARKETS))

    def malformed_frame(self) -> str:
        return '<?xml version="1.0" encoding="windows-1251"?><ValCurs Date="24.11.2026"><Valute'

    def rate_limit_body(self) -> Any:
        return {"error": "Too many requests (simulated)"}

    def venue_price(self, market: str) -> Decimal:
        if self.faults.price_text and self.faults.prices_faulted(market):
            return PRICE_MARKER
        return self.faulted_price(market, self.market.price(market)).quantize(Decimal("0.0001"))

    def data_frames_for(self, sub: Subscription, now_ms: int) -> list[str]:
        day = datetime.fromtimestamp(now_ms / 1000, UTC).astimezone(cbr.MOSCOW)
        usd = self.venue_price("USD-RUB")
        valutes = [
            _valute(code, ident, num, nominal, name, (usd * in_usd).quantize(Decimal("0.0001")))
            for code, (ident, num, nominal, name, in_usd) in _OTHERS.items()
        ]
        if "USD" in sub.streams and not self.faults.delisted:
            valutes.insert(1, _valute("USD", "R01235", "840", 1, "Доллар США", usd))
        if self.faults.unknown_symbols:
            ident, num, nominal, name, in_usd = UNKNOWN_CURRENCY
            valutes.append(_valute("XXX", ident, num, nominal, name, usd * in_usd))
        return [
            '<?xml version="1.0" encoding="windows-1251"?>'
            f'<ValCurs Date="{day:%d.%m.%Y}" name="Foreign Currency Market">'
            + "".join(valutes)
            + "</ValCurs>"
        ]

    async def _daily(self, request: web.Request) -> web.Response:
        faulted = await self.rest_faults(request)
        if faulted is not None:
            return faulted
        (body,) = self.data_frames_for(self.subscribe_all(), self.venue_now_ms())
        return web.Response(
            body=self._maybe_malformed(body).encode("windows-1251"),
            content_type="application/xml",
            charset="windows-1251",
        )
