"""Reading ``ticks.raw.<venue>`` without a consumer group (the recorder, the broker replay)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from pipeline.replay.recording import Entry
from schemas.errors import ConfigError, RecordError
from schemas.records import RawFrame
from schemas.settings import CommonSettings

log = logging.getLogger(__name__)


def raw_consumer(settings: CommonSettings) -> AIOKafkaConsumer:
    """A consumer without a group: partitions are assigned, never committed."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )


async def assign_raw(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    """Assign every partition of ``topics``; ConfigError when none exists."""
    await consumer.topics()  # loads metadata for every topic
    found = []
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            found.append(TopicPartition(topic, partition))
    if not found:
        raise ConfigError(f"no partitions found for {', '.join(topics)}")
    consumer.assign(found)
    return found


def entry_of(message: ConsumerRecord[bytes, bytes]) -> Entry | None:
    """The recording entry of a ticks.raw record; None (logged) for a record that is no RawFrame."""
    try:
        raw = RawFrame.from_json(message.value or b"")
    except RecordError as exc:
        log.warning("skipped a bad record on %s: %s", message.topic, exc)
        return None
    key = message.key.decode("utf-8", "replace") if message.key else raw.venue
    return Entry(key, raw)
