"""``rates replay --from-kafka``: re-publish the frames the broker received in a time window.

The broker finds offsets by its append time (``offsets_for_times``; on Tansu at batch
granularity), which follows the receive time by the connector's publish delay; the frames'
own ``received_at`` decides what is in the window. Partitions are merged in
``received_at`` order.
"""

from __future__ import annotations

import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndTimestamp

from common.clock import utcnow
from pipeline.replay.publisher import Replayer, advance, progress_bar, replay_producer
from pipeline.replay.raw_topics import assign_raw, entry_of, raw_consumer
from pipeline.replay.recording import Entry
from schemas.errors import BrokerUnavailable, ConfigError
from schemas.records import format_time
from schemas.settings import CommonSettings
from schemas.topics import Topics

log = logging.getLogger(__name__)

#: Broker append time follows the receive time by the connector's publish delay: the
#: window read from the broker ends this much after ``--until``.
APPEND_SLACK_S = 5.0


def clamp_start(found: OffsetAndTimestamp | None) -> int | None:
    """The first offset at or after a time, or None when the partition has nothing after it.

    Kafka answers None for a time after the last record; Tansu answers offset 0 with
    timestamp -1, which a naive replay would take as "from the beginning".
    """
    if found is None or found.timestamp < 0:
        return None
    return int(found.offset)


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class _Partition:
    tp: TopicPartition
    end: int | None  # first offset past the window; None: read until caught up
    buffer: deque[Entry] = field(default_factory=deque)
    done: bool = False


async def _seek_window(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition], since: datetime, past: datetime
) -> list[_Partition]:
    """Seek each partition to ``since``; those with nothing appended after it are left out."""
    starts = await consumer.offsets_for_times({tp: _millis(since) for tp in partitions})
    ends = await consumer.offsets_for_times({tp: _millis(past) for tp in partitions})
    active = []
    for tp in partitions:
        start = clamp_start(starts.get(tp))
        if start is None:
            continue
        consumer.seek(tp, start)
        active.append(_Partition(tp, clamp_start(ends.get(tp))))
    return active


async def _fill(
    consumer: AIOKafkaConsumer,
    needy: list[_Partition],
    since: datetime,
    until: datetime,
    past: datetime,
) -> None:
    """Fetch for partitions with an empty buffer: buffer what is in the window, mark the ends."""
    found = await consumer.getmany(*(p.tp for p in needy), timeout_ms=200, max_records=2000)
    for part in needy:
        for message in found.get(part.tp, []):
            entry = entry_of(message)
            beyond = part.end is not None and message.offset >= part.end
            if beyond or (entry is not None and entry.raw.received_at >= past):
                part.done = True
                break
            if entry is not None and since <= entry.raw.received_at < until:
                part.buffer.append(entry)
        position = await consumer.position(part.tp)
        highwater = consumer.highwater(part.tp)
        caught_up = part.tp not in found and highwater is not None and position >= highwater
        if caught_up or (part.end is not None and position >= part.end):
            part.done = True


async def read_window(
    consumer: AIOKafkaConsumer,
    topics: Sequence[str],
    since: datetime,
    until: datetime,
) -> AsyncIterator[Entry]:
    """Frames with ``since <= received_at < until``, merged across partitions in time order."""
    partitions = await assign_raw(consumer, topics)
    past = until + timedelta(seconds=APPEND_SLACK_S)
    active = await _seek_window(consumer, partitions, since, past)
    while active:
        needy = [p for p in active if not p.buffer]
        if needy:
            await _fill(consumer, needy, since, until, past)
            active = [p for p in active if p.buffer or not p.done]
            if any(not p.buffer for p in active):
                continue  # every partition must show its next frame before one is chosen
        if active:
            first = min(active, key=lambda p: p.buffer[0].raw.received_at)
            yield first.buffer.popleft()
            active = [p for p in active if p.buffer or not p.done]


async def oldest_frame(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition]
) -> datetime | None:
    """The receive time of the oldest frame the broker still holds (None: it holds none)."""
    oldest: datetime | None = None
    for tp in partitions:
        await consumer.seek_to_beginning(tp)
        found = await consumer.getmany(tp, timeout_ms=300, max_records=1)
        for message in found.get(tp, []):
            entry = entry_of(message)
            if entry is not None and (oldest is None or entry.raw.received_at < oldest):
                oldest = entry.raw.received_at
    return oldest


def empty_window(since: datetime, until: datetime, oldest: datetime | None) -> str:
    """Why a window replayed nothing, in plain words."""
    window = f"{format_time(since)} .. {format_time(until)}"
    if oldest is None:
        return f"no frame to replay in {window}: the broker holds no frame of these venues"
    if until <= oldest:
        return (
            f"no frame to replay in {window}: the broker's oldest frame was received at "
            f"{format_time(oldest)}; older ones are gone (the broker started, or was "
            "restarted or recycled, after the window: the embedded one keeps nothing across "
            "restarts)"
        )
    return f"no frame to replay in {window}: none was received then"


async def replay_broker(
    settings: CommonSettings,
    venues: Sequence[str],
    since: datetime,
    until: datetime,
    prefix: str,
    speed: float | None,
    stream: TextIO = sys.stderr,
) -> int:
    """Re-publish the frames received between two times under ``prefix``."""
    source, target = settings.topics, Topics(prefix)
    now = utcnow()
    if since >= now:
        raise ConfigError(
            f"--since {format_time(since)} is in the future (now {format_time(now)}): "
            "nothing has been received yet"
        )
    if until > now:
        log.info("--until is in the future: replaying up to now (%s)", format_time(now))
        until = now
    if target.raw("x") == source.raw("x"):
        raise ConfigError(
            f"--topic-prefix {prefix!r} is the prefix read from: a replay from the broker "
            "must go to other topics"
        )
    consumer = raw_consumer(settings)
    producer = replay_producer(settings)
    await consumer.start()
    await producer.start()
    span = max(1e-6, (until - since).total_seconds())
    try:
        replayer = Replayer(producer, target, speed, f"replay of {source.raw('*')}")
        entries = read_window(consumer, [source.raw(v) for v in venues], since, until)
        # Progress in seconds of the window covered (the frame count is not known up front).
        with progress_bar(span, "s", stream) as bar:
            covered = [0.0]

            async def tracked() -> AsyncIterator[Entry]:
                async for entry in entries:
                    covered[0] = (entry.raw.received_at - since).total_seconds()
                    yield entry

            count = await replayer.publish(tracked(), lambda n: advance(bar, covered[0], n))
            advance(bar, span, count)
        if count == 0:
            partitions = list(consumer.assignment())
            raise ConfigError(empty_window(since, until, await oldest_frame(consumer, partitions)))
        log.info(
            "replayed %d frames received %s .. %s from %s into %s",
            count,
            format_time(since),
            format_time(until),
            source.raw("*"),
            target.raw("*"),
        )
        return count
    except KafkaError as exc:
        raise BrokerUnavailable(f"replay from the broker failed: {exc}") from None
    finally:
        await consumer.stop()
        await producer.stop()
