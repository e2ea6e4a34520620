"""What the connector holds for Kafka (pure): records to send, records sent but not yet
confirmed, and what was delivered recently, to send again when the broker is replaced.

A record leaves the outbox only once the broker confirmed it. The embedded broker keeps
everything in memory: when it dies or is recycled, what it held is gone, and the frames it
had not yet passed down the pipeline with it. So delivered records stay for ``window_s``
seconds (and the newest record of each topic and key stays whatever its age: a polled
source's last answer may be the only one for minutes), and when a delivery shows that the
broker was replaced (a partition's offsets went back), they are queued again, oldest first.
Duplicates are harmless downstream: quote ids are deterministic and history writes are
idempotent.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class Record:
    """One record for Kafka, numbered in the order it was received."""

    seq: int
    kind: str  # raw, status
    topic: str
    key: bytes
    value: bytes

    @property
    def size(self) -> int:
        return len(self.key) + len(self.value)


class Delivered(NamedTuple):
    record: Record
    at: float


@dataclass
class Outbox:
    """Records to send (``pending``, and ``retry``: older ones going again), records handed
    to the producer (``inflight``) and records delivered recently (``recent``, ``newest``).

    Bounded: at most ``capacity`` records wait to be sent (the oldest are dropped beyond it),
    at most ``max_inflight`` are handed to the producer at once, and the recent ones are kept
    for ``window_s`` seconds and at most ``window_bytes`` bytes.
    """

    capacity: int = 50_000
    window_s: float = 30.0
    window_bytes: int = 64 << 20
    max_inflight: int = 10_000
    pending: deque[Record] = field(default_factory=deque)
    retry: list[tuple[int, Record]] = field(default_factory=list)  # a heap, oldest first
    inflight: dict[int, Record] = field(default_factory=dict)
    recent: OrderedDict[int, Delivered] = field(default_factory=OrderedDict)
    recent_bytes: int = 0
    #: (topic, key) -> the newest delivered record of that key, whatever its age.
    newest: dict[tuple[str, bytes], Record] = field(default_factory=dict)
    #: (topic, partition) -> the offset of the last delivery there.
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    #: When the last replacement of the broker was noticed.
    replaced_at: float | None = None
    #: Offsets going back again this soon after a replacement are the same broker's topics
    #: being created after the first records reached it (Tansu starts such a partition over):
    #: only what was delivered since is sent again.
    settle_s: float = 10.0
    #: Delivered at or after this time: what :meth:`again` queues (None: the whole window).
    _again_since: float | None = None
    _next_seq: int = 0

    # -- in ---------------------------------------------------------------------------------

    def put(self, kind: str, topic: str, key: bytes, value: bytes) -> Record | None:
        """Queue a record; the record dropped to make room (the oldest waiting), if any."""
        record = Record(self._next_seq, kind, topic, key, value)
        self._next_seq += 1
        dropped = None
        if self.waiting >= self.capacity:
            dropped = heapq.heappop(self.retry)[1] if self.retry else self.pending.popleft()
        self.pending.append(record)
        return dropped

    # -- out --------------------------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Records not yet handed to the producer."""
        return len(self.pending) + len(self.retry)

    def take(self) -> Record | None:
        """The next record to hand to the producer (older retries first), or None."""
        if len(self.inflight) >= self.max_inflight:
            return None
        if self.retry:
            record = heapq.heappop(self.retry)[1]
        elif self.pending:
            record = self.pending.popleft()
        else:
            return None
        self.inflight[record.seq] = record
        return record

    def failed(self, record: Record) -> None:
        """The producer gave up on a record: it goes again, in its place among the old ones."""
        if self.inflight.pop(record.seq, None) is not None:
            heapq.heappush(self.retry, (record.seq, record))

    def delivered(self, record: Record, partition: int, offset: int, now: float) -> bool:
        """The broker confirmed a record; True when its offset shows a replaced broker.

        Offsets only grow on one broker: a delivery at or below the last one of its partition
        means the partition (and the broker's memory with it) started over.
        """
        self.inflight.pop(record.seq, None)
        where = (record.topic, partition)
        last = self.offsets.get(where)
        replaced = last is not None and offset <= last
        if replaced:
            self.offsets.clear()  # every partition starts over on the new broker
            settling = self.replaced_at is not None and now - self.replaced_at < self.settle_s
            self._again_since = self.replaced_at if settling else None
            self.replaced_at = now
        self.offsets[where] = offset
        if record.seq not in self.recent:
            self.recent[record.seq] = Delivered(record, now)
            self.recent_bytes += record.size
        known = self.newest.get((record.topic, record.key))
        if known is None or known.seq < record.seq:
            self.newest[(record.topic, record.key)] = record
        self.expire(now)
        return replaced

    def expire(self, now: float) -> None:
        """Forget delivered records older than the window, or beyond its bytes."""
        while self.recent:
            seq, (record, at) = next(iter(self.recent.items()))
            if now - at <= self.window_s and self.recent_bytes <= self.window_bytes:
                break
            del self.recent[seq]
            self.recent_bytes -= record.size

    def recent_records(self) -> list[Record]:
        """The records delivered within the window, oldest first."""
        return [delivered.record for delivered in self.recent.values()]

    def again(self) -> int:
        """Queue every recently delivered record, and the newest of each key, to be sent
        again (the broker that had them was replaced); the number queued. Within
        ``settle_s`` of the previous replacement, of the window only what was delivered
        since (and the newest of each key, whatever its age, still)."""
        busy = set(self.inflight) | {r.seq for r in self.pending} | {s for s, _ in self.retry}
        since = self._again_since
        chosen = {seq: d.record for seq, d in self.recent.items() if since is None or d.at >= since}
        chosen.update({r.seq: r for r in self.newest.values()})
        queued = 0
        for seq, record in chosen.items():
            if seq not in busy:
                heapq.heappush(self.retry, (seq, record))
                queued += 1
        return queued

    @property
    def empty(self) -> bool:
        """Nothing waits and nothing is unconfirmed."""
        return not self.waiting and not self.inflight
