"""Follows rates.latest and venues.status into the snapshot: the recent tail, then every record.

No consumer group: every API process reads every partition (common/follower.py). Tansu never
compacts, so the snapshot is rebuilt from the recent tail (every key is republished at least
every second, every venue status every 5 s), not from offset 0.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
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
    """What the API knows of the broker, for /readyz, v1's silence rule and v2's staleness.

    ``broker_error``: None while the broker answers, else why not. The broker is *away* from
    the moment it stops answering, or turns out to have been replaced (the embedded one
    restarted or was recycled: the pipeline's workers start again on the new one), until
    records flow again: meanwhile the API serves the last values, marked stale in v2.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.broker_error: str | None = None
        self.away_since: float | None = None
        self._why = ""

    def failed(self, exc: Exception) -> None:
        self.unreachable(str(exc) or type(exc).__name__)

    def unreachable(self, error: str) -> None:
        self.broker_error = error
        self._away("the Kafka broker stopped answering")

    def replaced(self) -> None:
        self._away("the Kafka broker was replaced (restarted or recycled)")

    def _away(self, why: str) -> None:
        if self.away_since is None:
            self.away_since = self.clock()
            self._why = why
            log.warning("%s: serving the last rates until the pipeline is back", why)

    def answering(self) -> None:
        """The broker answered; the pipeline may still be on its way back."""
        self.broker_error = None

    def flowing(self) -> None:
        """Records arrived: the broker and the pipeline are back."""
        self.broker_error = None
        if self.away_since is not None:
            log.info("rates flow again after %.1f s", self.clock() - self.away_since)
            self.away_since = None

    def away(self) -> str | None:
        """Why the broker is away (with for how long), or None."""
        if self.away_since is None:
            return None
        return f"{self._why} {self.clock() - self.away_since:.0f} s ago"


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
                state.answering()
                last_record = last_probe = now
            if fetched.replaced:
                state.replaced()
            for record in fetched.records:
                if record.value is not None:
                    stamp = record.timestamp if record.timestamp > 0 else int(time.time() * 1000)
                    apply(snapshot, record.topic, record.value, stamp, latest)
            if any(record.topic == latest for record in fetched.records):
                last_record = now
                state.flowing()
            elif fetched.records:
                state.answering()
            if now - last_record > PROBE_AFTER_S and now - last_probe > PROBE_AFTER_S:
                # aiokafka retries a lost broker silently: ask the network instead.
                last_probe = now
                error = await probe(settings.bootstrap)
                if error is None:
                    state.answering()
                else:
                    state.unreachable(error)
            age = snapshot.age_s()
            metrics.SNAPSHOT_AGE.set(-1 if age is None else age)
