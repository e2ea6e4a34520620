"""The published JSON Schemas accept what the code writes and reject what it would refuse."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import jsonschema
import orjson
import pytest

from schemas import schema_files
from schemas.records import Latest, Leg, Quote, RawFrame, VenueQuote, VenueStatus

T = datetime(2026, 11, 24, 16, 0, 0, 123456, tzinfo=UTC)
LEGS = (Leg("kraken", "BTC-USD", Decimal("95000.1"), T), Leg("cbr", "USD-RUB", Decimal("81.5"), T))
RECORDS: list[tuple[str, Any]] = [
    ("ticks.raw.binance", RawFrame("binance", T, '{"e": "trade"}', "binance-1")),
    ("rates.normalized", Quote("kraken", "BTC-RUB", Decimal("7742508.15"), T, T, "k", LEGS)),
    ("rates.reference", Quote("cbr", "USD-RUB", Decimal("81.5"), T, T, "cbr:USD")),
    (
        "rates.latest",
        Latest(
            "BTC-USD", "kraken", Decimal("1.5"), T, T, False, "preferred", T,
            {"kraken": VenueQuote(Decimal("1.5"), T, T, True)}, LEGS,
        ),
    ),
    (
        "rates.latest",
        Latest(
            "BTC-USD", "kraken", Decimal("1.5"), T, T, False, "preferred", T,
            {"kraken": VenueQuote(Decimal("1.5"), T, T, True),
             "okx": VenueQuote(Decimal("1.6"), T, T, True)},
        ).change(),
    ),
    ("rates.latest", Latest("*", "kraken", None, None, None, False, "fresh in 8 of 8", T)),
    ("venues.status", VenueStatus("kraken", "up", T, T, "receiving data")),
]  # fmt: skip


def validate(topic: str, document: Any) -> None:
    schema = schema_files.for_topic(topic)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.Draft202012Validator(schema).validate(document)


@pytest.mark.parametrize(("topic", "record"), RECORDS)
def test_records_written_by_the_code_validate(topic: str, record: Any) -> None:
    validate(topic, orjson.loads(record.to_json()))


@pytest.mark.parametrize(
    ("topic", "change"),
    [
        ("rates.normalized", {"value": 1.5}),
        ("rates.normalized", {"value": "-1"}),
        ("rates.normalized", {"ts": "2026-11-24 16:00"}),
        ("rates.normalized", {"v": 2}),
        ("rates.normalized", {"direction": "btc-usd"}),
        ("venues.status", {"state": "sleepy"}),
        ("ticks.raw.binance", {"frame": {"parsed": True}}),
    ],
)
def test_malformed_records_do_not_validate(topic: str, change: dict[str, Any]) -> None:
    record = next(r for t, r in RECORDS if t == topic)
    document = {**orjson.loads(record.to_json()), **change}
    with pytest.raises(jsonschema.ValidationError):
        validate(topic, document)


def test_every_topic_has_a_schema() -> None:
    from schemas.topics import Topics

    for topic in Topics("p.").all(["binance"]):
        assert schema_files.for_topic(topic, "p.")["type"] == "object"
