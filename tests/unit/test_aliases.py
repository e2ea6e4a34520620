"""Aliases of one market (USDTTRC, USDTERC): one decision, served identically everywhere."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import orjson

from api.render.v1 import courses_v1
from api.render.v2 import courses_v2
from api.snapshot import Snapshot
from pipeline.broadcast import Broadcast
from pipeline.health import VenueHealth
from pipeline.latest import DurableBooks, LatestRates
from schemas.aliases import aliases, canonical, market_of
from schemas.records import Latest, Quote, VenueQuote
from schemas.settings import DEFAULT_DIRECTIONS
from tests.conftest import Clock, worker_policy

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def test_the_first_configured_direction_of_a_market_decides_for_its_aliases() -> None:
    assert market_of("USDTERC-RUB") == "USDT-RUB" and market_of("BTC-USD") == "BTC-USD"
    found = canonical(DEFAULT_DIRECTIONS)
    assert found["USDTERC-USD"] == "USDTTRC-USD" and found["USDTERC-RUB"] == "USDTTRC-RUB"
    assert found["USDTTRC-USD"] == "USDTTRC-USD" and found["BTC-USD"] == "BTC-USD"
    groups = aliases(DEFAULT_DIRECTIONS)
    assert groups["USDTTRC-USD"] == ("USDTTRC-USD", "USDTERC-USD")
    assert "USDTERC-USD" not in groups
    # Configured alone, USDTERC decides for itself.
    assert canonical(("USDTERC-USD", "BTC-USD")) == {
        "USDTERC-USD": "USDTERC-USD",
        "BTC-USD": "BTC-USD",
    }


def test_the_worker_decides_an_alias_once(clock: Clock) -> None:
    policy = worker_policy(rates_priority=("binance", "kraken"), rates_warmup_s=0)
    broadcast = Broadcast()
    broadcast.health.statuses["binance"] = VenueHealth("up", clock(), clock())
    rates = LatestRates(policy, broadcast)
    books = DurableBooks(rates, {}, write_interval_s=0)
    now = clock()
    trc = Quote("binance", "USDTTRC-USD", Decimal("0.9982"), now, now, "1/USDTTRC-USD")
    erc = Quote("binance", "USDTERC-USD", Decimal("0.9982"), now, now, "1/USDTERC-USD")
    assert books.add(erc, now) is None  # the alias's own quote is not decided on
    assert "USDTERC-USD" not in rates.books
    latest = books.add(trc, now)
    assert latest is not None and latest.venue == "binance"
    assert rates.names("USDTTRC-USD") == ("USDTTRC-USD", "USDTERC-USD")
    assert rates.names("BTC-USD") == ("BTC-USD",)
    assert rates.is_alias("USDTERC-RUB") and not rates.is_alias("USDTTRC-RUB")


def record(direction: str, venue: str, value: str, fresh: bool = True) -> Latest:
    quotes = {venue: VenueQuote(Decimal(value), T, T, fresh, T)}
    return Latest(direction, venue, Decimal(value), T, T, False, "r", T, quotes)


def test_the_api_serves_aliases_from_whichever_record_came_last() -> None:
    snapshot = Snapshot(DEFAULT_DIRECTIONS, clock=lambda: 0.0)
    snapshot.apply(Latest("*", "binance", None, None, None, False, "r", T), 1)
    snapshot.apply(record("USDTTRC-USD", "binance", "0.99820323"), 2)
    # The alias's copy of an older decision arrives after the new one: no disagreement.
    assert not snapshot.apply(record("USDTERC-USD", "binance", "0.99820323"), 3)
    snapshot.apply(record("USDTERC-USD", "binance", "0.99840256"), 4)
    body = orjson.loads(courses_v1(snapshot, None, ["USDTTRC-USD", "USDTERC-USD"]))
    values = {c["direction"]: c["value"] for c in body["courses"]}
    assert values == {"USDTTRC-USD": 0.99840256, "USDTERC-USD": 0.99840256}
    v2 = orjson.loads(courses_v2(snapshot, ["USDTTRC-USD", "USDTERC-USD"], T))["courses"]
    assert [c["direction"] for c in v2] == ["USDTTRC-USD", "USDTERC-USD"]
    same = [(c["venue"], c["value"], c["ts"], c["since"]) for c in v2]
    assert same[0] == same[1]
