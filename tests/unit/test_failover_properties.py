"""Properties of the pure failover over random sequences of statuses, quotes and references.

Hypothesis drives ``choose`` (one derived direction, BTC-RUB, so that references matter) and
``choose_active`` with events in any order, calling them after every event as the worker
does, and checks what a reader of the switches table relies on: a switch is a real change
of the served venue, none at start beyond the first choice, none that undoes itself within
the hysteresis, and the hysteresis counts from when a venue's data resumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.failover import choose, choose_active
from pipeline.health import Health, VenueHealth
from pipeline.history_rows import derive_switches
from pipeline.warmup import active_waiting, settled
from schemas.records import Latest, Leg, Quote, VenueQuote, VenueState
from tests.conftest import Clock, worker_policy

VENUES = ("binance", "kraken", "okx")
SOURCES = ("coingecko", "cbr")
HYSTERESIS = 10.0
WARMUP = 5.0
POLICY = worker_policy(
    rates_directions=("BTC-RUB", "ETH-RUB"),
    rates_priority=VENUES,
    rates_venues=(*VENUES, "cbr"),
    rates_reference_priority=SOURCES,
    rates_hysteresis_s=HYSTERESIS,
    rates_warmup_s=WARMUP,
    rates_max_age_s=30,
    rates_status_timeout_s=15,
    rates_cbr_max_age_s=20,
)
STATES: tuple[VenueState, ...] = ("connecting", "up", "up", "silent", "down")

advance = st.tuples(st.just("advance"), st.floats(0.0, 12.0))
status = st.tuples(
    st.just("status"), st.sampled_from((*VENUES, "coingecko")), st.sampled_from(STATES)
)
tick = st.tuples(
    st.just("tick"),
    st.sampled_from(VENUES),
    st.sampled_from(("100", "100.5", "99.8", "120")),  # 120: an outlier
    st.sampled_from(SOURCES),
)
reference = st.tuples(st.just("reference"), st.sampled_from(SOURCES))
report = st.tuples(st.just("report"))
events = st.lists(st.one_of(advance, status, tick, reference, report), min_size=1, max_size=80)


@dataclass
class World:
    """Statuses, books and references, moved by the events; every decision made."""

    clock: Clock = field(default_factory=Clock)
    health: Health = field(default_factory=Health)
    quotes: dict[str, Quote] = field(default_factory=dict)
    references: dict[str, Quote] = field(default_factory=dict)
    started: datetime | None = None
    decisions: list[Latest] = field(default_factory=list)

    def apply(self, event: tuple[object, ...]) -> None:
        now = self.clock()
        kind = event[0]
        if kind == "advance":
            self.clock.advance(float(event[1]))  # type: ignore[arg-type]
        elif kind == "status":
            venue, state = str(event[1]), event[2]
            current = self.health.statuses.get(venue)
            since = current.since if current is not None and current.state == state else now
            self.health.statuses[venue] = VenueHealth(state, since, now)  # type: ignore[arg-type]
        elif kind == "report":
            for venue, known in self.health.statuses.items():
                self.health.statuses[venue] = VenueHealth(known.state, known.since, now)
        elif kind == "reference":
            source = str(event[1])
            self.references[source] = Quote(source, "USD-RUB", Decimal(80), now, now, f"r{now}")
        else:
            venue, value, source = str(event[1]), Decimal(str(event[2])), str(event[3])
            rate = self.references.get(source)
            if rate is None:
                return  # no reference yet: no RUB quote (normalize never invents one)
            legs = (
                Leg(venue, "BTC-USD", value, now),
                Leg(source, "USD-RUB", rate.value, rate.ts),
            )
            self.quotes[venue] = Quote(venue, "BTC-RUB", value * rate.value, now, now, "q", legs)
            if self.started is None:
                self.started = now

    def decide(self) -> Latest:
        previous = self.decisions[-1] if self.decisions else None
        latest = choose(
            "BTC-RUB",
            self.quotes,
            previous,
            self.health,
            POLICY,
            self.clock(),
            self.references,
            self.started,
        ).latest
        self.decisions.append(latest)
        return latest


def rank(venue: str | None) -> int:
    return POLICY.rank(str(venue))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(events)
def test_switches_are_real_changes_of_the_served_venue(sequence: list[tuple[object, ...]]) -> None:
    world = World()
    fresh_run: dict[str, datetime] = {}  # venue -> first decision of its unbroken fresh run
    previous: Latest | None = None
    for event in sequence:
        world.apply(event)
        now = world.clock()
        latest = world.decide()
        fresh = {v for v, q in latest.quotes.items() if q.fresh}
        for venue in list(fresh_run):
            if venue not in fresh:
                del fresh_run[venue]
        for venue in fresh:
            fresh_run.setdefault(venue, now)
        # A fresh rate is always a fresh venue's; the hysteresis starts when its data did.
        if fresh:
            assert latest.venue in fresh and not latest.stale
        for venue in fresh:
            since = latest.quotes[venue].fresh_since
            assert since is not None and since >= fresh_run[venue]
        if settled(previous) and not settled(latest):
            raise AssertionError(f"a choice for good became provisional: {latest}")
        if previous is not None and not settled(previous) and settled(latest):
            # The first choice for good: after the warm-up, and the most preferred fresh venue.
            assert world.started is not None
            waited = (now - world.started).total_seconds()
            heard = all(
                v in world.quotes
                or (
                    (s := world.health.statuses.get(v)) is not None
                    and s.state in ("down", "silent")
                )
                for v in VENUES
            )
            assert waited >= WARMUP or heard
            assert latest.venue == min(fresh, key=rank)
        if (
            previous is not None
            and settled(previous)
            and settled(latest)
            and (latest.venue != previous.venue)
        ):
            if previous.venue in fresh and not previous.stale:
                # Not forced: a more preferred venue, fresh for the hysteresis without a break.
                assert rank(latest.venue) < rank(previous.venue), (previous, latest)
                assert (now - fresh_run[str(latest.venue)]).total_seconds() >= HYSTERESIS
                assert latest.reason.endswith(f"preferred again after {HYSTERESIS:g} s healthy")
            assert latest.since == now
        if (
            previous is not None
            and settled(previous)
            and settled(latest)
            and (latest.venue == previous.venue)
        ):
            assert latest.since == previous.since or previous.stale
        previous = latest
    # The switches table: the first choice, then one row per change of the chosen venue.
    rows, _ = derive_switches({}, world.decisions)
    changes = sum(
        1
        for a, b in zip(world.decisions, world.decisions[1:], strict=False)
        if settled(a) and settled(b) and a.venue != b.venue
    )
    first = any(settled(d) for d in world.decisions)
    assert len(rows) == changes + first


def _record(direction: str, fresh: dict[str, datetime | None], at: datetime) -> Latest:
    quotes = {
        v: VenueQuote(Decimal(1), at, at, since is not None, since) for v, since in fresh.items()
    }
    return Latest(direction, None, None, None, None, False, "", at, quotes)


coverage = st.lists(
    st.tuples(
        st.floats(0.0, 8.0),
        st.dictionaries(st.sampled_from(("BTC-RUB", "ETH-RUB")), st.sets(st.sampled_from(VENUES))),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(coverage)
def test_the_active_venue_switches_back_only_after_the_hysteresis(
    steps: list[tuple[float, dict[str, set[str]]]],
) -> None:
    """Directions' fresh venues change at random; connections stay up all along."""
    clock = Clock()
    health = Health()
    for venue in VENUES:
        health.statuses[venue] = VenueHealth("up", clock() - timedelta(hours=1), clock())
    fresh_since: dict[tuple[str, str], datetime] = {}
    view: dict[str, Latest] = {}
    previous: Latest | None = None
    for seconds, fresh in steps:
        now = clock.advance(seconds)
        for venue in VENUES:
            health.statuses[venue] = VenueHealth("up", clock() - timedelta(hours=1), now)
        for direction in ("BTC-RUB", "ETH-RUB"):
            venues = fresh.get(direction, set())
            for venue in VENUES:
                if venue in venues:
                    fresh_since.setdefault((direction, venue), now)
                else:
                    fresh_since.pop((direction, venue), None)
            view[direction] = _record(
                direction, {v: fresh_since.get((direction, v)) for v in VENUES}, now
            )
        assert active_waiting(view, previous) == []
        active = choose_active(view, previous, health, POLICY, now)
        if previous is not None and previous.venue is not None and active.venue != previous.venue:
            kept_serving = any(previous.venue in fresh.get(d, set()) for d in fresh)
            if kept_serving and not previous.stale:
                # Not forced: the new venue's data has been fresh for the hysteresis everywhere
                # it is fresh now.
                ages = [
                    (now - since).total_seconds()
                    for (_, venue), since in fresh_since.items()
                    if venue == active.venue
                ]
                assert ages and min(ages) >= HYSTERESIS, (previous, active)
        previous = active


