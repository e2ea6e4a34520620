"""Normalization's edges: which markets serve what, the references kept and made, the limits.

Written to kill the mutants `make mutation` found alive (docs/mutation.md): each test names
the rule it pins; a mutant that moves a boundary or drops a branch fails one of them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from connectors import registry
from pipeline.health import Health, VenueHealth
from pipeline.normalize import (
    Conversion,
    Normalizer,
    References,
    Route,
    Target,
    normalize,
)
from schemas.errors import UnknownSymbol
from schemas.records import Leg, Quote, RawFrame
from schemas.settings import DEFAULT_DIRECTIONS
from tests.conftest import Clock
from tests.unit.test_normalize import POLICY, VENUES, fake_venue, healthy

USDT_DIRECTIONS = ("USDTTRC-USD", "USDTERC-USD")
CONVERTING = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd=False)
#: The test venues, and one that has every market that matters (not a reference source).
ALL_VENUES = {
    **VENUES,
    "usdc": fake_venue("usdc", ["USDC-USDT", "BTC-USDT", "USDT-USD", "USD-RUB", "USDT-RUB"]),
}


def run(
    clock: Clock,
    venue: str,
    rows: list[list[str]],
    references: References | None = None,
    conversion: Conversion | None = None,
) -> tuple[dict[str, Quote], dict[tuple[str, str], Quote]]:
    """One frame of [market, value, id] rows from ``venue``: its quotes and references."""
    raw = RawFrame(venue, clock(), orjson.dumps(rows).decode(), "c1")
    result = normalize(
        raw,
        ALL_VENUES,
        conversion or Conversion(DEFAULT_DIRECTIONS),
        references or References(),
        healthy(clock, *ALL_VENUES),
        POLICY,
        clock(),
    )
    return (
        {q.direction: q for q in result.quotes},
        {(q.direction, q.venue): q for q in result.references},
    )


def reference(venue: str, market: str, value: str, at: datetime) -> Quote:
    return Quote(venue, market, Decimal(value), at, at, f"{venue}:{market}:{value}")


# which markets serve which directions


def test_a_rub_direction_alone_still_gets_its_usd_leg_planned() -> None:
    plan = Conversion(("BTC-RUB",)).plan(frozenset({"BTC-USD", "ETH-USD", "RUB-USD"}))
    assert plan == {"BTC-USD": (Target("BTC-USD", Route.DIRECT),)}


def test_a_rub_direction_alone_is_served_without_its_usd_leg(clock: Clock) -> None:
    refs = References()
    refs.update(reference("cbr", "USD-RUB", "80", clock()))
    quotes, _ = run(
        clock, "kraken", [["BTC-USD", "100", "1"]], refs, conversion=Conversion(("BTC-RUB",))
    )
    assert set(quotes) == {"BTC-RUB"}
    assert quotes["BTC-RUB"].value == Decimal("8000.00000000")


def test_a_plan_holds_only_markets_the_venue_has() -> None:
    conversion = Conversion(DEFAULT_DIRECTIONS)
    assert conversion.plan(frozenset({"BTC-USD"})) == {
        "BTC-USD": (Target("BTC-USD", Route.DIRECT),)
    }
    # USDT is never served as USDT-USDT, whatever the setting
    for usdt_as_usd in (True, False):
        plan = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd).plan(
            frozenset({"ETH-USDT", "USDT-USDT"})
        )
        route = Route.DIRECT if usdt_as_usd else Route.VIA_USDT
        assert plan == {"ETH-USDT": (Target("ETH-USD", route),)}


def test_usdc_usdt_serves_usdt_inverted_and_usdc_counted_as_usd() -> None:
    directions = ("BTC-USD", "USDC-USD", *USDT_DIRECTIONS)
    plan = Conversion(directions).plan(frozenset({"USDC-USDT"}))
    inverted = tuple(Target(d, Route.INVERT) for d in USDT_DIRECTIONS)
    assert plan == {"USDC-USDT": (Target("USDC-USD", Route.DIRECT), *inverted)}


# References.update: the newest quote of each (market, source) wins


def test_a_newer_reference_replaces_an_older_one_and_never_the_reverse(clock: Clock) -> None:
    for market in ("USD-RUB", "USDT-USD"):
        refs = References()
        older = reference("coingecko", market, "80", clock())
        newer = reference("coingecko", market, "81", clock() + timedelta(seconds=1))
        refs.update(older)
        refs.update(newer)
        assert refs.quotes == {(market, "coingecko"): newer}
        refs.update(older)  # redelivered late
        assert refs.quotes == {(market, "coingecko"): newer}


def test_of_two_references_received_at_once_the_later_update_wins(clock: Clock) -> None:
    refs = References()
    first = reference("coingecko", "USD-RUB", "80", clock())
    second = reference("coingecko", "USD-RUB", "80.5", clock())
    refs.update(first)
    refs.update(second)
    assert refs.quotes[("USD-RUB", "coingecko")] is second


def test_references_are_kept_per_market_and_source(clock: Clock) -> None:
    refs = References()
    quotes = [
        reference("coingecko", "USD-RUB", "80", clock()),
        reference("cbr", "USD-RUB", "81", clock()),
        reference("coingecko", "USDT-USD", "1.0001", clock()),
    ]
    for quote in quotes:
        refs.update(quote)
    assert len(refs.quotes) == 3
    assert refs.by_source() == {"coingecko": quotes[0], "cbr": quotes[1]}


# the USD-RUB reference and a venue's USDT-USD on their limits


def test_a_reference_exactly_max_age_old_is_used_and_just_older_not(clock: Clock) -> None:
    refs = References()
    received = clock()
    refs.update(reference("coingecko", "USD-RUB", "80", received))
    refs.update(reference("kraken", "USDT-USD", "1.0002", received))
    now = clock.advance(POLICY.max_age_s)
    health = healthy(clock, "coingecko", "kraken")
    assert refs.usd_rub(health, now, POLICY) is refs.quotes[("USD-RUB", "coingecko")]
    assert refs.usdt_usd("kraken", health, now, POLICY) is refs.quotes[("USDT-USD", "kraken")]
    later = clock.advance(1e-6)
    health = healthy(clock, "coingecko", "kraken")
    assert refs.usd_rub(health, later, POLICY) is None
    assert refs.usdt_usd("kraken", health, later, POLICY) is None


def test_a_venues_usdt_usd_needs_that_venue_healthy_and_its_own_quote(clock: Clock) -> None:
    refs = References()
    refs.update(reference("kraken", "USDT-USD", "1.0002", clock()))
    assert refs.usdt_usd("kraken", healthy(clock, "kraken"), clock(), POLICY) is not None
    assert refs.usdt_usd("binance", healthy(clock, "binance", "kraken"), clock(), POLICY) is None
    down = Health({"kraken": VenueHealth("down", clock(), clock())})
    assert refs.usdt_usd("kraken", down, clock(), POLICY) is None


# references a frame carries


def test_usdt_usd_made_by_inverting_usdc_is_a_reference_when_converting(clock: Clock) -> None:
    frame = [["USDC-USDT", "0.9998", "9"], ["BTC-USDT", "95000", "5"]]
    _, refs = run(clock, "usdc", frame, conversion=CONVERTING)
    usdt = refs[("USDT-USD", "usdc")]
    assert (usdt.value, usdt.venue, usdt.id) == (
        Decimal("1.00020004"),  # 1 / 0.9998: never the constant 1
        "usdc",
        "usdc:9/USDT-USD",
    )
    assert usdt.derived_from == (Leg("usdc", "USDC-USDT", Decimal("0.9998"), clock()),)
    assert set(refs) == {("USDT-USD", "usdc")}
    _, refs = run(clock, "usdc", frame)  # USDT counted as USD: no USDT-USD needed
    assert refs == {}


def test_a_venues_own_usdt_usd_wins_over_inverting_usdc(clock: Clock) -> None:
    frame = [["USDC-USDT", "0.9998", "9"], ["USDT-USD", "1.0001", "1"]]
    _, refs = run(clock, "usdc", frame, conversion=CONVERTING)
    assert refs[("USDT-USD", "usdc")].value == Decimal("1.0001")
    assert len(refs) == 1


def test_a_converting_frame_uses_the_usdt_usd_it_carries_only_after_the_frame(
    clock: Clock,
) -> None:
    """The Normalizer keeps the references a frame carries for the next frames."""
    normalizer = Normalizer(ALL_VENUES, CONVERTING, POLICY)
    normalizer.health.statuses.update(healthy(clock, "usdc").statuses)
    frame = orjson.dumps([["USDC-USDT", "0.9998", "9"], ["BTC-USDT", "95000", "5"]]).decode()
    first = normalizer(RawFrame("usdc", clock(), frame, "c"), clock())
    assert "BTC-USD" not in {q.direction for q in first.quotes}
    second = normalizer(RawFrame("usdc", clock(), frame, "c"), clock())
    btc = {q.direction: q for q in second.quotes}["BTC-USD"]
    assert btc.value == Decimal("95019.00380000")  # 95000 * 1.00020004


def test_a_usd_rub_reference_only_from_a_reference_source(clock: Clock) -> None:
    frame = [["USD-RUB", "80", "1"], ["USDT-RUB", "81", "2"], ["USDT-USD", "1.0002", "3"]]
    _, refs = run(clock, "usdc", frame)
    assert refs == {}  # usdc is no reference source
    _, refs = run(clock, "cbr", [["USD-RUB", "80", "1"]])
    assert refs[("USD-RUB", "cbr")].value == Decimal("80")
    assert refs[("USD-RUB", "cbr")].derived_from is None
    _, refs = run(clock, "coingecko", [["USDT-RUB", "81", "2"]])  # no USDT-USD in the frame
    assert refs == {}
    _, refs = run(clock, "coingecko", [["USDT-USD", "1.0002", "3"]])
    assert refs == {}


# the Normalizer: what it remembers of each venue


def test_the_normalizer_keeps_each_venues_newest_data_time(clock: Clock) -> None:
    normalizer = Normalizer(VENUES, Conversion(DEFAULT_DIRECTIONS), POLICY)
    frame = orjson.dumps([["BTC-USD", "100", "1"]]).decode()
    newest = clock()
    normalizer(RawFrame("kraken", newest, frame, "c"), newest)
    late = newest - timedelta(seconds=5)
    normalizer(RawFrame("kraken", late, frame, "c"), newest)
    assert normalizer.health.last_data == {"kraken": newest}
    newer = clock.advance(1)
    result = normalizer(RawFrame("kraken", newer, frame, "c"), newer)
    assert normalizer.health.last_data == {"kraken": newer}
    assert [q.direction for q in result.quotes] == ["BTC-USD"]


def test_a_live_frame_is_parsed_at_its_receive_time(clock: Clock) -> None:
    at = clock()
    quotes, _ = run(clock, "kraken", [["BTC-USD", "100", "1"]])
    assert (quotes["BTC-USD"].ts, quotes["BTC-USD"].received_at) == (at, at)


def test_a_coingecko_frame_reads_coins_by_the_symbol_map_it_carries(clock: Clock) -> None:
    # Coin ids looked up at start travel with the frame; without the map the same answer
    # names a coin no rule can read.
    venues = {"coingecko": registry.VENUES["coingecko"]}
    frame = orjson.dumps({"made-up-coin": {"usd": 2.5, "last_updated_at": 1764900000}}).decode()
    conversion = Conversion(("ZZZ-USD",))
    args = (venues, conversion, References(), healthy(clock, "coingecko"), POLICY, clock())
    mapped = RawFrame("coingecko", clock(), frame, "c1", symbols={"made-up-coin/usd": "ZZZ-USD"})
    (quote,) = normalize(mapped, *args).quotes
    assert (quote.direction, quote.value) == ("ZZZ-USD", Decimal("2.5"))
    with pytest.raises(UnknownSymbol):
        normalize(RawFrame("coingecko", clock(), frame, "c1"), *args)
