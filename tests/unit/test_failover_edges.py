"""The failover's edges: every limit on its boundary, the reasons, ``since`` and stale flags.

Written to kill the mutants `make mutation` found alive (docs/mutation.md): each test names
the rule it pins; a mutant that moves a boundary or drops a branch fails one of them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.failover import choose, choose_active, outliers
from pipeline.health import Health, VenueHealth
from schemas.records import Latest, Quote, VenueQuote, VenueState
from tests.conftest import Clock, worker_policy

POLICY = worker_policy(
    rates_directions=("BTC-USD", "ETH-USD"),
    rates_priority=("binance", "kraken", "okx"),
    rates_max_age_s=60,
    rates_hysteresis_s=10,
    rates_max_deviation=0.02,
)
LONG_AGO = timedelta(hours=1)


def status(health: Health, venue: str, state: VenueState, since: datetime, now: datetime) -> None:
    health.statuses[venue] = VenueHealth(state, since, now)


def quote(venue: str, value: str, at: datetime) -> Quote:
    return Quote(venue, "BTC-USD", Decimal(value), at, at, f"{venue}:{value}")


def previous(venue: str, since: datetime | None, stale: bool = False) -> Latest:
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    return Latest("BTC-USD", venue, Decimal("100"), at, at, stale, "earlier reason", since)


def decide(
    quotes: dict[str, Quote], before: Latest | None, health: Health, now: datetime
) -> Latest:
    return choose("BTC-USD", quotes, before, health, POLICY, now).latest


class Feed:
    """A sequence of choices of BTC-USD: each record is the previous one of the next choice."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.health = Health()
        self.quotes: dict[str, Quote] = {}
        self.latest: Latest | None = None

    def state(self, venue: str, state: VenueState) -> None:
        status(self.health, venue, state, self.clock(), self.clock())

    def tick(self, *venues: str) -> None:
        for venue in venues:
            self.quotes[venue] = quote(venue, "100", self.clock())

    def choose(self) -> Latest:
        for venue, last in self.health.statuses.items():  # connectors report every few s
            self.health.statuses[venue] = VenueHealth(last.state, last.since, self.clock())
        self.latest = decide(self.quotes, self.latest, self.health, self.clock())
        return self.latest


# outliers: the deviation limit on its boundary


def test_a_deviation_exactly_at_the_limit_is_kept_and_just_past_it_excluded() -> None:
    at_limit = {"a": Decimal("102"), "b": Decimal("100"), "c": Decimal("100")}
    assert float(abs(Decimal(102) - 100) / 100) == POLICY.max_deviation  # exactly 2 %
    assert outliers(at_limit, POLICY.max_deviation) == {}
    past = {**at_limit, "a": Decimal("102.01")}
    assert outliers(past, POLICY.max_deviation) == {"a": 0.0201}


# the max age and the status timeout on their boundary


def test_a_quote_exactly_max_age_old_is_fresh_and_a_microsecond_older_stale(clock: Clock) -> None:
    health = Health()
    received = clock()
    now = clock.advance(POLICY.max_age_s)
    status(health, "binance", "up", received - LONG_AGO, now)
    latest = decide({"binance": quote("binance", "100", received)}, None, health, now)
    assert (latest.venue, latest.stale) == ("binance", False)
    later = now + timedelta(microseconds=1)
    status(health, "binance", "up", received - LONG_AGO, later)
    assert decide({"binance": quote("binance", "100", received)}, latest, health, later).stale


def test_a_status_exactly_status_timeout_old_still_counts(clock: Clock) -> None:
    health = Health()
    seen = clock()
    status(health, "binance", "up", seen - LONG_AGO, seen)
    status(health, "kraken", "up", seen - LONG_AGO, seen)
    now = clock.advance(POLICY.status_timeout_s)
    quotes = {"binance": quote("binance", "100", now), "kraken": quote("kraken", "100", now)}
    status(health, "kraken", "up", seen - LONG_AGO, now)
    assert decide(quotes, None, health, now).venue == "binance"
    later = now + timedelta(microseconds=1)
    status(health, "kraken", "up", seen - LONG_AGO, later)
    latest = decide(quotes, None, health, later)
    assert (latest.venue, latest.reason) == ("kraken", "binance status lost")


# hysteresis on its boundary


def test_a_recovered_venue_is_preferred_exactly_at_the_hysteresis(clock: Clock) -> None:
    feed = Feed(clock)
    feed.state("kraken", "up")
    feed.state("binance", "down")
    feed.tick("kraken")
    assert feed.choose().venue == "kraken"
    clock.advance(5)
    feed.state("binance", "up")  # back, and its data with it
    feed.tick("binance", "kraken")
    assert feed.choose().venue == "kraken"
    clock.advance(POLICY.hysteresis_s - 1e-6)
    feed.tick("binance", "kraken")
    assert feed.choose().venue == "kraken"
    clock.advance(1e-6)
    feed.tick("binance", "kraken")
    latest = feed.choose()
    assert (latest.venue, latest.since) == ("binance", clock())
    assert latest.reason == "binance preferred again after 10 s healthy"


