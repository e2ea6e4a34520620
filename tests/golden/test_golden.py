"""Golden frames: recorded venue frames through every parser, against the quotes expected.

Each venue has ``frames/<venue>.jsonl``: verbatim frames from the documented formats
(shared/exchanges.md), each with the frame kind the connection loop must see and either
the market quotes ``parse()`` must return or the error it must raise.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from connectors import registry
from connectors.simulator.base import SimVenue, Subscription
from connectors.simulator.market import Market
from connectors.simulator.server import SIMULATED
from connectors.venues.base import FrameKind, MarketQuote, Venue
from schemas import errors
from schemas.records import format_decimal, format_time, parse_time

FRAMES = Path(__file__).parent / "frames"
RECEIVED_AT = datetime(2026, 11, 24, 16, tzinfo=UTC)


def cases() -> list[Any]:
    found = []
    for venue in registry.VENUES:
        path = FRAMES / f"{venue}.jsonl"
        for number, line in enumerate(path.read_text().splitlines(), 1):
            case = json.loads(line)
            found.append(pytest.param(venue, case, id=f"{venue}:{number}:{case['note']}"))
    return found


def test_every_venue_has_recorded_frames() -> None:
    for venue in registry.VENUES:
        assert (FRAMES / f"{venue}.jsonl").exists(), venue


def as_dict(quote: MarketQuote) -> dict[str, str]:
    """A market quote as the golden files write it: the value with every digit it came with."""
    return {
        "venue": quote.venue,
        "market": quote.market,
        "value": format_decimal(quote.value),
        "ts": format_time(quote.ts),
        "received_at": format_time(quote.received_at),
        "id": quote.id,
    }


@pytest.mark.parametrize(("venue_name", "case"), cases())
def test_recorded_frame(venue_name: str, case: dict[str, Any]) -> None:
    venue = registry.VENUES[venue_name]
    assert venue.classify(case["frame"]).kind is FrameKind(case["kind"])
    received_at = parse_time(case["received_at"])
    if "error" in case:
        with pytest.raises(getattr(errors, case["error"])):
            venue.parse(case["frame"], received_at)
        return
    quotes = [as_dict(q) for q in venue.parse(case["frame"], received_at)]
    assert quotes == case["quotes"]


def _simulated(venue_name: str, seed: int = 5) -> tuple[SimVenue, Venue]:
    market = Market(random.Random(seed))
    for market_name in market.markets:
        market.step(market_name)
    return SIMULATED[venue_name](market), registry.VENUES[venue_name]


@pytest.mark.parametrize("venue_name", list(SIMULATED))
def test_simulator_output_passes_the_same_parsers(venue_name: str) -> None:
    """The simulator cannot drift from the venue: its frames parse to its market's prices."""
    sim, venue = _simulated(venue_name)
    frames = sim.data_frames_for(sim.subscribe_all(), 1795536000123)
    assert frames
    seen = {}
    for frame in frames:
        assert venue.classify(frame).kind is FrameKind.DATA
        for quote in venue.parse(frame, RECEIVED_AT):
            assert quote.venue == venue_name
            assert quote.market not in seen, "one quote per market and tick"
            seen[quote.market] = quote.value
    assert seen == {m: sim.venue_price(m) for m in sim.listing.values()}
    assert set(venue.markets.values()) <= set(seen)


@pytest.mark.parametrize("venue_name", list(SIMULATED))
def test_simulator_faults_are_what_the_parser_rejects(venue_name: str) -> None:
    sim, venue = _simulated(venue_name)
    assert venue.classify(sim.malformed_frame()).kind is FrameKind.MALFORMED
    with pytest.raises(errors.FrameError):
        venue.parse(sim.malformed_frame(), RECEIVED_AT)
    sim.faults.update({"unknown_symbols": True})
    frames = sim.data_frames_for(Subscription(), 1795536000123)
    assert frames
    listed = set(sim.listing.values()) if sim.naming is not None else set(venue.markets.values())
    for frame in frames:
        try:
            quotes = venue.parse(frame, RECEIVED_AT)
        except errors.UnknownSymbol:
            continue  # a coin id or currency no rule reads
        # Parsers read any market by the venue's naming rule; this one nobody configured.
        assert quotes and all(q.market not in listed for q in quotes)


def test_simulated_venues_differ_slightly_and_prices_move() -> None:
    market = Market(random.Random(5))
    sims = {name: sim(market) for name, sim in SIMULATED.items()}
    btc_usd = {name: sims[name].venue_price("BTC-USD") for name in ("kraken", "coinbase")}
    btc_usdt = {name: sims[name].venue_price("BTC-USDT") for name in ("binance", "okx", "bybit")}
    for prices in (btc_usd, btc_usdt):
        assert len(set(prices.values())) == len(prices), prices
        low, high = min(prices.values()), max(prices.values())
        assert (high - low) / low < Decimal("0.001")
    before = {m: market.price(m) for m in market.markets}
    for _ in range(20):
        for name in market.markets:
            market.step(name)
    assert all(market.price(m) != before[m] for m in market.markets)
