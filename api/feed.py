"""Follows rates.latest into the snapshot: read back the recent tail, then keep up."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from api import metrics
from api.settings import ApiSettings
from api.snapshot import Snapshot
from schemas.errors import RecordError
from schemas.records import Latest

log = logging.getLogger(__name__)


def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    # Known from the metadata fetched at start; a topic created later needs a new consumer.
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


async def follow(settings: ApiSettings, snapshot: Snapshot) -> None:
    """Keep the snapshot current forever; Kafka errors are logged and retried."""
    topic = settings.topics.latest
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        try:
            await consumer.start()
            tps = _partitions(consumer, topic)
            if not tps:
                log.info("waiting for topic %s to exist", topic)
                await asyncio.sleep(1.0)
                continue
            consumer.assign(tps)
            # Tansu never compacts: rebuild from the recent tail, not from offset 0. Every
            # key is republished each second, so the tail always holds all of them.
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - settings.api_snapshot_tail))
            log.info("following %s (%d partitions)", topic, len(tps))
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                for records in batch.values():
                    for record in records:
                        try:
                            snapshot.apply(Latest.from_json(record.value))
                        except RecordError as exc:
                            metrics.BAD_RECORDS.inc()
                            log.warning("skipping a bad rates.latest record: %s", exc)
                            continue
                        metrics.RECORDS.inc()
        except KafkaError as exc:
            log.warning("rates.latest feed failed (%s); retrying in 1 s", exc)
            await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
