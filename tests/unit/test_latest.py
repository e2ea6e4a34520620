"""A worker's books and choices (LatestRates) and their durable copy in the table (DurableBooks)."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from prometheus_client import REGISTRY

from pipeline.broadcast import Broadcast
from pipeline.health import VenueHealth
from pipeline.latest import DurableBooks, LatestRates, changed
from schemas.records import Latest, Quote, VenueQuote, VenueState
from schemas.topics import ACTIVE_KEY
from tests.conftest import Clock, worker_policy

POLICY = worker_policy(
    rates_directions=("BTC-USD", "ETH-USD"),
    rates_priority=("binance", "kraken", "okx"),
    rates_warmup_s=0,  # the warm-up at start: tests/unit/test_warmup.py
)


def quote(venue: str, value: str, at: datetime, direction: str = "BTC-USD") -> Quote:
    return Quote(venue, direction, Decimal(value), at, at, f"{venue}:{direction}:{value}:{at}")


def up(broadcast: Broadcast, clock: Clock, *venues: str, state: VenueState = "up") -> None:
    for venue in venues:
        broadcast.health.statuses[venue] = VenueHealth(state, clock(), clock())


def switches(direction: str, to: str) -> float:
    value = REGISTRY.get_sample_value(
        "rates_pipeline_switches_total", {"direction": direction, "to": to}
    )
    return value or 0.0


@pytest.fixture
def broadcast(clock: Clock) -> Broadcast:
    state = Broadcast()
    up(state, clock, "binance", "kraken", "okx")
    return state


@pytest.fixture
def rates(broadcast: Broadcast) -> LatestRates:
    return LatestRates(POLICY, broadcast)


def test_a_record_only_when_the_rate_changes(rates: LatestRates, clock: Clock) -> None:
    first = rates.add(quote("binance", "100", clock()), clock())
    assert first is not None and (first.venue, first.value) == ("binance", Decimal("100"))
    clock.advance(0.1)
    # Another venue's quote alone reaches rates.latest with the timer's republish.
    assert rates.add(quote("kraken", "101", clock()), clock()) is None
    assert set(rates.books["BTC-USD"]) == {"binance", "kraken"}
    clock.advance(0.1)
    moved = rates.add(quote("binance", "100.5", clock()), clock())
    assert moved is not None and moved.value == Decimal("100.5")
    assert set(moved.quotes) == {"binance", "kraken"}


def test_an_older_quote_never_replaces_a_newer_one(rates: LatestRates, clock: Clock) -> None:
    newer = quote("binance", "100", clock())
    rates.add(newer, clock())
    late = quote("binance", "99", clock() - timedelta(seconds=1))  # redelivered
    assert rates.add(late, clock()) is None
    assert rates.books["BTC-USD"]["binance"] == newer


def test_quotes_record_each_venues_newest_data(
    rates: LatestRates, broadcast: Broadcast, clock: Clock
) -> None:
    rates.add(quote("okx", "100", clock()), clock())
    rates.add(quote("okx", "100", clock() - timedelta(seconds=5), "ETH-USD"), clock())
    assert broadcast.health.last_data == {"okx": clock()}


def test_a_takeover_continues_the_previous_owners_choice(
    rates: LatestRates, broadcast: Broadcast, clock: Clock
) -> None:
    since = clock() - timedelta(minutes=5)
    broadcast.latest["BTC-USD"] = Latest(
        "BTC-USD", "kraken", Decimal("101"), since, since, False, "binance down", since
    )
    broadcast.health.statuses["binance"] = VenueHealth("down", clock(), clock())
    rates.load("BTC-USD", {"kraken": quote("kraken", "101.5", clock())})
    latest = rates.decide("BTC-USD", clock())
    assert (latest.venue, latest.reason, latest.since) == ("kraken", "binance down", since)


def test_a_switch_is_logged_and_counted_once(
    rates: LatestRates, broadcast: Broadcast, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    rates.add(quote("binance", "100", clock()), clock())
    rates.add(quote("kraken", "101", clock()), clock())
    before = switches("BTC-USD", "kraken")
    clock.advance(1)
    up(broadcast, clock, "binance", state="down")
    with caplog.at_level(logging.INFO, "pipeline.latest"):
        latest = rates.decide("BTC-USD", clock())
        rates.decide("BTC-USD", clock())
    assert (latest.venue, latest.reason) == ("kraken", "binance down")
    assert switches("BTC-USD", "kraken") == before + 1
    assert [r.getMessage() for r in caplog.records] == [
        "switch BTC-USD: binance -> kraken (binance down)"
    ]


def test_an_outlier_is_logged_when_it_starts_being_excluded(
    rates: LatestRates, broadcast: Broadcast, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    up(broadcast, clock, "bybit")
    with caplog.at_level(logging.WARNING, "pipeline.latest"):
        for venue, value in (("kraken", "100"), ("okx", "100.1"), ("bybit", "100.2")):
            rates.add(quote(venue, value, clock()), clock())
        rates.add(quote("binance", "150", clock()), clock())
        rates.decide("BTC-USD", clock())
    assert rates.chosen["BTC-USD"].venue == "kraken"
    assert [r.getMessage() for r in caplog.records] == [
        "BTC-USD: excluding binance, 49.85% from the median of the other fresh venues"
    ]


def test_forget_drops_a_direction_given_away(rates: LatestRates, clock: Clock) -> None:
    rates.add(quote("binance", "100", clock()), clock())
    rates.forget("BTC-USD")
    assert "BTC-USD" not in rates.books and "BTC-USD" not in rates.chosen
    rates.forget("BTC-USD")  # twice is fine: the timer forgets every direction not owned


def view(broadcast: Broadcast, clock: Clock, venue: str, *directions: str) -> None:
    """Directions as rates.latest shows them: chosen from ``venue``, its quote fresh."""
    for direction in directions:
        q = quote(venue, "100", clock(), direction)
        fresh = {venue: VenueQuote(q.value, q.ts, q.received_at, True)}
        broadcast.latest[direction] = Latest(
            direction, venue, q.value, q.ts, q.received_at, False, "test", clock(), fresh
        )


def test_the_active_venue_is_chosen_from_the_topics_view(
    rates: LatestRates, broadcast: Broadcast, clock: Clock
) -> None:
    view(broadcast, clock, "kraken", "BTC-USD", "ETH-USD")
    active = rates.active(clock())
    assert active is not None and (active.direction, active.venue) == (ACTIVE_KEY, "kraken")
    assert rates.chosen[ACTIVE_KEY] == active


def test_the_active_venue_is_replaced_at_once_only_when_unhealthy(
    rates: LatestRates, broadcast: Broadcast, clock: Clock
) -> None:
    view(broadcast, clock, "kraken", "BTC-USD", "ETH-USD")
    assert rates.active_if_unhealthy(clock()) is not None  # none yet: choose now
    assert rates.active_if_unhealthy(clock()) is None  # kraken healthy: the timer's job
    # A better venue's coverage alone waits for the timer too.
    view(broadcast, clock, "binance", "BTC-USD", "ETH-USD")
    assert rates.active_if_unhealthy(clock()) is None
    clock.advance(1)
    up(broadcast, clock, "kraken", state="down")
    replaced = rates.active_if_unhealthy(clock())
    assert replaced is not None and replaced.venue == "binance"


def test_changed_compares_the_rate_not_the_other_quotes(clock: Clock) -> None:
    base = Latest("BTC-USD", "binance", Decimal("1"), clock(), clock(), False, "r", clock())
    kraken = VenueQuote(Decimal("2"), clock(), clock(), True)
    assert changed(None, base)
    assert not changed(base, replace(base, quotes={"kraken": kraken}))
    assert changed(base, replace(base, stale=True))
    assert changed(base, replace(base, value=Decimal("2")))
    assert changed(base, replace(base, reason="other"))


# -- DurableBooks: recovery from the table, conflated writes ---------------------------------


class Ticks:
    """A monotonic clock tests advance by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_direction_taken_over_is_recovered_from_the_table(
    rates: LatestRates, clock: Clock
) -> None:
    stored = quote("kraken", "101", clock() - timedelta(seconds=2))
    table: dict[str, dict[str, Any]] = {"BTC-USD": {"kraken": stored.to_dict()}}
    books = DurableBooks(rates, table, write_interval_s=1.0)
    assert books.recover("BTC-USD")
    assert rates.books["BTC-USD"] == {"kraken": stored}
    assert not books.recover("ETH-USD")  # neither in memory nor in the table
    assert "ETH-USD" not in rates.books


