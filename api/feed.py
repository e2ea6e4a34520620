"""Follows rates.latest and venues.status into the snapshot: the recent tail, then every record.

No consumer group: every API process reads every partition. Tansu never compacts, so the
snapshot is rebuilt from the recent tail (every key is republished at least every second,
every venue status every 5 s), not from offset 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from api import metrics
from api.settings import ApiSettings
from api.snapshot import Snapshot
from schemas.errors import RecordError
from schemas.records import Latest, VenueStatus

log = logging.getLogger(__name__)

#: Without records for this long, the feed checks that the broker still accepts connections.
PROBE_AFTER_S = 2.0


class FeedState:
    """What /readyz needs to know about the broker: None while it answers, else why not."""

    def __init__(self) -> None:
        self.broker_error: str | None = None


async def probe(bootstrap: str, timeout_s: float = 1.0) -> str | None:
    """None when some bootstrap server accepts a TCP connection, else the last error."""
    error = "no bootstrap server"
    for server in bootstrap.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host.strip("[]"), int(port)), timeout_s
            )
        except (OSError, TimeoutError) as exc:
            error = f"{server}: {exc or type(exc).__name__}"
            continue
        writer.close()
        return None
    return error


def _partitions(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    """Every partition of the topics, or [] while one is missing.

    Known from the metadata fetched at start; a topic created later needs a new consumer.
    """
    found = {topic: consumer.partitions_for_topic(topic) for topic in topics}
    missing = [topic for topic, parts in found.items() if not parts]
    if missing:
        log.info("waiting for topic %s to exist", ", ".join(missing))
        return []
    return [TopicPartition(t, p) for t, parts in found.items() for p in sorted(parts or ())]


def apply(snapshot: Snapshot, topic: str, value: bytes, stamp_ms: int, latest: str) -> None:
    """Decode one record into the snapshot; a bad record is counted, logged and skipped."""
    try:
        if topic == latest:
            changed = snapshot.apply(Latest.from_json(value), stamp_ms)
            metrics.RECORDS.inc()
        else:
            changed = snapshot.apply_status(VenueStatus.from_json(value), stamp_ms)
    except RecordError as exc:
        metrics.BAD_RECORDS.labels(topic).inc()
        log.warning("skipping a bad %s record: %s", topic, exc)
        return
    if changed:
        metrics.CHANGES.inc()


async def follow(settings: ApiSettings, snapshot: Snapshot, state: FeedState) -> None:
    """Keep the snapshot current forever; Kafka errors are logged and retried."""
    latest = settings.topics.latest
    topics = (latest, settings.topics.venues_status)
    while True:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        )
        try:
            await consumer.start()
            tps = _partitions(consumer, topics)
            if not tps:
                await asyncio.sleep(1.0)
                continue
            consumer.assign(tps)
            # end_offsets() under-reports on Tansu by a batch at most: the tail is generous.
            ends = await consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(0, ends[tp] - settings.api_snapshot_tail))
            state.broker_error = None
            log.info("following %s (%d partitions)", ", ".join(topics), len(tps))
            last_record = last_probe = time.monotonic()
            while True:
                batch = await consumer.getmany(timeout_ms=1000, max_records=5000)
                now = time.monotonic()
                for tp, records in batch.items():
                    for record in records:
                        if record.value is None:
                            continue
                        stamp = (
                            record.timestamp if record.timestamp > 0 else int(time.time() * 1000)
                        )
                        apply(snapshot, tp.topic, record.value, stamp, latest)
                    last_record = now
                if now - last_record > PROBE_AFTER_S and now - last_probe > PROBE_AFTER_S:
                    # aiokafka retries a lost broker silently: ask the network instead.
                    last_probe = now
                    state.broker_error = await probe(settings.bootstrap)
                elif batch:
                    state.broker_error = None
                age = snapshot.age_s()
                metrics.SNAPSHOT_AGE.set(-1 if age is None else age)
        except KafkaError as exc:
            state.broker_error = str(exc) or type(exc).__name__
            log.warning("rates.latest feed failed (%s); retrying in 1 s", state.broker_error)
            await asyncio.sleep(1.0)
        finally:
            await consumer.stop()
