"""Records encode to the documented JSON and decode back, rejecting malformed input clearly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import orjson
import pytest

from schemas.errors import RecordError
from schemas.records import (
    Latest,
    Leg,
    Quote,
    RawFrame,
    VenueQuote,
    VenueStatus,
    format_decimal,
    format_time,
    parse_time,
)

T = datetime(2026, 11, 24, 16, 0, 0, 123456, tzinfo=UTC)


def quote(**changes: object) -> Quote:
    fields: dict[str, object] = {
        "venue": "binance",
        "direction": "BTC-USD",
        "value": Decimal("54000.000123"),
        "ts": T,
        "received_at": T + timedelta(milliseconds=5),
        "id": "binance:BTCUSDT:t1/BTC-USD",
    }
    fields.update(changes)
    return Quote(**fields)  # type: ignore[arg-type]


def test_time_format_is_rfc3339_utc_with_microseconds() -> None:
    assert format_time(T) == "2026-11-24T16:00:00.123456Z"
    moscow = T.astimezone(timezone(timedelta(hours=3)))
    assert format_time(moscow) == "2026-11-24T16:00:00.123456Z"
    assert parse_time("2026-11-24T19:00:00.123456+03:00") == T


def test_naive_times_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="offset"):
        parse_time("2026-11-24T16:00:00")


def test_decimal_keeps_every_digit_without_exponent() -> None:
    assert format_decimal(Decimal("54000.000123")) == "54000.000123"
    assert format_decimal(Decimal("1E-8")) == "0.00000001"
    assert format_decimal(Decimal("94936.03000000")) == "94936.03000000"


def test_quote_round_trip_and_wire_shape() -> None:
    q = quote(derived_from=(Leg("binance", "BTC-USD", Decimal("1.5"), T),))
    wire = orjson.loads(q.to_json())
    assert wire["v"] == 1
    assert wire["value"] == "54000.000123"
    assert wire["ts"] == "2026-11-24T16:00:00.123456Z"
    assert wire["derived_from"][0]["value"] == "1.5"
    assert Quote.from_json(q.to_json()) == q
    assert Quote.from_json(quote().to_json()).derived_from is None


def test_other_records_round_trip() -> None:
    raw = RawFrame("binance", T, '{"a": 1}', "binance-1")
    assert RawFrame.from_json(raw.to_json()) == raw
    assert orjson.loads(raw.to_json())["recorded_at"] is None  # live
    replayed = RawFrame("binance", T, '{"a": 1}', "binance-1", recorded_at=T - timedelta(days=1))
    assert RawFrame.from_json(replayed.to_json()) == replayed
    before = orjson.loads(raw.to_json())
    del before["recorded_at"]  # a record written before the field existed
    assert RawFrame.from_json(orjson.dumps(before)) == raw
    latest = Latest(
        direction="BTC-USD",
        venue="binance",
        value=Decimal("1.10"),
        ts=T,
        received_at=T,
        stale=False,
        reason="preferred venue",
        since=T,
        quotes={"binance": VenueQuote(Decimal("1.10"), T, T, True)},
    )
    assert Latest.from_json(latest.to_json()) == latest
    empty = Latest("*", None, None, None, None, True, "no quote yet", None, {})
    assert Latest.from_json(empty.to_json()) == empty
    status = VenueStatus("binance", "silent", T, None, "no data")
    assert VenueStatus.from_json(status.to_json()) == status


def test_unknown_fields_are_ignored_for_additive_changes() -> None:
    wire = orjson.loads(quote().to_json())
    wire["added_later"] = True
    assert Quote.from_json(orjson.dumps(wire)) == quote()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"value": 1.5}, "Quote.value: expected a string"),
        ({"value": "NaN"}, "Quote.value: not a finite decimal"),
        ({"value": "abc"}, "Quote.value: not a decimal"),
        ({"ts": "yesterday"}, "Quote.ts"),
        ({"ts": "2026-11-24T16:00:00"}, "Quote.ts: time '2026-11-24T16:00:00' has no UTC offset"),
        ({"v": 2}, "unsupported version"),
        ({"id": None}, "Quote.id: expected a string"),
        ({"derived_from": [1]}, "Quote.derived_from"),
    ],
)
def test_malformed_quotes_name_the_field(change: dict[str, object], message: str) -> None:
    wire = orjson.loads(quote().to_json())
    wire.update(change)
    with pytest.raises(RecordError, match=message.replace("(", r"\(")):
        Quote.from_json(orjson.dumps(wire))


def test_not_json_and_not_an_object() -> None:
    with pytest.raises(RecordError, match="not JSON"):
        Quote.from_json(b"{oops")
    with pytest.raises(RecordError, match="expected a JSON object"):
        Quote.from_json(b"[1, 2]")
    wire = orjson.loads(quote().to_json())
    del wire["venue"]
    with pytest.raises(RecordError, match=r"Quote\.venue: missing"):
        Quote.from_json(orjson.dumps(wire))


def test_venue_status_state_is_checked() -> None:
    wire = orjson.loads(VenueStatus("binance", "up", T, T).to_json())
    wire["state"] = "sleepy"
    with pytest.raises(RecordError, match="state"):
        VenueStatus.from_json(orjson.dumps(wire))


def test_a_change_record_carries_the_chosen_quote_and_merges_onto_the_last_one() -> None:
    def vq(value: str) -> VenueQuote:
        return VenueQuote(Decimal(value), T, T, True)

    full = Latest(
        "BTC-USD", "binance", Decimal("1"), T, T, False, "preferred", T,
        {"binance": vq("1"), "kraken": vq("2"), "okx": vq("3")},
    )  # fmt: skip
    newer = Latest(
        "BTC-USD", "binance", Decimal("1.5"), T, T, False, "preferred", T,
        {"binance": vq("1.5"), "kraken": vq("2.5"), "okx": vq("3")},
    )  # fmt: skip
    change = newer.change()
    wire = orjson.loads(change.to_json())
    assert wire["quotes_complete"] is False and list(wire["quotes"]) == ["binance"]
    decoded = Latest.from_json(change.to_json())
    assert decoded == change
    merged = decoded.onto(full)
    assert merged.quotes_complete and merged.value == Decimal("1.5")
    assert merged.quotes == {"binance": vq("1.5"), "kraken": vq("2"), "okx": vq("3")}
    assert decoded.onto(None) is decoded  # nothing to merge onto yet
    assert full.onto(newer) is full  # a complete record stands alone
    legacy = {k: v for k, v in orjson.loads(full.to_json()).items() if k != "quotes_complete"}
    assert Latest.from_json(orjson.dumps(legacy)).quotes_complete  # older records: complete
    with pytest.raises(RecordError, match="quotes_complete"):
        Latest.from_json(orjson.dumps({**legacy, "quotes_complete": "no"}))