# failover away from a venue that is not the top one


def test_failover_from_the_second_venue_skips_a_top_venue_still_in_hysteresis(
    clock: Clock,
) -> None:
    feed = Feed(clock)
    feed.state("kraken", "up")
    feed.state("okx", "up")
    feed.state("binance", "down")
    feed.tick("kraken", "okx")
    assert feed.choose().venue == "kraken"
    clock.advance(20)
    feed.tick("kraken", "okx")
    feed.choose()
    clock.advance(6)
    feed.state("binance", "up")
    feed.tick("binance", "kraken", "okx")
    assert feed.choose().venue == "kraken"
    clock.advance(2)  # binance back for 2 s, okx healthy and fresh for 28 s
    feed.state("kraken", "down")  # the served venue, not the top one, fails
    feed.tick("binance", "okx")
    latest = feed.choose()
    assert (latest.venue, latest.reason, latest.since, latest.stale) == (
        "okx",
        "kraken down",
        clock(),
        False,
    )
    assert {v: q.fresh for v, q in latest.quotes.items()} == {
        "binance": True,
        "kraken": False,
        "okx": True,
    }


def test_failover_takes_the_top_venue_when_none_is_settled(clock: Clock) -> None:
    health = Health()
    chosen = clock()
    now = clock.advance(8)
    for venue in ("binance", "okx"):
        status(health, venue, "up", now - timedelta(seconds=2), now)
    status(health, "kraken", "down", now, now)
    quotes = {v: quote(v, "100", now) for v in ("binance", "kraken", "okx")}
    latest = decide(quotes, previous("kraken", chosen), health, now)
    assert (latest.venue, latest.reason) == ("binance", "kraken down")


def test_a_venue_back_from_stale_names_the_first_better_venues_problem(
    clock: Clock,
) -> None:
    """okx was served stale; it is fresh again, binance and kraken are down: binance first."""
    health = Health()
    now = clock()
    status(health, "okx", "up", now - LONG_AGO, now)
    status(health, "binance", "down", now, now)
    status(health, "kraken", "silent", now, now)
    quotes = {v: quote(v, "100", now) for v in ("binance", "kraken", "okx")}
    before = previous("okx", now - timedelta(minutes=1), stale=True)
    latest = decide(quotes, before, health, now)
    assert (latest.venue, latest.reason, latest.since, latest.stale) == (
        "okx",
        "binance down",
        now,
        False,
    )
    cold = decide(quotes, None, health, now)
    assert (cold.venue, cold.reason) == ("okx", "binance down")


def test_a_venue_kept_over_better_ones_in_hysteresis_says_so(clock: Clock) -> None:
    """okx was served stale; binance and kraken recovered after it was chosen."""
    health = Health()
    chosen = clock()
    now = clock.advance(8)
    status(health, "okx", "up", chosen - LONG_AGO, now)
    status(health, "binance", "up", now - timedelta(seconds=3), now)
    status(health, "kraken", "up", now - timedelta(seconds=2), now)
    quotes = {v: quote(v, "100", now) for v in ("binance", "kraken", "okx")}
    latest = decide(quotes, previous("okx", chosen, stale=True), health, now)
    assert (latest.venue, latest.since, latest.stale) == ("okx", now, False)
    assert latest.reason == "binance healthy for less than 10 s"


def test_a_settled_venue_returning_from_stale_is_not_preferred_over_itself(clock: Clock) -> None:
    """kraken served stale comes back fresh while binance is down: kraken, for binance."""
    health = Health()
    now = clock()
    status(health, "kraken", "up", now - LONG_AGO, now)
    status(health, "binance", "down", now, now)
    quotes = {v: quote(v, "100", now) for v in ("binance", "kraken")}
    latest = decide(quotes, previous("kraken", now - LONG_AGO, stale=True), health, now)
    assert (latest.venue, latest.reason, latest.since) == ("kraken", "binance down", now)


def test_venues_outside_the_priority_tie_and_the_name_decides_without_switching(
    clock: Clock,
) -> None:
    health = Health()
    now = clock()
    for venue in ("bybit", "gate"):
        status(health, venue, "up", now - LONG_AGO, now)
    quotes = {v: quote(v, "100", now) for v in ("bybit", "gate")}
    assert decide(quotes, None, health, now).venue == "bybit"
    kept = decide(quotes, previous("gate", now - timedelta(minutes=1)), health, now)
    assert (kept.venue, kept.reason) == ("gate", "earlier reason")


# a cold start with only stale quotes


