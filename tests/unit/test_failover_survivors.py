"""The failover's remaining edges: hysteresis exactly reached in a failover, a connector that
just reconnected, no hysteresis at all, and records that are not a choice for good.

Written to kill the mutants of pipeline/failover.py that `make mutation` left alive after
the rework of the hysteresis (docs/mutation.md): each test names the rule it pins.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pipeline.failover import choose, choose_active
from pipeline.health import Health, Policy, VenueHealth
from schemas.records import Latest, Quote, VenueQuote, VenueState
from tests.conftest import Clock, worker_policy


def policy(hysteresis_s: float) -> Policy:
    return worker_policy(
        rates_directions=("BTC-USD", "ETH-USD"),
        rates_priority=("binance", "kraken", "okx"),
        rates_max_age_s=60,
        rates_hysteresis_s=hysteresis_s,
        rates_max_deviation=0.02,
    )


POLICY = policy(10)
LONG_AGO = timedelta(hours=1)
JUST = timedelta(microseconds=1)


def status(health: Health, venue: str, state: VenueState, since: datetime, now: datetime) -> None:
    health.statuses[venue] = VenueHealth(state, since, now)


def up_long(health: Health, now: datetime, *venues: str) -> None:
    for venue in venues:
        status(health, venue, "up", now - LONG_AGO, now)


def quotes(now: datetime, *venues: str) -> dict[str, Quote]:
    return {v: Quote(v, "BTC-USD", Decimal("100"), now, now, f"{v}:100") for v in venues}


def seen(at: datetime, fresh_since: dict[str, datetime | None]) -> dict[str, VenueQuote]:
    """A record's view of each venue's quote: fresh, since when (None: not fresh)."""
    return {
        v: VenueQuote(Decimal("100"), at, at, since is not None, since)
        for v, since in fresh_since.items()
    }


def chosen(
    venue: str,
    since: datetime | None,
    view: dict[str, VenueQuote] | None = None,
    stale: bool = False,
) -> Latest:
    """A previous record of BTC-USD (since None: provisional, chosen while warming up)."""
    at = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    return Latest(
        "BTC-USD", venue, Decimal("100"), at, at, stale, "earlier reason", since, view or {}
    )


# the first choice for good after a provisional one


def test_the_first_choice_after_a_provisional_one_is_the_most_preferred_fresh_venue(
    clock: Clock,
) -> None:
    """The warm-up ended on kraken (binance silent so far); binance quotes now: it is the
    first choice for good although it has been fresh for 0 s, and it replaces no choice."""
    health = Health()
    now = clock()
    up_long(health, now, "binance", "kraken")
    provisional = chosen("kraken", None, seen(now, {"kraken": now - LONG_AGO}))
    started = now - timedelta(seconds=POLICY.warmup_s)
    latest = choose(
        "BTC-USD", quotes(now, "binance", "kraken"), provisional, health, POLICY, now, None, started
    ).latest
    assert (latest.venue, latest.since, latest.stale) == ("binance", now, False)
    assert latest.reason == "most preferred fresh venue"


# a failover takes the most preferred venue usable exactly the hysteresis


def test_failover_takes_a_venue_fresh_exactly_the_hysteresis_over_a_less_preferred_one(
    clock: Clock,
) -> None:
    """binance goes down; kraken's data resumed exactly 10 s ago, okx's long ago: kraken.
    A microsecond less and kraken is not ready yet: okx."""
    health = Health()
    now = clock()
    up_long(health, now, "kraken", "okx")
    status(health, "binance", "down", now, now)
    fresh = quotes(now, "binance", "kraken", "okx")  # binance's not fresh: it is down
    for resumed, expected, reason in (
        (now - timedelta(seconds=POLICY.hysteresis_s), "kraken", "binance down"),
        (now - timedelta(seconds=POLICY.hysteresis_s) + JUST, "okx", "binance down"),
    ):
        view = seen(now, {"binance": now - LONG_AGO, "kraken": resumed, "okx": now - LONG_AGO})
        before = chosen("binance", now - LONG_AGO, view)
        latest = choose("BTC-USD", fresh, before, health, POLICY, now).latest
        assert (latest.venue, latest.reason, latest.since) == (expected, reason, now)


# the hysteresis counts from the connector's last (re)connection too


def test_a_venue_whose_connector_just_reconnected_waits_the_hysteresis_again(
    clock: Clock,
) -> None:
    """With a 1 s hysteresis: binance's data has flowed for 5 s, but its connector came up
    (again) only now: healthy for 0 s, so usable for 0 s, and kraken is kept; 1 s later
    binance is preferred again."""
    short = policy(1)
    health = Health()
    now = clock()
    up_long(health, now, "kraken")
    status(health, "binance", "up", now, now)
    view = seen(now, {"binance": now - timedelta(seconds=5), "kraken": now - LONG_AGO})
    before = chosen("kraken", now - LONG_AGO, view)
    kept = choose("BTC-USD", quotes(now, "binance", "kraken"), before, health, short, now).latest
    assert (kept.venue, kept.reason, kept.since) == ("kraken", "earlier reason", now - LONG_AGO)
    later = clock.advance(1)
    status(health, "binance", "up", now, later)
    up_long(health, later, "kraken")
    back = choose("BTC-USD", quotes(later, "binance", "kraken"), kept, health, short, later).latest
    assert (back.venue, back.since) == ("binance", later)
    assert back.reason == "binance preferred again after 1 s healthy"


# no hysteresis at all (RATES_HYSTERESIS_S=0)


def test_without_hysteresis_a_venue_up_this_instant_is_preferred_at_once(clock: Clock) -> None:
    """Usable for 0 s is enough when the hysteresis is 0: binance, up at this very instant,
    replaces kraken."""
    none = policy(0)
    health = Health()
    now = clock()
    up_long(health, now, "kraken")
    status(health, "binance", "up", now, now)
    before = chosen("kraken", now - LONG_AGO, seen(now, {"kraken": now - LONG_AGO}))
    latest = choose("BTC-USD", quotes(now, "binance", "kraken"), before, health, none, now).latest
    assert (latest.venue, latest.since) == ("binance", now)
    assert latest.reason == "binance preferred again after 0 s healthy"


def test_without_hysteresis_a_venue_back_from_stale_is_not_preferred_over_itself(
    clock: Clock,
) -> None:
    """binance was served stale and is fresh again: it is the most preferred fresh venue,
    not a venue 'preferred again' over itself."""
    none = policy(0)
    health = Health()
    now = clock()
    up_long(health, now, "binance", "kraken")
    before = chosen("binance", now - LONG_AGO, seen(now, {"binance": None}), stale=True)
    latest = choose("BTC-USD", quotes(now, "binance", "kraken"), before, health, none, now).latest
    assert (latest.venue, latest.since, latest.stale) == ("binance", now, False)
    assert latest.reason == "most preferred fresh venue"


# choose_active: a record that is not a choice, and the hysteresis on its boundary


def book(direction: str, view: dict[str, VenueQuote]) -> Latest:
    return Latest(direction, None, None, None, None, False, "", None, view)


def books(at: datetime, fresh_since: dict[str, datetime | None]) -> dict[str, Latest]:
    return {d: book(d, seen(at, fresh_since)) for d in POLICY.directions}


def test_a_previous_active_record_without_since_is_not_a_choice_kept(clock: Clock) -> None:
    """An active record naming a venue but no since (not a choice for good) is not kept with
    its reason: the choice is made, and dated, now."""
    health = Health()
    now = clock()
    up_long(health, now, "binance", "kraken")
    view = books(now, {"binance": now - LONG_AGO, "kraken": now - LONG_AGO})
    unsettled = Latest("*", "binance", None, None, None, False, "earlier reason", None)
    first = choose_active(view, unsettled, health, POLICY, now)
    assert (first.venue, first.since, first.stale) == ("binance", now, False)
    assert first.reason == "fresh in 2 of 2 directions"


def test_the_first_active_venue_is_fresh_exactly_the_hysteresis_or_the_next(
    clock: Clock,
) -> None:
    """binance's data resumed exactly 10 s ago in every direction: ready, so it is chosen
    over kraken; a microsecond later than that, kraken (ready) is chosen."""
    health = Health()
    now = clock()
    up_long(health, now, "binance", "kraken")
    for resumed, expected in (
        (now - timedelta(seconds=POLICY.hysteresis_s), "binance"),
        (now - timedelta(seconds=POLICY.hysteresis_s) + JUST, "kraken"),
    ):
        view = books(now, {"binance": resumed, "kraken": now - LONG_AGO})
        first = choose_active(view, None, health, POLICY, now)
        assert (first.venue, first.since) == (expected, now)
        assert first.reason == "fresh in 2 of 2 directions"


def test_the_active_venue_hysteresis_counts_from_its_latest_resumption_in_any_direction(
    clock: Clock,
) -> None:
    """binance's data resumed 5 s ago in one direction (long ago in the other): it has been
    fresh everywhere for 5 s only, so the first active venue is kraken, whichever direction
    resumed last."""
    health = Health()
    now = clock()
    up_long(health, now, "binance", "kraken")
    recent, old = now - timedelta(seconds=5), now - LONG_AGO
    for btc, eth in ((recent, old), (old, recent)):
        resumed = {"BTC-USD": btc, "ETH-USD": eth}
        view = {d: book(d, seen(now, {"binance": at, "kraken": old})) for d, at in resumed.items()}
        first = choose_active(view, None, health, POLICY, now)
        assert (first.venue, first.since) == ("kraken", now)
