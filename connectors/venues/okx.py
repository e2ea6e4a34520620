"""OKX v5 public websocket: the ``tickers`` channel of spot instruments.

Frames: ``{"event":"subscribe",...}`` acks and a ``channel-conn-count`` notice, then pushes
``{"arg":{"channel":"tickers","instId":...},"data":[{...,"last":"...","ts":"..."}]}``.
The client sends the text ``ping`` (answer: ``pong``) so that a quiet connection is not
closed after 30 s; ``{"event":"notice","code":"64008"}`` announces a service upgrade: the
loop hands over to a new connection at once.
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
    collect,
    json_object,
    listing,
    load_json,
    lookup,
    make_quote,
    millis,
    price,
    same_url,
)
from connectors.venues.naming import dash_naming
from schemas.errors import FrameError

NAME = "okx"

#: Instrument ids are the canonical market (``SOL-USDT``); USDT's own price from USDC-USDT.
NAMING = dash_naming(usd_quotes=("USDT",), usdt_markets=("USDC-USDT",))

#: The markets of the default directions.
MARKETS = {
    "BTC-USDT": "BTC-USDT",
    "ETH-USDT": "ETH-USDT",
    "USDC-USDT": "USDC-USDT",
}

#: The notice OKX sends 30 s before closing connections for a service upgrade.
UPGRADE_NOTICE = "64008"


#: Bytes of one subscribe request's channels: OKX refuses more than 64 KB (its v5 docs; not
#: in shared/exchanges.md), so a long list goes out in several requests, with a margin.
MAX_SUBSCRIBE_BYTES = 60_000


def subscribe(symbols: Sequence[str]) -> list[str]:
    """Subscribe requests of at most MAX_SUBSCRIBE_BYTES of channels each."""
    chunks: list[list[dict[str, str]]] = [[]]
    size = 0
    for symbol in symbols:
        arg = {"channel": "tickers", "instId": symbol}
        length = len(orjson.dumps(arg)) + 1
        if chunks[-1] and size + length > MAX_SUBSCRIBE_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(arg)
        size += length
    return [orjson.dumps({"op": "subscribe", "args": args}).decode() for args in chunks if args]


def classify(frame: str) -> Frame:
    if frame == "pong":
        return Frame(FrameKind.CONTROL, NAME)
    msg = json_object(frame, NAME)
    if msg is None:
        return Frame(FrameKind.MALFORMED, NAME)
    event = msg.get("event")
    if event == "error":
        return Frame(FrameKind.ERROR, NAME)
    if event == "notice" and msg.get("code") == UPGRADE_NOTICE:
        return Frame(FrameKind.RECONNECT, NAME)
    if isinstance(event, str):
        return Frame(FrameKind.CONTROL, NAME)
    arg = msg.get("arg")
    if isinstance(arg, dict) and isinstance(msg.get("data"), list):
        inst = arg.get("instId")
        return Frame(FrameKind.DATA, inst if isinstance(inst, str) else NAME)
    return Frame(FrameKind.MALFORMED, NAME)


def _ticker(item: object, received_at: datetime) -> MarketQuote:
    entry, inst, market = lookup(item, "instId", NAMING.market, NAME)
    value = price(entry.get("last"), "okx ticker last")
    ts = millis(entry.get("ts"), "okx ticker ts")
    return make_quote(NAME, inst, market, value, ts, received_at)


def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
    """Quotes of a tickers push; [] for pongs, acks and notices."""
    if frame == "pong":
        return []
    msg = load_json(frame, NAME)
    if not isinstance(msg, dict):
        raise FrameError("okx: expected a JSON object")
    if "event" in msg:
        return []
    arg = msg.get("arg")
    data = msg.get("data")
    if not isinstance(arg, dict) or not isinstance(data, list):
        raise FrameError("okx: push without arg and data")
    if arg.get("channel") != "tickers":
        return []
    return collect(data, lambda item: _ticker(item, received_at))


def symbol_paths(symbols: Sequence[str]) -> list[str]:
    return ["/api/v5/public/instruments?instType=SPOT"]


def listed(status: int, body: str) -> dict[str, bool]:
    """Instrument -> trading (``state`` live), from the public instruments list."""
    msg = load_json(body, NAME)
    if status != 200 or not isinstance(msg, dict):
        raise FrameError(f"okx: unexpected instruments answer (HTTP {status})")
    return listing(msg.get("data"), "instId", lambda i: i.get("state") == "live", NAME)


VENUE = WebsocketVenue(
    name=NAME,
    url_setting="okx_ws_url",
    markets=MARKETS,
    naming=NAMING,
    connect_url=same_url,
    subscribe=subscribe,
    classify=classify,
    parse=parse,
    heartbeat=Heartbeat("ping", 20.0),  # OKX closes connections quiet for 30 s
    silence_limit_s=3.0,
    max_messages_per_s=5.0,
    max_connects=RateLimit(3, 1.0),
    symbol_check=SymbolCheck("okx_api_url", symbol_paths, listed),
)