def test_a_quote_joins_the_recovered_book(rates: LatestRates, clock: Clock) -> None:
    stored = quote("kraken", "101", clock())
    table: dict[str, dict[str, Any]] = {"BTC-USD": {"kraken": stored.to_dict()}}
    books = DurableBooks(rates, table, write_interval_s=1.0)
    latest = books.add(quote("binance", "100", clock()), clock())
    assert latest is not None and set(latest.quotes) == {"binance", "kraken"}
    assert set(table["BTC-USD"]) == {"binance", "kraken"}


def test_the_table_is_written_at_most_once_per_interval(rates: LatestRates, clock: Clock) -> None:
    table: dict[str, dict[str, Any]] = {}
    ticks = Ticks()
    books = DurableBooks(rates, table, write_interval_s=1.0, monotonic=ticks)
    books.add(quote("binance", "100", clock()), clock())
    assert Quote.from_json(table["BTC-USD"]["binance"]).value == Decimal("100")
    ticks.now += 0.5
    books.add(quote("binance", "101", clock() + timedelta(seconds=0.5)), clock())
    assert Quote.from_json(table["BTC-USD"]["binance"]).value == Decimal("100")
    assert rates.books["BTC-USD"]["binance"].value == Decimal("101")  # decisions see it
    ticks.now += 0.5
    books.add(quote("binance", "102", clock() + timedelta(seconds=1)), clock())
    assert Quote.from_json(table["BTC-USD"]["binance"]).value == Decimal("102")
