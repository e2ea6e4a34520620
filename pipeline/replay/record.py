"""``rates record``: write the frames of ``ticks.raw.<venue>`` received from now on to a file."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from common.clock import utcnow
from pipeline.replay.raw_topics import assign_raw, entry_of, raw_consumer
from pipeline.replay.recording import Header, RecordingWriter
from pipeline.replay.timing import REORDER_WINDOW_S, Reorder
from schemas.settings import CommonSettings

log = logging.getLogger(__name__)


async def record(
    settings: CommonSettings,
    path: Path,
    venues: Sequence[str],
    duration_s: float | None,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Write the frames received from now on (for ``duration_s``, or until cancelled)."""
    topics = settings.topics
    consumer = raw_consumer(settings)
    await consumer.start()
    try:
        partitions = await assign_raw(consumer, [topics.raw(v) for v in venues])
        # Tansu's ListOffsets(latest) can land a little before the end: frames received
        # before the start are skipped by their received_at below.
        await consumer.seek_to_end(*partitions)
        start = clock()
        end = start + timedelta(seconds=duration_s) if duration_s else None
        header = Header(tuple(venues), start, f"recorded from {topics.raw('*')}")
        writer = RecordingWriter(path, header)
        reorder = Reorder()
        log.info(
            "recording %s to %s%s",
            ", ".join(topics.raw(v) for v in venues),
            path,
            f" for {duration_s:g} s" if duration_s else " until stopped",
        )
        try:
            # Frames received just before the end reach the broker a little later.
            while end is None or clock() < end + timedelta(seconds=REORDER_WINDOW_S):
                found = await consumer.getmany(timeout_ms=200)
                for messages in found.values():
                    for message in messages:
                        entry = entry_of(message)
                        if entry is None or entry.raw.received_at < start:
                            continue
                        if end is not None and entry.raw.received_at >= end:
                            continue
                        writer.write(reorder.push(entry))
        finally:
            writer.write(reorder.drain())
            writer.close()
            log.info("recorded %d frames to %s", writer.count, path)
        return writer.count
    finally:
        await consumer.stop()
