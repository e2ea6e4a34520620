"""Follows rates.latest and venues.status into the snapshot: the recent tail, then every record.

No consumer group: every API process reads every partition (common/follower.py). Tansu never
compacts, so the snapshot is rebuilt from the recent tail (every key is republished at least
every second, every venue status every 5 s), not from offset 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from contextlib import aclosing

from api import metrics
from api.settings import ApiSettings
from api.snapshot import Snapshot
from common.follower import Follower
from schemas.errors import RecordError
from schemas.records import Latest, VenueStatus

log = logging.getLogger(__name__)

#: Without records for this long, the feed checks that the broker still accepts connections.
PROBE_AFTER_S = 2.0


class FeedState:
    """What /readyz needs to know about the broker: None while it answers, else why not."""

    def __init__(self) -> None:
        self.broker_error: str | None = None

    def failed(self, exc: Exception) -> None:
        self.broker_error = str(exc) or type(exc).__name__


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
    reader = Follower(
        settings.bootstrap,
        dict.fromkeys((latest, settings.topics.venues_status), settings.api_snapshot_tail),
        name="rates.latest feed",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        on_error=state.failed,
    )
    last_record = last_probe = time.monotonic()
    async with aclosing(reader.fetches()) as fetches:
        async for fetched in fetches:
            now = time.monotonic()
            if fetched.first:
                state.broker_error = None
                last_record = last_probe = now
            for record in fetched.records:
                if record.value is not None:
                    stamp = record.timestamp if record.timestamp > 0 else int(time.time() * 1000)
                    apply(snapshot, record.topic, record.value, stamp, latest)
            if fetched.records:
                last_record = now
            if now - last_record > PROBE_AFTER_S and now - last_probe > PROBE_AFTER_S:
                # aiokafka retries a lost broker silently: ask the network instead.
                last_probe = now
                state.broker_error = await probe(settings.bootstrap)
            elif fetched.records:
                state.broker_error = None
            age = snapshot.age_s()
            metrics.SNAPSHOT_AGE.set(-1 if age is None else age)
