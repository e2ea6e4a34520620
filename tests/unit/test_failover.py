"""The pure failover function, with a hand-advanced clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pipeline.failover import Policy, choose, choose_active
from schemas.records import Latest, Quote, VenueQuote
from tests.conftest import Clock

POLICY = Policy(directions=("BTC-USD", "ETH-USD"), priority=("binance", "kraken"), max_age_s=60)


def q(venue: str, value: str, at: datetime, direction: str = "BTC-USD") -> Quote:
    return Quote(venue, direction, Decimal(value), at, at, f"{venue}:{value}")


def test_the_preferred_fresh_venue_wins(clock: Clock) -> None:
    quotes = {"kraken": q("kraken", "2", clock()), "binance": q("binance", "1", clock())}
    latest = choose("BTC-USD", quotes, None, POLICY, clock())
    assert (latest.venue, latest.value, latest.stale) == ("binance", Decimal("1"), False)
    assert latest.reason == "preferred venue"
    assert latest.since == clock()
    assert set(latest.quotes) == {"binance", "kraken"}
    assert all(v.fresh for v in latest.quotes.values())


def test_a_stale_primary_fails_over_and_keeps_since_while_unchanged(clock: Clock) -> None:
    old = clock()
    quotes = {"binance": q("binance", "1", old), "kraken": q("kraken", "2", old)}
    first = choose("BTC-USD", quotes, None, POLICY, clock())
    clock.advance(61)
    quotes["kraken"] = q("kraken", "3", clock())
    switched = choose("BTC-USD", quotes, first, POLICY, clock())
    assert (switched.venue, switched.value) == ("kraken", Decimal("3"))
    assert switched.reason == "binance stale"
    assert not switched.quotes["binance"].fresh
    assert switched.since == clock()
    clock.advance(1)
    again = choose("BTC-USD", quotes, switched, POLICY, clock())
    assert again.since == switched.since


def test_all_stale_keeps_the_last_value_marked_stale(clock: Clock) -> None:
    quotes = {"binance": q("binance", "1", clock())}
    first = choose("BTC-USD", quotes, None, POLICY, clock())
    clock.advance(120)
    kept = choose("BTC-USD", {}, first, POLICY, clock())
    assert (kept.venue, kept.value, kept.stale) == ("binance", Decimal("1"), True)
    nothing = choose("BTC-USD", {}, None, POLICY, clock())
    assert (nothing.venue, nothing.value, nothing.stale) == (None, None, True)


def test_a_negative_age_counts_as_fresh(clock: Clock) -> None:
    future = clock() + timedelta(seconds=5)
    latest = choose("BTC-USD", {"binance": q("binance", "1", future)}, None, POLICY, clock())
    assert not latest.stale


def _latest(direction: str, fresh: dict[str, bool], at: datetime) -> Latest:
    return Latest(
        direction,
        None,
        None,
        None,
        None,
        False,
        "",
        None,
        {v: VenueQuote(Decimal(1), at, at, f) for v, f in fresh.items()},
    )


def test_active_venue_serves_the_most_directions_then_priority(clock: Clock) -> None:
    now = clock()
    latest = {
        "BTC-USD": _latest("BTC-USD", {"binance": True, "kraken": True}, now),
        "ETH-USD": _latest("ETH-USD", {"binance": False, "kraken": True}, now),
    }
    active = choose_active(latest, None, POLICY, now)
    assert (active.direction, active.venue) == ("*", "kraken")
    assert active.reason == "fresh in 2 of 2 directions"
    latest["ETH-USD"] = _latest("ETH-USD", {"binance": True, "kraken": True}, now)
    assert choose_active(latest, active, POLICY, now).venue == "binance"
    none = choose_active({}, active, POLICY, now)
    assert (none.venue, none.stale) == ("kraken", True)