def test_a_cold_start_with_only_stale_quotes_serves_them_marked_stale(clock: Clock) -> None:
    health = Health()
    received = clock()
    now = clock.advance(POLICY.max_age_s + 1)
    for venue in ("binance", "kraken"):
        status(health, venue, "up", received - LONG_AGO, now)
    quotes = {
        "kraken": quote("kraken", "101", received),
        "binance": quote("binance", "100", received),
    }
    latest = decide(quotes, None, health, now)
    assert (latest.venue, latest.value, latest.stale) == ("binance", Decimal("100"), True)
    assert (latest.reason, latest.ts) == ("no fresh quote: last value kept", received)
    assert not any(q.fresh for q in latest.quotes.values())


# choose_active: reason, since and the stale flag


def record(direction: str, fresh: dict[str, bool], at: datetime) -> Latest:
    view = {v: VenueQuote(Decimal(1), at, at, f) for v, f in fresh.items()}
    return Latest(direction, None, None, None, None, False, "", None, view)


def active(venue: str | None, since: datetime | None, stale: bool = False) -> Latest:
    return Latest("*", venue, None, None, None, stale, "earlier reason", since)


def test_the_active_venue_kept_keeps_its_reason_and_since(clock: Clock) -> None:
    health = Health()
    since = clock() - timedelta(minutes=5)
    now = clock()
    for venue in ("binance", "kraken"):
        status(health, venue, "up", now - LONG_AGO, now)
    books = {d: record(d, {"binance": True, "kraken": True}, now) for d in POLICY.directions}
    kept = choose_active(books, active("binance", since), health, POLICY, now)
    assert (kept.venue, kept.reason, kept.since, kept.stale) == (
        "binance",
        "earlier reason",
        since,
        False,
    )
    assert (kept.value, kept.ts, kept.received_at) == (None, None, None)
    revived = choose_active(books, active("binance", since, stale=True), health, POLICY, now)
    assert (revived.venue, revived.since, revived.stale) == ("binance", now, False)
    assert revived.reason == "fresh in 2 of 2 directions"


def test_the_active_venue_switches_with_the_reason_of_the_venue_left(clock: Clock) -> None:
    health = Health()
    since = clock() - timedelta(minutes=5)
    now = clock()
    status(health, "binance", "down", now, now)
    status(health, "kraken", "up", now - LONG_AGO, now)
    books = {d: record(d, {"binance": False, "kraken": True}, now) for d in POLICY.directions}
    moved = choose_active(books, active("binance", since), health, POLICY, now)
    assert (moved.venue, moved.reason, moved.since, moved.stale) == (
        "kraken",
        "binance down",
        now,
        False,
    )
    # binance healthy but fresh in no direction: counted as 0 of 2
    status(health, "binance", "up", now - LONG_AGO, now)
    moved = choose_active(books, active("binance", since), health, POLICY, now)
    assert (moved.venue, moved.reason, moved.since) == ("kraken", "binance fresh in 0 of 2", now)
    # binance fresh in one direction only
    books["BTC-USD"] = record("BTC-USD", {"binance": True, "kraken": True}, now)
    moved = choose_active(books, active("binance", since), health, POLICY, now)
    assert (moved.venue, moved.reason) == ("kraken", "binance fresh in 1 of 2")


def test_the_active_venue_back_after_hysteresis_says_why_and_when(clock: Clock) -> None:
    health = Health()
    chosen = clock()
    now = clock.advance(30)
    status(health, "binance", "up", now - timedelta(seconds=POLICY.hysteresis_s), now)
    status(health, "kraken", "up", chosen - LONG_AGO, now)
    books = {d: record(d, {"binance": True, "kraken": True}, now) for d in POLICY.directions}
    back = choose_active(books, active("kraken", chosen), health, POLICY, now)
    assert (back.venue, back.since, back.stale) == ("binance", now, False)
    assert back.reason == "binance preferred again after 10 s healthy"


def test_without_fresh_quotes_the_active_venue_is_kept_stale_with_its_since(
    clock: Clock,
) -> None:
    health = Health()
    since = clock() - timedelta(minutes=5)
    now = clock()
    books = {d: record(d, {"binance": False}, now) for d in POLICY.directions}
    kept = choose_active(books, active("binance", since), health, POLICY, now)
    assert (kept.venue, kept.since, kept.stale, kept.reason) == (
        "binance",
        since,
        True,
        "no venue has fresh quotes",
    )
    cold = choose_active(books, None, health, POLICY, now)
    assert (cold.venue, cold.since, cold.stale) == (None, None, True)


def test_the_active_venue_counts_each_fresh_direction_once(clock: Clock) -> None:
    health = Health()
    now = clock()
    for venue in ("binance", "kraken", "okx"):
        status(health, venue, "up", now - LONG_AGO, now)
    books = {
        "BTC-USD": record("BTC-USD", {"binance": True, "kraken": True, "okx": True}, now),
        "ETH-USD": record("ETH-USD", {"binance": False, "kraken": True, "okx": True}, now),
        "XRP-USD": record("XRP-USD", {"binance": True}, now),  # not a configured direction
    }
    first = choose_active(books, None, health, POLICY, now)
    assert (first.venue, first.reason, first.since) == ("kraken", "fresh in 2 of 2 directions", now)
