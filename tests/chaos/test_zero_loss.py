"""Nothing lost: read after every fault of the tier (this module sorts last).

Every quote of every well-formed frame the connector published, through silence, storms,
refusals, rate limits, bad frames and a killed worker, reached rates.normalized.
"""

from __future__ import annotations

import time

import orjson
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from connectors import registry
from connectors.venues.base import MarketQuote
from pipeline.normalize import Conversion
from schemas.errors import FrameError
from schemas.records import parse_time
from schemas.settings import DEFAULT_DIRECTIONS
from tests.chaos.stack import Stack
from tests.reliability import Row

#: The venues whose raw topics are read back: the active one and a JSON-number one.
VENUES = ("binance", "kraken")


def read_fast(bootstrap: str, topics: list[str], timeout_s: float = 60) -> list[bytes]:
    """Every record's value in these topics up to where each partition ends now.

    confluent-kafka (librdkafka, in C) reads the tier's few hundred thousand records in
    seconds where aiokafka takes a minute; assigned partitions, so no group is joined.
    """
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        found = consumer.list_topics(timeout=10).topics
        parts = [
            TopicPartition(t, p, OFFSET_BEGINNING) for t in topics for p in found[t].partitions
        ]
        consumer.assign(parts)
        pending = {(p.topic, p.partition) for p in parts}
        values: list[bytes] = []
        deadline = time.monotonic() + timeout_s
        idle_since = time.monotonic()
        # The end: every partition at its end once, or nothing new for 2 s (the topics no
        # longer grow: the connector was stopped first).
        while pending and time.monotonic() - idle_since < 2:
            assert time.monotonic() < deadline, f"{topics} not read to their end: {pending}"
            for message in consumer.consume(10_000, timeout=0.2):
                error = message.error()
                if error is None:
                    values.append(message.value() or b"")
                    idle_since = time.monotonic()
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard((message.topic(), message.partition()))
                else:
                    raise AssertionError(error)
        return values
    finally:
        consumer.close()


def test_nothing_published_was_lost(chaos: Stack) -> None:
    """Every quote of every well-formed frame the connector published reached the pipeline
    (three venues' topics are read back: one of each kind of protocol and failover role)."""
    assert chaos.connector.stop() == 0  # the topics stop growing (the tier ends here)
    time.sleep(3)  # the last frames through the workers
    conversion = Conversion(DEFAULT_DIRECTIONS)
    topics = [chaos.topics.raw(v) for v in VENUES]
    expected: set[str] = set()
    received: dict[str, float] = {}
    frames = errors = 0
    for value in read_fast(chaos.kafka, topics):
        raw = orjson.loads(value)
        received_at = parse_time(raw["received_at"])
        venue = registry.VENUES[raw["venue"]]
        plan = conversion.plan(frozenset(venue.markets.values()))
        frames += 1
        try:
            quotes: list[MarketQuote] = venue.parse(raw["frame"], received_at)
        except FrameError:
            errors += 1
            continue
        ids = {f"{q.id}/" for q in quotes if q.market in plan}
        expected |= ids
        received.update(dict.fromkeys(ids, received_at.timestamp()))
    # The workers may still be catching up on a busy machine: read again until they have.
    deadline = time.monotonic() + 60
    while True:
        normalized = {
            orjson.loads(value)["id"].rsplit("/", 1)[0] + "/"
            for value in read_fast(chaos.kafka, [chaos.topics.normalized])
        }
        missing = expected - normalized
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert expected
    # Quotes the killed worker had in flight (received from 10 s before its kill to 30 s
    # after) are reported in its row; any other missing quote fails the test.
    killed = chaos.marks.get("worker killed", 0.0)
    in_flight = {q for q in missing if killed - 10 <= received[q] <= killed + 30}
    elsewhere = missing - in_flight
    assert not elsewhere, f"{len(elsewhere)} of {len(expected)}: {sorted(elsewhere)[:10]}"
    for row in chaos.report.rows:
        if row.fault == "kill -9 one of two workers":
            row.lost = f"{len(in_flight)} quotes of {len(expected)}" if in_flight else "none"
    if in_flight:
        print(f"LOST at the worker's kill: {sorted(in_flight)}")
    assert chaos.watch.answers > 20
    assert not chaos.watch.absurd, chaos.watch.absurd[:10]
    chaos.report.add(
        Row(
            "all the faults above, one after the other",
            f"{', '.join(VENUES)}: topics read back",
            f"{frames} frames published ({errors} refused as frame errors): every one of their "
            f"{len(expected)} quotes is in rates.normalized"
            + (f", but {len(in_flight)} in flight when a worker was killed" if in_flight else ""),
            None,
            lost=f"{len(in_flight)} (at the worker's kill)" if in_flight else "none",
        )
    )
