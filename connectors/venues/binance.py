"""Binance spot: combined trade streams over one websocket (``/stream?streams=...``).

Frames: ``{"stream": "btcusdt@trade", "data": {...}}``. The server pings every 20 s (the
websocket library answers), ends connections at 24 h, and announces shutdowns with
``serverShutdown``. A stream for an unknown symbol is accepted and then silent.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from connectors.venues.base import (
    Frame,
    FrameKind,
    MarketQuote,
    RateLimit,
    SymbolCheck,
    WebsocketVenue,
    collect,
    json_object,
    listing,
    load_json,
    make_quote,
    millis,
    price,
)
from connectors.venues.naming import concat_naming
from schemas.errors import FrameError, UnknownSymbol

NAME = "binance"

#: SOL-USD is read from ``SOLUSDT`` (USDT counted as USD); USDT's own from ``USDCUSDT``.
NAMING = concat_naming(usd_quotes=("USDT",), usdt_markets=("USDC-USDT",))

#: The markets of the default directions.
MARKETS = {
    "BTCUSDT": "BTC-USDT",
    "ETHUSDT": "ETH-USDT",
    "USDCUSDT": "USDC-USDT",
}

#: Streams per connection allowed by Binance.
MAX_STREAMS = 1024


def connect_url(base: str, symbols: Sequence[str]) -> str:
    """Combined-stream URL: the base (no path) plus one ``<symbol>@trade`` stream each."""
    if not symbols:
        raise ValueError("binance: no symbols to subscribe")
    if len(symbols) > MAX_STREAMS:
        raise ValueError(f"binance: {len(symbols)} streams exceed {MAX_STREAMS} per connection")
    streams = "/".join(f"{s.lower()}@trade" for s in symbols)
    return f"{base.rstrip('/')}/stream?streams={streams}"


def subscribe(symbols: Sequence[str]) -> list[str]:
    """Nothing to send: the combined-stream URL subscribes."""
    return []


def classify(frame: str) -> Frame:
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    stream = msg.get("stream")
    if isinstance(stream, str):
        if stream == "!serverShutdown":
            return Frame(FrameKind.RECONNECT, stream)
        return Frame(FrameKind.DATA, stream)
    if msg.get("e") == "serverShutdown":
        return Frame(FrameKind.RECONNECT, NAME)
    if "result" in msg and "id" in msg:
        return Frame(FrameKind.CONTROL, NAME)
    if "code" in msg and "msg" in msg:
        return Frame(FrameKind.ERROR, NAME)
    if isinstance(msg.get("e"), str) and isinstance(msg.get("s"), str):
        return Frame(FrameKind.DATA, msg["s"].lower())
    return Frame(FrameKind.MALFORMED, NAME)


def _event(data: object, received_at: datetime) -> MarketQuote | None:
    if not isinstance(data, dict):
        raise FrameError("binance: event is not an object")
    event = data.get("e")
    if event == "serverShutdown":
        return None
    symbol = data.get("s")
    if not isinstance(symbol, str):
        raise FrameError(f"binance: {event} event without symbol")
    market = NAMING.market(symbol)
    if market is None:
        raise UnknownSymbol(f"binance: unknown symbol {symbol!r}")
    if event == "trade":
        value = price(data.get("p"), "binance trade p")
        ts = millis(data.get("T"), "binance trade T")
        ident = f"{NAME}:{symbol}:t{_int(data.get('t'), 'trade t')}"
    elif event == "aggTrade":
        value = price(data.get("p"), "binance aggTrade p")
        ts = millis(data.get("T"), "binance aggTrade T")
        ident = f"{NAME}:{symbol}:a{_int(data.get('a'), 'aggTrade a')}"
    elif event == "24hrTicker":
        value = price(data.get("c"), "binance ticker c")
        ts = millis(data.get("E"), "binance ticker E")
        ident = f"{NAME}:{symbol}:t{_int(data.get('L'), 'ticker L')}"
    elif event == "24hrMiniTicker":
        value = price(data.get("c"), "binance miniTicker c")
        ts = millis(data.get("E"), "binance miniTicker E")
        ident = None
    else:
        return None
    return make_quote(NAME, symbol, market, value, ts, received_at, ident)


def _int(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise FrameError(f"binance {what}: expected an integer, got {value!r}")
    return value


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """Quotes carried by one frame; [] for acks and notices; FrameError when malformed."""
    msg = load_json(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("binance: expected a JSON object")
    if "stream" in msg:
        data = msg.get("data")
    elif "result" in msg or "code" in msg:
        return []
    else:
        data = msg
    items = data if isinstance(data, list) else [data]
    return collect(items, lambda item: _event(item, received_at))


def symbol_paths(symbols: Sequence[str]) -> list[str]:
    """The whole spot listing in one request (weight 20): asking per symbol would cost 20
    per symbol, and a ``symbols`` list with one unknown symbol fails as a whole."""
    return ["/api/v3/exchangeInfo?permissions=SPOT"]


def listed(status: int, body: str) -> dict[str, bool]:
    """Symbol -> trading, from an exchangeInfo answer (HTTP 400 -1121: not listed)."""
    msg = load_json(body, NAME)
    if status == 400 and isinstance(msg, dict) and msg.get("code") == -1121:
        return {}
    if status != 200 or not isinstance(msg, dict):
        raise FrameError(f"binance: unexpected exchangeInfo answer (HTTP {status})")
    return listing(msg.get("symbols"), "symbol", lambda s: s.get("status") == "TRADING", NAME)


VENUE = WebsocketVenue(
    name=NAME,
    url_setting="binance_ws_url",
    markets=MARKETS,
    naming=NAMING,
    connect_url=connect_url,
    subscribe=subscribe,
    classify=classify,
    parse=parse,
    heartbeat=None,  # server pings; the websocket library answers with the same payload
    silence_limit_s=3.0,
    max_lifetime_s=24 * 3600.0,
    rotate_setting="binance_rotate_after_s",
    max_messages_per_s=5.0,
    max_connects=RateLimit(300, 300.0),
    symbol_check=SymbolCheck("binance_api_url", symbol_paths, listed),
    max_symbols_per_connection=MAX_STREAMS,
)
