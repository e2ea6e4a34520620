"""Record raw frames to a file and replay them (from a file, or from the broker by time).

A recording is gzip-compressed JSON lines: a header (``{"recording": 1, "venues": [...],
"started_at": ...}``), then one line per frame with its Kafka key and its RawFrame, in
``received_at`` order. A replay publishes the frames back to ``ticks.raw.<venue>`` with a
fresh ``received_at`` (the original is kept as ``recorded_at``), so the same agents
normalize them again and freshness works as live; its pacing follows the original
inter-arrival times divided by the speed.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import itertools
import logging
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, TextIO

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndTimestamp

from common.clock import utcnow
from schemas.errors import BrokerUnavailable, ConfigError, RecordError
from schemas.records import RawFrame, VenueState, VenueStatus, format_time, parse_time
from schemas.settings import CommonSettings
from schemas.topics import Topics

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Frames from several partitions arrive interleaved; the recorder holds each this long to
#: write them in ``received_at`` order.
REORDER_WINDOW_S = 1.0
#: Broker append time follows the receive time by the connector's publish delay: the
#: window read from the broker ends this much after ``--until``.
APPEND_SLACK_S = 5.0
#: The replayer republishes each venue's state this often (a connector does at least every 5 s).
STATUS_EVERY_S = 1.0


# -- the file format (pure) -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded frame and the Kafka key it was published with."""

    key: str
    raw: RawFrame


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of a recording."""

    venues: tuple[str, ...]
    started_at: datetime
    note: str = ""

    def to_json(self) -> bytes:
        return orjson.dumps(
            {
                "recording": FORMAT_VERSION,
                "venues": list(self.venues),
                "started_at": format_time(self.started_at),
                "note": self.note,
            }
        )


def encode_entry(entry: Entry) -> bytes:
    return orjson.dumps({"key": entry.key, "raw": entry.raw.to_dict()})


def decode_header(line: bytes | str) -> Header:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict) or data.get("recording") != FORMAT_VERSION:
            raise ValueError(f"not a recording header (expected recording={FORMAT_VERSION})")
        venues = data["venues"]
        if not isinstance(venues, list) or not all(isinstance(v, str) for v in venues):
            raise ValueError("venues: expected a list of names")
        return Header(tuple(venues), parse_time(data["started_at"]), str(data.get("note", "")))
    except (orjson.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
        raise RecordError(f"line 1: {exc}") from None


def decode_entry(line: bytes | str, number: int) -> Entry:
    try:
        data = orjson.loads(line)
        if not isinstance(data, dict) or not isinstance(data.get("key"), str):
            raise RecordError('expected {"key": ..., "raw": {...}}')
        return Entry(data["key"], RawFrame.from_json(data["raw"]))
    except (orjson.JSONDecodeError, RecordError, KeyError) as exc:
        raise RecordError(f"line {number}: {exc}") from None


class Reorder:
    """Releases entries in ``received_at`` order, each once ``window_s`` older than the newest."""

    def __init__(self, window_s: float = REORDER_WINDOW_S) -> None:
        self._window = timedelta(seconds=window_s)
        self._heap: list[tuple[datetime, int, Entry]] = []
        self._seq = itertools.count()
        self._newest: datetime | None = None

    def push(self, entry: Entry) -> list[Entry]:
        at = entry.raw.received_at
        heapq.heappush(self._heap, (at, next(self._seq), entry))
        if self._newest is None or at > self._newest:
            self._newest = at
        ready = []
        while self._heap and self._heap[0][0] <= self._newest - self._window:
            ready.append(heapq.heappop(self._heap)[2])
        return ready

    def drain(self) -> list[Entry]:
        ready = [heapq.heappop(self._heap)[2] for _ in range(len(self._heap))]
        self._newest = None
        return ready


def parse_speed(text: str) -> float | None:
    """``max`` -> None (no pacing); ``N`` -> N (> 0)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"expected a positive number or 'max', got {text!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f"expected a positive number or 'max', got {text!r}")
    return speed


