"""Names of the venues: part of the topic contract (``ticks.raw.<venue>``) and of the API."""

from __future__ import annotations

#: Venues that quote crypto markets: the valid ``exchanger`` values of the API, in the
#: default priority order.
EXCHANGERS: tuple[str, ...] = ("binance", "kraken", "okx", "bybit", "coinbase", "coingecko")

#: Sources of the USD-RUB reference rate: venues of the pipeline, never an exchanger.
REFERENCES: tuple[str, ...] = ("cbr",)

#: Every venue a connector can run (``RATES_VENUES``), in the default priority order.
VENUES: tuple[str, ...] = EXCHANGERS + REFERENCES
