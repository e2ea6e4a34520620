"""The broadcast follower's logic: records of venues.status, rates.reference and rates.latest."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from pipeline.broadcast import Broadcast, Kind, kinds, published_at
from schemas.records import Latest, Quote, VenueState, VenueStatus
from schemas.topics import ACTIVE_KEY, Topics
from tests.conftest import Clock


def ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def status(venue: str, state: VenueState, since: datetime) -> bytes:
    return VenueStatus(venue, state, since, since).to_json()


def bad_records(kind: Kind) -> float:
    value = REGISTRY.get_sample_value("rates_pipeline_bad_records_total", {"kind": kind})
    return value or 0.0


def test_each_topic_has_its_kind() -> None:
    topics = Topics("p.")
    assert kinds(topics) == {
        "p.venues.status": "status",
        "p.rates.reference": "reference",
        "p.rates.latest": "latest",
    }


def test_published_at_is_the_producer_time_never_in_the_future(clock: Clock) -> None:
    earlier = clock() - timedelta(seconds=2)
    assert published_at(ms(earlier), clock()) == earlier
    assert published_at(ms(clock() + timedelta(seconds=30)), clock()) == clock()


def test_a_status_counts_from_when_it_was_published(clock: Clock) -> None:
    state = Broadcast()
    since = clock() - timedelta(minutes=1)
    stamp = clock() - timedelta(seconds=3)
    assert state.apply("status", status("binance", "up", since), ms(stamp), clock()) is None
    health = state.health.statuses["binance"]
    assert (health.state, health.since, health.seen_at) == ("up", since, stamp)


def test_a_status_from_a_clock_ahead_is_seen_now(clock: Clock) -> None:
    state = Broadcast()
    ahead = clock() + timedelta(minutes=5)
    state.apply("status", status("binance", "up", clock()), ms(ahead), clock())
    assert state.health.statuses["binance"].seen_at == clock()


def test_an_older_status_never_replaces_a_newer_one(clock: Clock) -> None:
    state = Broadcast()
    state.apply("status", status("kraken", "down", clock()), ms(clock()), clock())
    old = clock() - timedelta(seconds=10)
    state.apply("status", status("kraken", "up", old), ms(old), clock())  # a late tail record
    assert state.health.statuses["kraken"].state == "down"


def test_references_are_kept_per_market_and_source(clock: Clock) -> None:
    state = Broadcast()
    usd_rub = Quote("cbr", "USD-RUB", Decimal("90.5"), clock(), clock(), "cbr:1")
    state.apply("reference", usd_rub.to_json(), ms(clock()), clock())
    assert state.references.by_source() == {"cbr": usd_rub}


def test_a_directions_latest_record_is_kept_and_handed_on(clock: Clock) -> None:
    state = Broadcast()
    record = Latest("BTC-USD", "binance", Decimal("1"), clock(), clock(), False, "r", clock())
    assert state.apply("latest", record.to_json(), ms(clock()), clock()) == record
    assert state.latest == {"BTC-USD": record}


def test_the_active_venues_record_is_kept_but_not_handed_on(clock: Clock) -> None:
    state = Broadcast()
    active = Latest(ACTIVE_KEY, "kraken", None, None, None, False, "r", clock())
    assert state.apply("latest", active.to_json(), ms(clock()), clock()) is None
    assert state.latest[ACTIVE_KEY] == active


@pytest.mark.parametrize("kind", ["status", "reference", "latest"])
def test_a_bad_record_is_counted_and_skipped(kind: Kind, clock: Clock) -> None:
    state = Broadcast()
    before = bad_records(kind)
    for value in (b"not json", b'{"v": 1}', b""):
        assert state.apply(kind, value, ms(clock()), clock()) is None
    assert bad_records(kind) == before + 3
    assert state.health.statuses == {}
    assert state.references.quotes == {}
    assert state.latest == {}
