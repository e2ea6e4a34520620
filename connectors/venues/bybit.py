"""Bybit v5 public spot websocket: the ``tickers.<symbol>`` topics.

Frames: ``{"success":true,"op":"subscribe",...}`` acks, then snapshot-only pushes
``{"topic":"tickers.BTCUSDT","ts":...,"type":"snapshot","cs":...,"data":{...}}`` (``data``
is an object for spot). A subscribe may carry at most 10 topics; the client sends
``{"op":"ping"}`` every 20 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from connectors.venues.base import (
    Frame,
    FrameKind,
    Heartbeat,
    MarketQuote,
    RateLimit,
    SymbolCheck,
    WebsocketVenue,
    json_object,
    listing,
    load_json,
    lookup,
    make_quote,
    millis,
    price,
    same_url,
)
from connectors.venues.naming import concat_naming
from schemas.errors import FrameError

NAME = "bybit"

#: SOL-USD is read from ``SOLUSDT`` (USDT counted as USD); USDT's own from ``USDCUSDT``.
NAMING = concat_naming(usd_quotes=("USDT",), usdt_markets=("USDC-USDT",))

#: The markets of the default directions.
MARKETS = {
    "BTCUSDT": "BTC-USDT",
    "ETHUSDT": "ETH-USDT",
    "USDCUSDT": "USDC-USDT",
}

#: Topics per subscribe request allowed on spot.
MAX_ARGS = 10

TOPIC = "tickers."


def subscribe(symbols: Sequence[str]) -> list[str]:
    """Subscribe requests of at most MAX_ARGS topics each."""
    topics = [f"{TOPIC}{symbol}" for symbol in symbols]
    chunks = [topics[i : i + MAX_ARGS] for i in range(0, len(topics), MAX_ARGS)]
    return [
        orjson.dumps({"req_id": f"sub-{n}", "op": "subscribe", "args": args}).decode()
        for n, args in enumerate(chunks, 1)
    ]


def classify(frame: str) -> Frame:
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    topic = msg.get("topic")
    if isinstance(topic, str) and isinstance(msg.get("data"), dict | list):
        return Frame(FrameKind.DATA, topic.removeprefix(TOPIC))
    if "op" in msg:
        ok = msg.get("success") is not False
        return Frame(FrameKind.CONTROL if ok else FrameKind.ERROR, NAME)
    return Frame(FrameKind.MALFORMED, NAME)


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """The quote of a tickers push; [] for acks and pongs."""
    msg = load_json(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("bybit: expected a JSON object")
    if "op" in msg:
        return []
    topic = msg.get("topic")
    data = msg.get("data")
    if not isinstance(topic, str) or not isinstance(data, dict):
        raise FrameError("bybit: push without topic and data object")
    if not topic.startswith(TOPIC):
        return []
    _, symbol, market = lookup(data, "symbol", NAMING.market, NAME)
    value = price(data.get("lastPrice"), "bybit ticker lastPrice")
    ts = millis(msg.get("ts"), "bybit ticker ts")
    cs = msg.get("cs")
    # The cross sequence identifies the matching-engine state the ticker shows.
    ident = f"{NAME}:{symbol}:c{cs}" if isinstance(cs, int) and not isinstance(cs, bool) else None
    return [make_quote(NAME, symbol, market, value, ts, received_at, ident)]


def symbol_paths(symbols: Sequence[str]) -> list[str]:
    return ["/v5/market/instruments-info?category=spot"]


def listed(status: int, body: str) -> dict[str, bool]:
    """Symbol -> trading (``status`` Trading), from the spot instruments list."""
    msg = load_json(body, NAME)
    result = msg.get("result") if isinstance(msg, dict) else None
    if status != 200 or not isinstance(result, dict):
        raise FrameError(f"bybit: unexpected instruments-info answer (HTTP {status})")
    return listing(result.get("list"), "symbol", lambda i: i.get("status") == "Trading", NAME)


VENUE = WebsocketVenue(
    name=NAME,
    url_setting="bybit_ws_url",
    markets=MARKETS,
    naming=NAMING,
    connect_url=same_url,
    subscribe=subscribe,
    classify=classify,
    parse=parse,
    heartbeat=Heartbeat('{"req_id":"ping","op":"ping"}', 20.0),
    silence_limit_s=3.0,
    max_messages_per_s=5.0,
    max_connects=RateLimit(500, 300.0),
    symbol_check=SymbolCheck("bybit_api_url", symbol_paths, listed),
)
