"""The history writer's pure parts: switches from rates.latest, batches and rows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import orjson
from aiokafka import TopicPartition

from common.database import libpq_url
from pipeline.history_rows import Batch, Chosen, Switch, derive_switches, quote_columns
from schemas.records import Latest, Leg, Quote

T = datetime(2026, 11, 24, 16, 0, tzinfo=UTC)


def latest(direction: str, venue: str | None, since_s: float | None, reason: str = "r") -> Latest:
    since = None if since_s is None else T + timedelta(seconds=since_s)
    return Latest(direction, venue, None, None, None, False, reason, since)


def test_the_first_choice_and_every_change_are_switches() -> None:
    records = [
        latest("BTC-USD", None, None),  # no quote yet: not a choice
        latest("BTC-USD", "binance", 0, "preferred venue"),
        latest("BTC-USD", "binance", 0),  # republished every second: no switch
        latest("*", "binance", 1),
        latest("BTC-USD", "kraken", 5, "binance stale"),
        latest("BTC-USD", "kraken", 5),
        latest("BTC-USD", "binance", 20, "preferred venue"),
    ]
    switches, state = derive_switches({}, records)
    assert switches == [
        Switch("BTC-USD", None, "binance", "preferred venue", T),
        Switch("*", None, "binance", "r", T + timedelta(seconds=1)),
        Switch("BTC-USD", "binance", "kraken", "binance stale", T + timedelta(seconds=5)),
        Switch("BTC-USD", "kraken", "binance", "preferred venue", T + timedelta(seconds=20)),
    ]
    assert state == {
        "BTC-USD": Chosen("binance", T + timedelta(seconds=20)),
        "*": Chosen("binance", T + timedelta(seconds=1)),
    }


def test_after_a_restart_records_are_compared_with_the_last_stored_switch() -> None:
    stored = {"BTC-USD": Chosen("kraken", T + timedelta(seconds=5))}
    redelivered = [
        latest("BTC-USD", "binance", 0),  # older than the stored switch: already accounted
        latest("BTC-USD", "kraken", 5),
    ]
    assert derive_switches(stored, redelivered) == ([], stored)
    later = [latest("BTC-USD", "binance", 20, "preferred venue")]
    switches, _ = derive_switches(stored, later)
    assert switches == [
        Switch("BTC-USD", "kraken", "binance", "preferred venue", T + timedelta(seconds=20))
    ]


def test_the_batch_keeps_one_row_per_quote_id_and_the_next_offsets() -> None:
    q = Quote("binance", "BTC-USD", Decimal("1.5"), T, T, "binance:BTCUSDT:t1/BTC-USD")
    same_second = Quote("binance", "BTC-USD", Decimal("1.6"), T, T, "binance:BTCUSDT:t2/BTC-USD")
    batch = Batch()
    assert not batch
    tp0, tp1 = TopicPartition("rates.normalized", 0), TopicPartition("rates.latest", 1)
    batch.add(tp0, 10, q)
    batch.add(tp0, 11, q)  # redelivered
    batch.add(tp0, 12, same_second)
    batch.add(tp1, 3, latest("*", "binance", 0))
    batch.add(tp1, 4, None)  # undecodable: skipped, but its offset is consumed
    assert batch.records == 5
    assert list(batch.quotes) == [q.id, same_second.id]
    assert len(batch.latest) == 1
    assert batch.offsets == {tp0: 13, tp1: 5}


def test_quote_columns_carry_exact_values_and_legs_as_json() -> None:
    leg = Leg("binance", "BTC-USD", Decimal("95000.01000000"), T)
    derived = Quote("binance", "BTC-RUB", Decimal("7600000.8"), T, T, "x/BTC-RUB", (leg,))
    plain = Quote("binance", "BTC-USD", Decimal("95000.01000000"), T, T, "x/BTC-USD")
    ids, venues, directions, values, ts, received, legs = quote_columns([derived, plain])
    assert ids == ["x/BTC-RUB", "x/BTC-USD"]
    assert venues == ["binance", "binance"]
    assert directions == ["BTC-RUB", "BTC-USD"]
    assert values == [Decimal("7600000.8"), Decimal("95000.01000000")]
    assert ts == received == [T, T]
    assert legs[1] is None
    assert orjson.loads(legs[0]) == [leg.to_dict()]


def test_libpq_url_drops_a_driver_name() -> None:
    assert libpq_url("postgresql+psycopg://u@h:1/db") == "postgresql://u@h:1/db"
    assert libpq_url("postgresql://u@h:1/db?host=/s") == "postgresql://u@h:1/db?host=/s"
