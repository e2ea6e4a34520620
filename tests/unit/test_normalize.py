"""Market quotes become quotes of the configured directions, with RUB derived from a reference."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal

import orjson
import pytest

from connectors import registry
from connectors.venues.base import (
    Frame,
    FrameKind,
    MarketQuote,
    WebsocketVenue,
    quote_id,
)
from connectors.venues.naming import dash_naming
from pipeline.health import Health, Policy, VenueHealth
from pipeline.normalize import Conversion, References, Route, Target, normalize, round8
from schemas.errors import FrameError, UnknownSymbol
from schemas.records import Leg, Quote, RawFrame
from schemas.settings import DEFAULT_DIRECTIONS
from tests.conftest import Clock, worker_policy

POLICY = worker_policy(
    rates_directions=DEFAULT_DIRECTIONS, rates_priority=("binance", "kraken", "coingecko")
)
BINANCE = frozenset({"BTC-USDT", "ETH-USDT", "USDC-USDT"})
KRAKEN = frozenset({"BTC-USD", "ETH-USD", "USDT-USD", "BTC-USDT"})


def fake_venue(name: str, markets: Sequence[str]) -> WebsocketVenue:
    """A venue whose frames are JSON lists of [market, value, id]."""

    def parse(frame: str, received_at: datetime) -> list[MarketQuote]:
        return [
            MarketQuote(name, market, Decimal(value), received_at, received_at, f"{name}:{ident}")
            for market, value, ident in orjson.loads(frame)
        ]

    return WebsocketVenue(
        name=name,
        url_setting="unused",
        markets={m: m for m in markets},
        naming=dash_naming(("USD",), ("USDT-USD",)),
        connect_url=lambda base, symbols: base,
        subscribe=lambda symbols: [],
        classify=lambda frame: Frame(FrameKind.DATA, name),
        parse=parse,
    )


VENUES = {
    "binance": registry.VENUES["binance"],
    "kraken": fake_venue("kraken", sorted(KRAKEN)),
    "coingecko": fake_venue("coingecko", ["BTC-USD", "ETH-USD", "USDT-USD", "BTC-RUB", "USDT-RUB"]),
    "cbr": fake_venue("cbr", ["USD-RUB"]),
}


def healthy(clock: Clock, *venues: str) -> Health:
    since = clock() - timedelta(hours=1)
    return Health({v: VenueHealth("up", since, clock()) for v in venues})


def run(
    clock: Clock,
    venue: str,
    quotes: list[list[str]],
    references: References | None = None,
    health: Health | None = None,
    conversion: Conversion | None = None,
    policy: Policy = POLICY,
) -> tuple[dict[str, Quote], dict[tuple[str, str], Quote]]:
    raw = RawFrame(venue, clock(), orjson.dumps(quotes).decode(), "c1")
    result = normalize(
        raw,
        VENUES,
        conversion or Conversion(DEFAULT_DIRECTIONS),
        references or References(),
        health or healthy(clock, *VENUES),
        policy,
        clock(),
    )
    return (
        {q.direction: q for q in result.quotes},
        {(q.direction, q.venue): q for q in result.references},
    )


def test_plan_for_a_usdt_venue() -> None:
    plan = Conversion(DEFAULT_DIRECTIONS).plan(BINANCE)
    assert plan["BTC-USDT"] == (Target("BTC-USD", Route.DIRECT),)
    assert plan["ETH-USDT"] == (Target("ETH-USD", Route.DIRECT),)
    assert plan["USDC-USDT"] == (
        Target("USDTTRC-USD", Route.INVERT),
        Target("USDTERC-USD", Route.INVERT),
    )


def test_plan_routes_every_market_of_an_asset() -> None:
    # The connector subscribes one market per asset and venue (connectors/subscriptions.py,
    # test_subscriptions): never two interleaved prices; the plan reads either.
    plan = Conversion(DEFAULT_DIRECTIONS).plan(KRAKEN)
    assert plan["BTC-USD"] == (Target("BTC-USD", Route.DIRECT),)
    assert plan["BTC-USDT"] == (Target("BTC-USD", Route.DIRECT),)
    assert plan["USDT-USD"] == (
        Target("USDTTRC-USD", Route.DIRECT),
        Target("USDTERC-USD", Route.DIRECT),
    )


def test_plan_converts_through_usdt_usd_when_asked() -> None:
    plan = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd=False).plan(BINANCE)
    assert plan["BTC-USDT"] == (Target("BTC-USD", Route.VIA_USDT),)


def test_usdt_usd_from_inverted_usdc(clock: Clock) -> None:
    frame = (
        '{"stream":"usdcusdt@trade","data":{"e":"trade","E":1,"s":"USDCUSDT","t":9,'
        '"p":"0.99980000","q":"1","T":1795536000000,"m":true,"M":true}}'
    )
    raw = RawFrame("binance", clock(), frame, "c")
    result = normalize(
        raw, VENUES, Conversion(DEFAULT_DIRECTIONS), References(), healthy(clock), POLICY, clock()
    )
    trc, erc = result.quotes
    assert (trc.direction, erc.direction) == ("USDTTRC-USD", "USDTERC-USD")
    assert trc.value == Decimal("1.00020004")  # 1 / 0.9998, never the constant 1
    assert trc.id == "binance:USDCUSDT:t9/USDTTRC-USD"
    assert trc.derived_from == (Leg("binance", "USDC-USDT", Decimal("0.99980000"), trc.ts),)


def test_rub_is_usd_times_the_reference(clock: Clock) -> None:
    refs = References()
    cbr = Quote("cbr", "USD-RUB", Decimal("81.4567"), clock(), clock(), "cbr:USD:20261124")
    refs.update(cbr)
    quotes, _ = run(clock, "kraken", [["BTC-USD", "95000.10", "1"]], refs)
    assert quotes["BTC-USD"].value == Decimal("95000.10")
    rub = quotes["BTC-RUB"]
    assert rub.value == round8(Decimal("95000.10") * Decimal("81.4567"))
    assert rub.value == Decimal("7738394.64567000")
    assert rub.venue == "kraken"
    assert rub.id == "kraken:1/BTC-RUB"
    assert rub.derived_from == (
        Leg("kraken", "BTC-USD", Decimal("95000.10"), clock()),
        Leg("cbr", "USD-RUB", Decimal("81.4567"), clock()),
    )


def test_no_reference_no_rub(clock: Clock) -> None:
    quotes, _ = run(clock, "kraken", [["BTC-USD", "95000.10", "1"]])
    assert set(quotes) == {"BTC-USD"}


def test_coingecko_gives_a_reference_from_its_usdt_quotes(clock: Clock) -> None:
    frame = [["USDT-USD", "1.0002", "u"], ["USDT-RUB", "81.6", "r"], ["BTC-RUB", "1", "b"]]
    quotes, refs = run(clock, "coingecko", frame)
    ref = refs[("USD-RUB", "coingecko")]
    assert ref.value == round8(Decimal("81.6") / Decimal("1.0002"))
    assert ref.derived_from is not None and len(ref.derived_from) == 2
    assert set(quotes) == {"USDTTRC-USD", "USDTERC-USD"}  # its own BTC-RUB is not a source


def test_reference_failover_and_the_long_lived_cbr_rate(clock: Clock) -> None:
    refs = References()
    refs.update(Quote("cbr", "USD-RUB", Decimal("81"), clock(), clock(), "c"))
    refs.update(Quote("coingecko", "USD-RUB", Decimal("82"), clock(), clock(), "g"))
    health = healthy(clock, "kraken", "coingecko")
    assert refs.usd_rub(health, clock(), POLICY) is refs.quotes[("USD-RUB", "coingecko")]
    clock.advance(3600)  # coingecko stale; CBR's daily rate still valid, connection or not
    health = healthy(clock, "kraken")
    chosen = refs.usd_rub(health, clock(), POLICY)
    assert chosen is not None and chosen.venue == "cbr"
    clock.advance(4 * 86400)
    assert refs.usd_rub(health, clock(), POLICY) is None


def test_usdt_usd_conversion_uses_the_venues_own_quote(clock: Clock) -> None:
    conversion = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd=False)
    frame = (
        '{"e":"trade","E":1,"s":"BTCUSDT","t":5,"p":"95000.00000000","q":"1",'
        '"T":1795536000000,"m":true,"M":true}'
    )
    raw = RawFrame("binance", clock(), frame, "c")
    refs = References()
    health = healthy(clock, "binance")
    result = normalize(raw, VENUES, conversion, refs, health, POLICY, clock())
    assert result.quotes == []  # no USDT-USD of binance yet: nothing rather than a guess
    refs.update(Quote("binance", "USDT-USD", Decimal("1.0002"), clock(), clock(), "x"))
    result = normalize(raw, VENUES, conversion, refs, health, POLICY, clock())
    (btc,) = result.quotes
    assert btc.value == Decimal("95019.00000000")
    assert btc.derived_from is not None and btc.derived_from[1].direction == "USDT-USD"


def test_usdt_usd_is_published_as_a_reference_when_converting(clock: Clock) -> None:
    conversion = Conversion(DEFAULT_DIRECTIONS, usdt_as_usd=False)
    _, refs = run(clock, "kraken", [["USDT-USD", "1.0001", "1"]], conversion=conversion)
    assert refs[("USDT-USD", "kraken")].value == Decimal("1.0001")
    _, refs = run(clock, "kraken", [["USDT-USD", "1.0001", "1"]])
    assert refs == {}


def test_bad_frames(clock: Clock) -> None:
    conv, refs, health = Conversion(DEFAULT_DIRECTIONS), References(), healthy(clock)
    with pytest.raises(FrameError, match="unknown venue"):
        normalize(
            RawFrame("nowhere", clock(), "{}", "c"), VENUES, conv, refs, health, POLICY, clock()
        )
    with pytest.raises(FrameError):
        normalize(
            RawFrame("binance", clock(), "{oops", "c"), VENUES, conv, refs, health, POLICY, clock()
        )
    unknown = '{"e":"trade","s":"NOPEUSDT","t":1,"p":"1","T":1}'
    with pytest.raises(UnknownSymbol):
        normalize(
            RawFrame("binance", clock(), unknown, "c"), VENUES, conv, refs, health, POLICY, clock()
        )


def _priced_without_time(frame: str, received_at: datetime) -> list[MarketQuote]:
    """A venue that gives no event time: ts is the receive time, the id a hash of it."""
    value = Decimal(frame)
    qid = quote_id("tsless", "BTCUSDT", received_at, value)
    return [MarketQuote("tsless", "BTC-USD", value, received_at, received_at, qid)]


def test_a_replayed_frame_keeps_its_original_time_and_id_but_is_fresh(clock: Clock) -> None:
    venue = dataclasses.replace(VENUES["kraken"], name="tsless", parse=_priced_without_time)
    venues = {"tsless": venue}
    conv, refs, health = Conversion(("BTC-USD",)), References(), healthy(clock)
    recorded = clock()
    live = RawFrame("tsless", recorded, "95000.5", "c1")
    (original,) = normalize(live, venues, conv, refs, health, POLICY, clock()).quotes
    now = clock.advance(3 * 86400)
    replayed = RawFrame("tsless", now, "95000.5", "replay", recorded_at=recorded)
    (again,) = normalize(replayed, venues, conv, refs, health, POLICY, now).quotes
    assert (again.id, again.ts, again.value) == (original.id, original.ts, original.value)
    assert again.received_at == now
