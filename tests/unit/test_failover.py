"""The pure failover function, with a hand-advanced clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from pipeline.failover import choose, choose_active, outliers
from pipeline.health import Health, VenueHealth
from schemas.records import Latest, Leg, Quote, VenueQuote, VenueState
from tests.conftest import Clock, worker_policy

POLICY = worker_policy(
    rates_directions=("BTC-USD", "ETH-USD"),
    rates_priority=("binance", "kraken", "okx"),
    rates_max_age_s=60,
    rates_hysteresis_s=10,
    rates_max_deviation=0.02,
)


class World:
    """Venue states and books for one direction, moved by a hand-advanced clock."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.health = Health()
        self.quotes: dict[str, Quote] = {}
        self.latest: Latest | None = None
        self.references: dict[str, Quote] = {}

    def state(self, venue: str, state: VenueState) -> None:
        self.health.statuses[venue] = VenueHealth(state, self.clock(), self.clock())

    def keep_reporting(self) -> None:
        """Connectors republish their (unchanged) states every few seconds."""
        for venue, status in self.health.statuses.items():
            self.health.statuses[venue] = VenueHealth(status.state, status.since, self.clock())

    def tick(self, venue: str, value: str, direction: str = "BTC-USD") -> None:
        now = self.clock()
        self.quotes[venue] = Quote(venue, direction, Decimal(value), now, now, f"{venue}:{value}")

    def choose(self) -> Latest:
        decision = choose(
            "BTC-USD", self.quotes, self.latest, self.health, POLICY, self.clock(), self.references
        )
        self.latest = decision.latest
        return decision.latest


