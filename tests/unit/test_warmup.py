"""The warm-up at start: one choice per direction, the active venue only once they settled."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from pipeline.broadcast import Broadcast
from pipeline.failover import choose
from pipeline.health import Health, VenueHealth
from pipeline.latest import LatestRates
from pipeline.warmup import active_waiting, provisional, settled, waiting_for
from schemas.records import Quote, VenueState
from tests.conftest import Clock, worker_policy

POLICY = worker_policy(
    rates_directions=("BTC-USD", "ETH-USD"),
    rates_priority=("binance", "kraken", "okx"),
    rates_venues=("binance", "kraken", "okx", "cbr"),
    rates_warmup_s=5,
    rates_hysteresis_s=10,
)


def quote(venue: str, at: datetime, direction: str = "BTC-USD", value: str = "100") -> Quote:
    return Quote(venue, direction, Decimal(value), at, at, f"{venue}:{direction}:{at}")


def status(health: Health, clock: Clock, venue: str, state: VenueState = "up") -> None:
    health.statuses[venue] = VenueHealth(state, clock(), clock())


def test_a_direction_waits_for_every_enabled_exchanger_then_chooses_once(clock: Clock) -> None:
    health = Health()
    for venue in ("binance", "kraken", "okx"):
        status(health, clock, venue)
    started = clock()
    quotes = {"okx": quote("okx", clock())}
    first = choose("BTC-USD", quotes, None, health, POLICY, clock(), started=started).latest
    assert provisional(first) and not settled(first) and first.venue == "okx"
    assert first.reason == "warming up: waiting for binance, kraken (at most 5 s)"
    clock.advance(0.2)
    quotes["kraken"] = quote("kraken", clock())
    second = choose("BTC-USD", quotes, first, health, POLICY, clock(), started=started).latest
    assert second.venue == "kraken" and second.since is None  # the better one, still waiting
    clock.advance(0.2)
    quotes["binance"] = quote("binance", clock())
    chosen = choose("BTC-USD", quotes, second, health, POLICY, clock(), started=started).latest
    assert settled(chosen) and (chosen.venue, chosen.since) == ("binance", clock())
    assert chosen.reason == "most preferred fresh venue"
    assert waiting_for(quotes, chosen, health, POLICY, clock(), started) == []


def test_a_venue_down_is_not_waited_for_and_the_warm_up_is_bounded(clock: Clock) -> None:
    health = Health()
    status(health, clock, "kraken")
    status(health, clock, "okx", "down")
    status(health, clock, "binance", "connecting")
    started = clock()
    quotes = {"kraken": quote("kraken", clock())}
    assert waiting_for(quotes, None, health, POLICY, clock(), started) == ["binance"]
    clock.advance(4.999)
    assert waiting_for(quotes, None, health, POLICY, clock(), started) == ["binance"]
    clock.advance(0.001)
    assert waiting_for(quotes, None, health, POLICY, clock(), started) == []
    assert waiting_for(quotes, None, health, POLICY, clock(), None) == []  # no warm-up


def test_start_logs_and_counts_no_switch_and_the_active_venue_waits(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    broadcast = Broadcast()
    for venue in ("binance", "kraken", "okx"):
        status(broadcast.health, clock, venue)
    rates = LatestRates(POLICY, broadcast)
    with caplog.at_level(logging.INFO, "pipeline.latest"):
        for venue in ("okx", "kraken"):
            for direction in POLICY.directions:
                latest = rates.add(quote(venue, clock(), direction), clock())
                assert latest is not None
                broadcast.latest[direction] = latest
            clock.advance(0.1)
        assert active_waiting(broadcast.latest, None) == ["BTC-USD", "ETH-USD"]
        assert rates.active(clock()) is None  # no active venue while warming up
        for direction in POLICY.directions:
            latest = rates.add(quote("binance", clock(), direction), clock())
            assert latest is not None and settled(latest) and latest.venue == "binance"
            broadcast.latest[direction] = latest
        active = rates.active(clock())
    assert active is not None and active.venue == "binance"
    assert caplog.records == []  # first choices are not switches


def test_a_direction_with_only_stale_quotes_does_not_hold_the_active_venue(clock: Clock) -> None:
    health = Health()
    status(health, clock, "binance")
    old = quote("binance", clock() - timedelta(minutes=5))  # older than RATES_MAX_AGE_S
    record = choose("ETH-USD", {"binance": old}, None, health, POLICY, clock()).latest
    assert record.stale and record.since is None and not provisional(record)
    assert active_waiting({"ETH-USD": record}, None) == []


def test_the_first_active_venue_waits_a_little_for_directions_without_a_rate(
    clock: Clock,
) -> None:
    health = Health()
    status(health, clock, "binance")
    started = clock()
    btc = choose("BTC-USD", {"binance": quote("binance", clock())}, None, health, POLICY, clock())
    view = {"BTC-USD": btc.latest}  # ETH-USD: nothing yet (a RUB rate waits for its reference)
    assert active_waiting(view, None, POLICY, clock(), started) == ["ETH-USD"]
    clock.advance(4.999)
    assert active_waiting(view, None, POLICY, clock(), started) == ["ETH-USD"]
    clock.advance(0.001)
    assert active_waiting(view, None, POLICY, clock(), started) == []