class Pacer:
    """When each frame is due: its original offset from the first frame, divided by speed."""

    def __init__(self, speed: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.speed = speed
        self._clock = clock
        self._first: datetime | None = None
        self._start = 0.0

    def delay(self, received_at: datetime) -> float:
        """Seconds to wait before publishing a frame received (originally) at ``received_at``."""
        if self.speed is None:
            return 0.0
        if self._first is None:
            self._first, self._start = received_at, self._clock()
            return 0.0
        due = self._start + (received_at - self._first).total_seconds() / self.speed
        return max(0.0, due - self._clock())


def replayed(raw: RawFrame, now: datetime) -> RawFrame:
    """The frame as replayed now: fresh ``received_at``, the original kept as ``recorded_at``."""
    return replace(raw, received_at=now, recorded_at=raw.recorded_at or raw.received_at)


def clamp_start(found: OffsetAndTimestamp | None) -> int | None:
    """The first offset at or after a time, or None when the partition has nothing after it.

    Kafka answers None for a time after the last record; Tansu answers offset 0 with
    timestamp -1, which a naive replay would take as "from the beginning".
    """
    if found is None or found.timestamp < 0:
        return None
    return int(found.offset)


# -- reading and writing recordings ---------------------------------------------------------


class Recording:
    """Reads a recording: its header, then its entries in order (with progress by bytes read)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._raw: IO[bytes] = open(path, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise ConfigError(f"recording {path}: {exc.strerror}") from None
        self._size = max(1, path.stat().st_size)
        self._gz = gzip.GzipFile(fileobj=self._raw, mode="rb")
        try:
            first = self._gz.readline()
        except (OSError, EOFError) as exc:
            self.close()
            raise ConfigError(f"recording {path}: not a gzip file ({exc})") from None
        try:
            self.header = decode_header(first)
        except RecordError as exc:
            self.close()
            raise ConfigError(f"recording {path}: {exc}") from None
        self.truncated = False

    def progress(self) -> float:
        return min(1.0, self._raw.tell() / self._size)

    def entries(self) -> Iterator[Entry]:
        number = 1
        while True:
            try:
                line = self._gz.readline()
            except (EOFError, OSError) as exc:  # a recorder killed mid-write
                self.truncated = True
                log.warning("recording %s ends abruptly after line %d (%s)", self.path, number, exc)
                return
            if not line:
                return
            number += 1
            if line.strip():
                yield decode_entry(line, number)

    def close(self) -> None:
        self._gz.close()
        self._raw.close()


class RecordingWriter:
    """Writes a recording (gzip JSON lines); refuses to overwrite an existing file."""

    def __init__(self, path: Path, header: Header) -> None:
        try:
            self._file = gzip.open(path, "xb")  # noqa: SIM115 - closed by close()
        except FileExistsError:
            raise ConfigError(f"{path} exists: choose another PATH or remove it") from None
        except OSError as exc:
            raise ConfigError(f"cannot write {path}: {exc.strerror}") from None
        self._file.write(header.to_json() + b"\n")
        self.count = 0

    def write(self, entries: Iterable[Entry]) -> None:
        for entry in entries:
            self._file.write(encode_entry(entry) + b"\n")
            self.count += 1

    def close(self) -> None:
        self._file.close()


# -- progress on a terminal -----------------------------------------------------------------


class Progress:
    """A one-line progress bar, shown only when the stream is a terminal."""

    def __init__(self, label: str, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.label = label
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()
        self._shown = 0.0
        self._started = time.monotonic()

    def update(self, fraction: float, frames: int, force: bool = False) -> None:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._shown < 0.1):
            return
        self._shown = now
        fraction = min(1.0, max(0.0, fraction))
        filled = round(fraction * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(
            f"\r{self.label} [{bar}] {fraction:4.0%} {frames} frames {now - self._started:.1f} s"
        )
        self.stream.flush()

    def done(self, frames: int) -> None:
        if self.enabled:
            self.update(1.0, frames, force=True)
            self.stream.write("\n")
            self.stream.flush()


# -- recording from the broker --------------------------------------------------------------


async def _assign_raw(consumer: AIOKafkaConsumer, topics: Sequence[str]) -> list[TopicPartition]:
    await consumer.topics()  # loads metadata for every topic
    found = []
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            found.append(TopicPartition(topic, partition))
    if not found:
        raise ConfigError(f"no partitions found for {', '.join(topics)}")
    consumer.assign(found)
    return found


def _consumer(settings: CommonSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap,
        enable_auto_commit=False,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
    )


def _entry(message: Any) -> Entry | None:
    try:
        raw = RawFrame.from_json(message.value or b"")
    except RecordError as exc:
        log.warning("skipped a bad record on %s: %s", message.topic, exc)
        return None
    key = message.key.decode("utf-8", "replace") if message.key else raw.venue
    return Entry(key, raw)


async def record(
    settings: CommonSettings,
    path: Path,
    venues: Sequence[str],
    duration_s: float | None,
    clock: Callable[[], datetime] = utcnow,
) -> int:
    """Write the frames received from now on (for ``duration_s``, or until cancelled)."""
    topics = settings.topics
    consumer = _consumer(settings)
    await consumer.start()
    try:
        partitions = await _assign_raw(consumer, [topics.raw(v) for v in venues])
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
                        entry = _entry(message)
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


# -- reading the broker by time -------------------------------------------------------------


def _millis(at: datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class _Partition:
    tp: TopicPartition
    end: int | None  # first offset past the window; None: read until caught up
    buffer: deque[Entry] = field(default_factory=deque)
    done: bool = False


async def read_window(
    consumer: AIOKafkaConsumer,
    topics: Sequence[str],
    since: datetime,
    until: datetime,
) -> AsyncIterator[Entry]:
    """Frames with ``since <= received_at < until``, merged across partitions in time order.

    The broker finds the offsets by its append time (on Tansu at batch granularity), which
    follows the receive time by the connector's publish delay; the frames' own
    ``received_at`` decides what is in the window.
    """
    partitions = await _assign_raw(consumer, topics)
    past = until + timedelta(seconds=APPEND_SLACK_S)
    starts = await consumer.offsets_for_times({tp: _millis(since) for tp in partitions})
    ends = await consumer.offsets_for_times({tp: _millis(past) for tp in partitions})
    active: list[_Partition] = []
    for tp in partitions:
        start = clamp_start(starts.get(tp))
        if start is None:
            continue  # nothing in this partition was appended after `since`
        consumer.seek(tp, start)
        active.append(_Partition(tp, clamp_start(ends.get(tp))))
    while active:
        needy = [p for p in active if not p.buffer]
        if needy:
            found = await consumer.getmany(*(p.tp for p in needy), timeout_ms=200, max_records=2000)
            for part in needy:
                for message in found.get(part.tp, []):
                    entry = _entry(message)
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
            active = [p for p in active if p.buffer or not p.done]
            if any(not p.buffer for p in active):
                continue  # every partition must show its next frame before one is chosen
        if active:
            first = min(active, key=lambda p: p.buffer[0].raw.received_at)
            yield first.buffer.popleft()
            active = [p for p in active if p.buffer or not p.done]


# -- publishing -----------------------------------------------------------------------------


class Replayer:
    """Publishes entries to ``ticks.raw.<venue>`` under a topic prefix, paced by speed.

    It also publishes each replayed venue's state to ``venues.status`` (``up`` while its
    frames flow, ``down`` at the end), as a connector would.
    """

    def __init__(
        self,
        producer: AIOKafkaProducer,
        topics: Topics,
        speed: float | None,
        source: str,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.producer = producer
        self.topics = topics
        self.speed = speed
        self.source = source
        self.clock = clock
        self.count = 0
        self._deliveries: list[asyncio.Future[Any]] = []
        self._last_frame: dict[str, datetime] = {}
        self._status_at = 0.0
        self._started = clock()

    async def publish(
        self, entries: AsyncIterator[Entry] | Iterable[Entry], progress: Callable[[int], None]
    ) -> int:
        pacer = Pacer(self.speed)
        self._started = self.clock()
        async for entry in _aiter(entries):
            delay = pacer.delay(entry.raw.received_at)
            if delay > 0:
                await asyncio.sleep(delay)
            raw = replayed(entry.raw, self.clock())
            self._deliveries.append(
                await self.producer.send(
                    self.topics.raw(raw.venue), key=entry.key.encode(), value=raw.to_json()
                )
            )
            self.count += 1
            self._last_frame[raw.venue] = raw.received_at
            if len(self._deliveries) >= 5000:
                await self._settle()
            if time.monotonic() - self._status_at >= STATUS_EVERY_S:
                await self._status("up", self.source)
            progress(self.count)
        await self._status("down", f"{self.source} finished")
        await self._settle()
        return self.count

    async def _status(self, state: VenueState, detail: str) -> None:
        self._status_at = time.monotonic()
        since = self._started if state == "up" else self.clock()
        for venue, last in self._last_frame.items():
            status = VenueStatus(venue, state, since, last, detail)
            self._deliveries.append(
                await self.producer.send(
                    self.topics.venues_status, key=venue.encode(), value=status.to_json()
                )
            )

    async def _settle(self) -> None:
        pending, self._deliveries = self._deliveries, []
        await self.producer.flush()
        for delivery in pending:
            exc = delivery.exception()
            if exc is not None:
                raise BrokerUnavailable(f"the broker did not accept a replayed frame: {exc}")


async def _aiter(entries: AsyncIterator[Entry] | Iterable[Entry]) -> AsyncIterator[Entry]:
    if isinstance(entries, AsyncIterator):
        async for entry in entries:
            yield entry
        return
    for number, entry in enumerate(entries):
        yield entry
        if number % 500 == 499:
            await asyncio.sleep(0)  # reading a file never blocks: let the producer run


def _producer(settings: CommonSettings) -> AIOKafkaProducer:
    options = settings.producer_options()
    # Big batches at full speed (aiokafka sends one request per partition at a time, so
    # the default 16 KiB caps a replay at a few thousand frames/s); a few ms of delay at 1x.
    options.update(linger_ms=5, max_batch_size=1 << 20)
    return AIOKafkaProducer(bootstrap_servers=settings.bootstrap, **options)


async def replay_file(
    settings: CommonSettings,
    recording: Recording,
    prefix: str,
    speed: float | None,
    stream: TextIO = sys.stderr,
) -> int:
    """Publish a recording under ``prefix``; the number of frames published."""
    producer = _producer(settings)
    await producer.start()
    progress = Progress("replay", stream)
    try:
        replayer = Replayer(producer, Topics(prefix), speed, f"replay of {recording.path}")
        started = time.monotonic()
        count = await replayer.publish(
            recording.entries(), lambda n: progress.update(recording.progress(), n)
        )
        progress.done(count)
        log.info(
            "replayed %d frames from %s into %s in %.1f s%s",
            count,
            recording.path,
            Topics(prefix).raw("*"),
            time.monotonic() - started,
            " (the recording is truncated)" if recording.truncated else "",
        )
        return count
    finally:
        await producer.stop()


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
    source = settings.topics
    now = utcnow()
    if until > now:
        log.info("--until is in the future: replaying up to now (%s)", format_time(now))
        until = now
    if Topics(prefix).raw("x") == source.raw("x"):
        raise ConfigError(
            f"--topic-prefix {prefix!r} is the prefix read from: a replay from the broker "
            "must go to other topics"
        )
    consumer = _consumer(settings)
    producer = _producer(settings)
    await consumer.start()
    await producer.start()
    progress = Progress("replay", stream)
    span = max(1e-6, (until - since).total_seconds())
    try:
        replayer = Replayer(producer, Topics(prefix), speed, f"replay of {source.raw('*')}")
        entries = read_window(consumer, [source.raw(v) for v in venues], since, until)
        last: list[datetime] = [since]

        def tick(count: int) -> None:
            progress.update((last[0] - since).total_seconds() / span, count)

        async def tracked() -> AsyncIterator[Entry]:
            async for entry in entries:
                last[0] = entry.raw.received_at
                yield entry

        count = await replayer.publish(tracked(), tick)
        progress.done(count)
        log.info(
            "replayed %d frames received %s .. %s from %s into %s",
            count,
            format_time(since),
            format_time(until),
            source.raw("*"),
            Topics(prefix).raw("*"),
        )
        return count
    except KafkaError as exc:
        raise BrokerUnavailable(f"replay from the broker failed: {exc}") from None
    finally:
        await consumer.stop()
        await producer.stop()
