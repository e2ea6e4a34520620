"""Any pair by configuration, on real processes: simulator -> connector -> worker -> API.

The directions are settings only: each venue derives its subscriptions by its naming rule,
checks its listing, and every direction comes out of v1 and v2 from every venue listing it.
"""

from __future__ import annotations

from decimal import Decimal

from devtools.directions import (
    SIMULATED_EXCHANGERS,
    get_json,
    start_stack,
    synthetic_directions,
    wait_served,
)
from devtools.processes import Procs

SIX = ("BTC-USD", "SOL-USD", "SOL-RUB", "XRP-USD", "DOGE-USD", "ETH-RUB")


def check_v1(api: str, directions: tuple[str, ...], venues: tuple[str, ...]) -> None:
    """v1 answers every direction from each venue, at a positive value."""
    for venue in venues:
        body = get_json(f"{api}/api/v1/courses", exchanger=venue)
        assert body["exchanger"] == venue
        got = {c["direction"]: c["value"] for c in body["courses"]}
        assert set(got) == set(directions), venue
        assert all(isinstance(v, Decimal) and v > 0 for v in got.values()), venue


def test_six_directions_from_every_venue(kafka: str, procs: Procs) -> None:
    stack = start_stack(procs, kafka, SIX)
    wait_served(stack.api, {d: set(SIMULATED_EXCHANGERS) for d in SIX}, 60)
    check_v1(stack.api, SIX, SIMULATED_EXCHANGERS)
    body = get_json(f"{stack.api}/api/v1/courses")
    assert [c["direction"] for c in body["courses"]] == list(SIX)

    report = get_json(f"{stack.api}/api/v2/directions")
    assert report["unserved"] == []
    by_name = {d["direction"]: d for d in report["directions"]}
    assert list(by_name) == list(SIX)
    for direction in SIX:
        venues = {v["venue"]: v for v in by_name[direction]["venues"]}
        assert set(venues) == set(SIMULATED_EXCHANGERS), direction
        assert by_name[direction]["missing"] == [], direction
    sol = {v["venue"]: (v["market"], v["how"]) for v in by_name["SOL-USD"]["venues"]}
    assert sol["binance"] == ("SOL-USDT", "usdt_as_usd")
    assert sol["okx"] == ("SOL-USDT", "usdt_as_usd")
    assert sol["kraken"] == ("SOL-USD", "direct")
    assert sol["coinbase"] == ("SOL-USD", "direct")
    assert sol["coingecko"] == ("SOL-USD", "direct")
    assert {v["how"] for v in by_name["ETH-RUB"]["venues"]} == {"derived"}

    log = stack.connector.output()
    assert "binance: subscribing BTCUSDT, SOLUSDT, XRPUSDT, DOGEUSDT, ETHUSDT, USDCUSDT" in log
    assert "kraken: subscribing BTC/USD, SOL/USD, XRP/USD, DOGE/USD, ETH/USD, USDT/USD" in log
    assert "no enabled venue lists" not in log


def test_64_directions_across_all_venues(kafka: str, procs: Procs) -> None:
    """64 synthetic directions (48 assets) on every venue, and one that no venue lists."""
    directions = synthetic_directions(64)
    assert len(directions) == 64
    stack = start_stack(procs, kafka, (*directions, "XMR-USD"), unlisted=["XMR"])
    wait_served(stack.api, {d: set(SIMULATED_EXCHANGERS) for d in directions}, 90)
    check_v1(stack.api, directions, SIMULATED_EXCHANGERS)

    # One WARNING at start names the direction no venue lists; the API says why per venue.
    log = stack.connector.output()
    warnings = [line for line in log.splitlines() if "no enabled venue lists" in line]
    assert len(warnings) == 1 and "XMR-USD" in warnings[0] and "WARNING" in warnings[0]
    report = get_json(f"{stack.api}/api/v2/directions")
    assert report["unserved"] == ["XMR-USD"]
    xmr = next(d for d in report["directions"] if d["direction"] == "XMR-USD")
    reasons = {m["venue"]: m["reason"] for m in xmr["missing"]}
    assert reasons["binance"] == "XMRUSDT is not listed"
    assert reasons["kraken"] == "XMR/USD is not listed; XMR/USDT is not listed"
    assert "no CoinGecko coin has the symbol 'xmr'" in reasons["coingecko"]
    # CoinGecko found the synthetic coins in its list, by the rule for shared symbols.
    assert "coingecko: SYN0000 is coin id 'syn0000' (the coin whose id is its symbol" in log