def test_the_hysteresis_counts_from_when_the_data_resumed_not_the_connection() -> None:
    """The connections stay up all along; binance's RUB quotes turn unusable when their
    reference (CoinGecko) goes away, and usable again when it is back: binance waits the
    hysteresis from then, though its connection has been healthy for an hour."""
    world = World()
    clock = world.clock
    for venue in (*VENUES, "coingecko"):
        world.health.statuses[venue] = VenueHealth("up", clock() - timedelta(hours=1), clock())
    world.apply(("reference", "coingecko"))
    world.apply(("reference", "cbr"))
    world.apply(("tick", "binance", "100", "coingecko"))
    world.apply(("tick", "kraken", "100.5", "cbr"))
    world.apply(("tick", "okx", "99.8", "cbr"))
    assert world.decide().venue == "binance"
    clock.advance(1)
    world.apply(("status", "coingecko", "down"))
    world.apply(("report",))
    switched = world.decide()
    assert (switched.venue, switched.reason) == ("kraken", "binance reference coingecko stale")
    clock.advance(1)
    world.apply(("status", "coingecko", "up"))
    world.apply(("reference", "coingecko"))
    world.apply(("tick", "binance", "100", "coingecko"))
    resumed = clock()
    for _ in range(9):
        world.apply(("report",))
        assert world.decide().venue == "kraken"
        assert world.decisions[-1].quotes["binance"].fresh_since == resumed
        clock.advance(1)
        world.apply(("reference", "coingecko"))
        world.apply(("tick", "kraken", "100.5", "cbr"))
        world.apply(("tick", "okx", "99.8", "cbr"))
        world.apply(("tick", "binance", "100", "coingecko"))
    clock.advance(1)
    world.apply(("report",))
    back = world.decide()
    assert (back.venue, back.since) == ("binance", clock())
    assert back.reason == f"binance preferred again after {HYSTERESIS:g} s healthy"