def test_the_preferred_fresh_venue_wins(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.state("kraken", "up")
    world.tick("kraken", "2")
    world.tick("binance", "1")
    latest = world.choose()
    assert (latest.venue, latest.value, latest.stale) == ("binance", Decimal("1"), False)
    assert latest.reason == "most preferred fresh venue"
    assert latest.since == clock()
    assert {v: q.fresh for v, q in latest.quotes.items()} == {"binance": True, "kraken": True}


def test_primary_goes_silent_then_the_next_venue_serves(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.state("kraken", "up")
    world.tick("binance", "100")
    world.tick("kraken", "101")
    assert world.choose().venue == "binance"
    clock.advance(3.5)
    world.state("binance", "silent")  # the connector saw no data for its silence limit
    world.tick("kraken", "101.5")
    latest = world.choose()
    assert (latest.venue, latest.value) == ("kraken", Decimal("101.5"))
    assert latest.reason == "binance silent"
    assert latest.since == clock()
    assert not latest.quotes["binance"].fresh


def test_primary_goes_down_switch_is_immediate(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.state("kraken", "up")
    world.tick("binance", "100")
    world.tick("kraken", "101")
    world.choose()
    clock.advance(0.1)  # its last quote is only 100 ms old, but the venue is down
    world.state("binance", "down")
    latest = world.choose()
    assert (latest.venue, latest.reason) == ("kraken", "binance down")


def test_primary_returns_only_after_hysteresis(clock: Clock) -> None:
    world = World(clock)
    world.state("kraken", "up")
    world.state("binance", "down")
    world.tick("kraken", "101")
    assert world.choose().venue == "kraken"
    clock.advance(5)
    world.state("binance", "up")
    world.keep_reporting()
    for _ in range(10):  # healthy for 0 .. 9 s
        world.tick("binance", "100")
        assert world.choose().venue == "kraken"
        clock.advance(1)
        world.keep_reporting()
    world.tick("binance", "100")
    latest = world.choose()
    assert (latest.venue, latest.reason) == (
        "binance",
        "binance preferred again after 10 s healthy",
    )


def test_a_quiet_symbol_on_a_healthy_venue_stays_fresh(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.tick("binance", "100")
    for _ in range(5):
        clock.advance(10)  # no trade of this symbol for 50 s; the venue is up (other symbols)
        world.keep_reporting()
    latest = world.choose()
    assert (latest.venue, latest.stale) == ("binance", False)
    clock.advance(11)  # past the direction's max age
    world.keep_reporting()
    assert world.choose().stale


def test_an_outlier_is_excluded(clock: Clock) -> None:
    world = World(clock)
    for venue in ("binance", "kraken", "okx"):
        world.state(venue, "up")
    world.tick("binance", "103")  # 3 % above the others
    world.tick("kraken", "100")
    world.tick("okx", "100.2")
    latest = world.choose()
    assert latest.venue == "kraken"
    assert latest.reason.startswith("binance outlier (")
    assert not latest.quotes["binance"].fresh
    assert outliers({"a": Decimal(103), "b": Decimal(100)}, 0.02) == {}  # two cannot tell


def test_all_sources_stale_keeps_the_last_value_marked_stale(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.tick("binance", "100")
    first = world.choose()
    clock.advance(1)
    world.state("binance", "down")
    kept = world.choose()
    assert (kept.venue, kept.value, kept.stale) == ("binance", Decimal("100"), True)
    assert kept.reason == "no fresh quote: last value kept"
    assert kept.since == first.since
    nothing = choose("ETH-USD", {}, None, Health(), POLICY, clock())
    assert (nothing.latest.venue, nothing.latest.value, nothing.latest.stale) == (None, None, True)


def test_a_connector_that_stopped_reporting_makes_its_venue_unhealthy(clock: Clock) -> None:
    world = World(clock)
    world.state("binance", "up")
    world.state("kraken", "up")
    world.tick("binance", "100")
    world.tick("kraken", "100")
    world.choose()
    clock.advance(POLICY.status_timeout_s + 1)
    world.health.statuses["kraken"] = VenueHealth("up", clock() - timedelta(hours=1), clock())
    world.tick("kraken", "100.1")
    latest = world.choose()
    assert (latest.venue, latest.reason) == ("kraken", "binance status lost")


def test_without_any_status_data_decides(clock: Clock) -> None:
    """A replay has no connector: a venue counts as healthy while its data is recent."""
    world = World(clock)
    world.tick("binance", "100")
    world.health.last_data["binance"] = clock()
    assert not world.choose().stale
    clock.advance(4)
    assert world.choose().stale


def test_a_derived_quote_needs_a_usable_reference(clock: Clock) -> None:
    world = World(clock)
    world.state("kraken", "up")
    now = clock()
    ref = Quote("coingecko", "USD-RUB", Decimal("81"), now, now, "r")
    world.quotes["kraken"] = Quote(
        "kraken",
        "BTC-USD",
        Decimal("1"),
        now,
        now,
        "k",
        (Leg("kraken", "BTC-USD", Decimal(1), now), Leg("coingecko", "USD-RUB", Decimal(81), now)),
    )
    world.references = {"coingecko": ref}
    world.state("coingecko", "up")
    assert not world.choose().stale
    world.state("coingecko", "down")
    latest = world.choose()
    assert latest.stale and not latest.quotes["kraken"].fresh


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


def test_active_venue_serves_every_direction_and_honours_hysteresis(clock: Clock) -> None:
    health = Health()
    for venue in ("binance", "kraken"):
        health.statuses[venue] = VenueHealth("up", clock() - timedelta(hours=1), clock())
    now = clock()
    latest = {
        "BTC-USD": _latest("BTC-USD", {"binance": True, "kraken": True}, now),
        "ETH-USD": _latest("ETH-USD", {"binance": False, "kraken": True}, now),
    }
    active = choose_active(latest, None, health, POLICY, now)
    assert (active.direction, active.venue) == ("*", "kraken")
    assert active.reason == "fresh in 2 of 2 directions"
    # binance serves everything again, but came back only now: kraken stays for 10 s
    health.statuses["binance"] = VenueHealth("up", now, now)
    latest["ETH-USD"] = _latest("ETH-USD", {"binance": True, "kraken": True}, now)
    assert choose_active(latest, active, health, POLICY, now).venue == "kraken"
    later = clock.advance(10)
    health.statuses["binance"] = VenueHealth("up", now, later)
    health.statuses["kraken"] = VenueHealth("up", now - timedelta(hours=1), later)
    back = choose_active(latest, active, health, POLICY, later)
    assert (back.venue, back.since) == ("binance", later)
    none = choose_active({}, back, health, POLICY, later)
    assert (none.venue, none.stale) == ("binance", True)


def test_a_venue_quoting_first_after_the_choice_waits_for_the_hysteresis(clock: Clock) -> None:
    """Without a warm-up (pipeline/warmup.py) a first choice is a choice: a venue whose data
    begins later waits like a recovered one (its data is fresh since then)."""
    world = World(clock)
    world.state("binance", "up")
    world.state("kraken", "up")
    clock.advance(1)
    world.keep_reporting()
    world.tick("kraken", "101")
    assert world.choose().venue == "kraken"
    clock.advance(0.01)
    world.tick("binance", "100")
    latest = world.choose()
    assert latest.venue == "kraken"
    assert latest.quotes["binance"].fresh_since == clock()
