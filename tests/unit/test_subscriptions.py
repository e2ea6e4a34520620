"""Venue subscriptions derived from configured directions: naming rules, listings, limits."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson
import pytest

from connectors.simulator.market import KNOWN_USD, default_level, levels_for
from connectors.subscriptions import Plan, groups, plan, unserved
from connectors.venues import binance, bybit, coinbase, coingecko, kraken, okx
from connectors.venues.naming import concat_market
from schemas.directions import assets, how
from schemas.errors import FrameError

DIRECTIONS = ("BTC-USD", "SOL-USD", "SOL-RUB", "XRP-USD", "DOGE-USD", "ETH-RUB", "USDTTRC-RUB")


def test_assets_of_directions_resolve_aliases_once() -> None:
    assert assets(DIRECTIONS) == ("BTC", "SOL", "XRP", "DOGE", "ETH", "USDT")


@pytest.mark.parametrize(
    ("naming", "market", "symbol"),
    [
        (binance.NAMING, "SOL-USDT", "SOLUSDT"),
        (bybit.NAMING, "SOL-USDT", "SOLUSDT"),
        (okx.NAMING, "SOL-USDT", "SOL-USDT"),
        (coinbase.NAMING, "SOL-USD", "SOL-USD"),
        (kraken.NAMING, "SOL-USD", "SOL/USD"),
        (binance.NAMING, "USDC-USDT", "USDCUSDT"),
    ],
)
def test_each_venue_names_markets_by_its_rule(naming: object, market: str, symbol: str) -> None:
    assert naming.symbol(market) == symbol  # type: ignore[attr-defined]
    assert naming.market(symbol) == market  # type: ignore[attr-defined]


def test_naming_rules_read_what_they_can() -> None:
    assert concat_market("1INCHUSDT") == "1INCH-USDT"
    assert concat_market("USDT") is None  # a quote alone is no market
    assert concat_market("NOPE") is None
    assert kraken.NAMING.market("XBT/USD") == "BTC-USD"  # REST's v1 code
    assert kraken.NAMING.market("XDG/USD") == "DOGE-USD"
    assert kraken.NAMING.market("BTCUSD") is None
    assert okx.NAMING.market("BTC-USDT-SWAP") is None


def test_candidates_prefer_the_venues_usd_market() -> None:
    assert kraken.NAMING.candidates("SOL") == ("SOL-USD", "SOL-USDT")
    assert binance.NAMING.candidates("SOL") == ("SOL-USDT",)
    assert binance.NAMING.candidates("USDT") == ("USDC-USDT",)
    assert coinbase.NAMING.candidates("USDT") == ("USDT-USD",)


def test_plan_subscribes_the_first_listed_candidate_only() -> None:
    listed = {"SOL/USD": False, "SOL/USDT": True, "BTC/USD": True, "BTC/USDT": True}
    found = plan("kraken", kraken.NAMING, ("BTC", "SOL", "XRP"), listed)
    # One market per asset: never two interleaved prices of one direction from one venue.
    assert found.symbols == {"BTC/USD": "BTC-USD", "SOL/USDT": "SOL-USDT"}
    assert found.missing == {"XRP": "XRP/USD is not listed; XRP/USDT is not listed"}
    serves, missing = found.by_direction(("SOL-USD", "SOL-RUB", "XRP-USD"))
    assert serves == {"SOL-USD": "SOL-USDT", "SOL-RUB": "SOL-USDT"}
    assert missing == {"XRP-USD": "XRP/USD is not listed; XRP/USDT is not listed"}
    assert (
        "SOL/USD is not trading"
        in plan("k", kraken.NAMING, ("SOL",), {"SOL/USD": False}).missing["SOL"]
    )


def test_an_unread_listing_subscribes_the_preferred_candidates_unchecked() -> None:
    found = plan("kraken", kraken.NAMING, ("SOL",), None)
    assert found.symbols == {"SOL/USD": "SOL-USD"} and not found.checked


def test_directions_no_venue_serves_are_named() -> None:
    a = Plan("binance", serves={"BTC": "BTC-USDT"})
    b = Plan("kraken", serves={"SOL": "SOL-USD"})
    assert unserved(("BTC-USD", "SOL-RUB", "XRP-USD", "XRP-RUB"), [a, b]) == ["XRP-USD", "XRP-RUB"]


def test_symbols_are_split_over_connections_by_the_venue_limit() -> None:
    symbols = [f"S{i}USDT" for i in range(2500)]
    parts = groups(symbols, binance.VENUE.max_symbols_per_connection)
    assert [len(p) for p in parts] == [1024, 1024, 452]
    assert [s for part in parts for s in part] == symbols
    with pytest.raises(ValueError, match="at least one"):
        groups(symbols, 0)


def test_subscribe_messages_respect_the_per_message_limits() -> None:
    symbols = [f"S{i}USDT" for i in range(64)]
    messages = bybit.subscribe(symbols)
    assert len(messages) == 7  # at most 10 topics per subscribe on spot
    assert all(len(orjson.loads(m)["args"]) <= 10 for m in messages)
    inst = [f"S{i}-USDT" for i in range(4000)]
    requests = okx.subscribe(inst)
    assert len(requests) == 3  # 64 KB of channels per request at most
    assert [a["instId"] for m in requests for a in orjson.loads(m)["args"]] == inst
    assert len(okx.subscribe(inst[:64])) == 1
    products = [f"S{i}-USD" for i in range(250)]
    messages = coinbase.subscribe(products)
    assert len(messages) == 4  # 100 products a message, then heartbeats
    assert orjson.loads(messages[-1])["channel"] == "heartbeats"


def test_how_a_market_serves_a_direction() -> None:
    assert how("SOL-USD", "SOL-USD") == ("direct", "SOL-USD market")
    assert how("SOL-USD", "SOL-USDT")[0] == "usdt_as_usd"
    assert how("SOL-USD", "SOL-USDT", usdt_as_usd=False)[0] == "via_usdt"
    assert how("USDTTRC-USD", "USDC-USDT")[0] == "inverted"
    code, words = how("SOL-RUB", "SOL-USDT")
    assert code == "derived" and "USD-RUB reference" in words and "SOL-USDT" in words


def test_coin_ids_by_the_documented_rule() -> None:
    coins = [
        {"id": "solana", "symbol": "sol", "name": "Solana"},
        {"id": "wrapped-solana", "symbol": "sol", "name": "Wrapped SOL"},
        {"id": "syn7", "symbol": "syn7", "name": "SYN7"},
        {"id": "wrapped-syn7", "symbol": "syn7", "name": "Wrapped"},
        {"id": "ambi-one", "symbol": "ambi", "name": "A"},
        {"id": "ambi-two", "symbol": "ambi", "name": "B"},
        {"id": "only", "symbol": "uniq", "name": "U"},
    ]
    assert coingecko.resolve_id("UNIQ", coins)[0] == "only"
    assert coingecko.resolve_id("SYN7", coins)[0] == "syn7"  # the id is the symbol
    coin, why = coingecko.resolve_id("AMBI", coins)
    assert coin is None and "COINGECKO_IDS=AMBI=<id>" in why and "ambi-one" in why
    assert coingecko.resolve_id("SOL", coins)[0] is None  # no guess: DEFAULT_IDS has it
    assert coingecko.resolve_id("NONE", coins)[0] is None
    with pytest.raises(FrameError):
        coingecko.resolve_id("SOL", {"error": "x"})


def test_coingecko_parses_looked_up_ids_with_the_map_sent_along() -> None:
    now = datetime(2026, 12, 5, tzinfo=UTC)
    frame = '{"syn7":{"usd":1.25,"rub":101.5,"last_updated_at":1795536000},"solana":{"usd":180.5}}'
    markets = coingecko.markets_for({"SYN7": "syn7"})
    quotes = {q.market: q.value for q in coingecko.parse_with(frame, now, markets)}
    assert quotes == {
        "SYN7-USD": Decimal("1.25"),
        "SYN7-RUB": Decimal("101.5"),
        "SOL-USD": Decimal("180.5"),
    }


def test_the_simulator_prices_any_asset_plausibly() -> None:
    levels = levels_for(("BTC", "SOL", "SYN001", "NOPE"), unlisted=("NOPE",))
    assert levels["SOL-USD"].value == Decimal(KNOWN_USD["SOL"])
    assert "SOL-USDT" in levels and "SYN001-USDT" in levels
    assert not any(m.startswith("NOPE") for m in levels)
    assert default_level("SYN001") == default_level("SYN001")
    assert all(Decimal("0.05") <= default_level(f"S{i}") <= Decimal("500") for i in range(200))


def test_a_venue_beyond_its_limit_opens_several_connections_with_one_status() -> None:
    from connectors.service import _tracker, _websocket
    from connectors.settings import ConnectorSettings

    symbols = {f"S{i}USDT": f"S{i}-USDT" for i in range(2100)}
    settings = ConnectorSettings(rates_directions=("S0-USD", "XMR-USD"))
    found = Plan(
        "binance", symbols=symbols, serves={"S0": "S0-USDT"}, missing={"XMR": "not listed"}
    )
    clock = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # noqa: E731
    tracker = _tracker(binance.VENUE, settings, clock)
    tracker.serves, tracker.missing = found.by_direction(settings.rates_directions)
    contexts = _websocket(binance.VENUE, settings, object(), clock, found, tracker)  # type: ignore[arg-type]
    assert [len(c.symbols) for c in contexts] == [1024, 1024, 52]
    assert len({id(c.tracker) for c in contexts}) == 1  # one venue, one status
    assert contexts[0].tracker.status().serves == {"S0-USD": "S0-USDT"}
    assert contexts[0].tracker.status().missing == {"XMR-USD": "not listed"}
    ids = {c.next_conn_id().rsplit("-", 2)[0] for c in contexts}
    assert ids == {"binance", "binance.2", "binance.3"}  # frames say which connection


@pytest.mark.parametrize("venue_name", ["binance", "kraken", "okx", "bybit", "coinbase"])
def test_256_directions_derive_list_and_parse_on_every_venue(venue_name: str) -> None:
    """The scaling benchmark's 256 directions: each venue's derived symbols are all in its
    simulated listing, fit its per-connection and per-message limits, and parse back."""
    import random

    from connectors import registry
    from connectors.simulator.market import Market
    from connectors.simulator.server import SIMULATED
    from connectors.venues.base import WebsocketVenue
    from devtools.directions import synthetic_directions

    directions = synthetic_directions(256)
    wanted = assets(directions)
    sim = SIMULATED[venue_name](Market(random.Random(1), levels_for(wanted)))
    venue = registry.VENUES[venue_name]
    assert isinstance(venue, WebsocketVenue)
    listed = dict.fromkeys(sim.listing, True)
    found = plan(venue_name, venue.naming, wanted, listed)
    assert not found.missing and len(found.serves) == len(wanted) == 192
    parts = groups(list(found.symbols), venue.max_symbols_per_connection)
    assert len(parts) == 1  # 192 symbols: one connection on every venue
    assert len(venue.connect_url("wss://x", parts[0])) < 8192
    sub = sim.subscribe_all()
    markets = {
        q.market
        for frame in sim.data_frames_for(sub, 1795536000123)
        for q in venue.parse(frame, datetime(2026, 12, 5, tzinfo=UTC))
    }
    assert set(found.serves.values()) <= markets
