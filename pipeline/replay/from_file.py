"""``rates replay PATH``: publish a recording back to ``ticks.raw.<venue>`` under a prefix."""

from __future__ import annotations

import logging
import sys
import time
from typing import TextIO

from pipeline.replay.publisher import Replayer, advance, progress_bar, replay_producer
from pipeline.replay.recording import Recording
from schemas.settings import CommonSettings
from schemas.topics import Topics

log = logging.getLogger(__name__)


async def replay_file(
    settings: CommonSettings,
    recording: Recording,
    prefix: str,
    speed: float | None,
    stream: TextIO = sys.stderr,
) -> int:
    """Publish a recording under ``prefix``; the number of frames published."""
    target = Topics(prefix)
    producer = replay_producer(settings)
    await producer.start()
    try:
        replayer = Replayer(producer, target, speed, f"replay of {recording.path}")
        started = time.monotonic()
        # Progress in compressed bytes read: known from the start, unlike the frame count.
        with progress_bar(recording.size, "B", stream) as bar:
            count = await replayer.publish(
                recording.entries(), lambda n: advance(bar, recording.position(), n)
            )
            advance(bar, recording.position(), count)
        log.info(
            "replayed %d frames from %s into %s in %.1f s%s",
            count,
            recording.path,
            target.raw("*"),
            time.monotonic() - started,
            " (the recording is truncated)" if recording.truncated else "",
        )
        return count
    finally:
        await producer.stop()
