"""What the history writer stores: quote rows, venue switches derived from rates.latest, and
the batch of records not yet durable. Pure."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from aiokafka import TopicPartition

from schemas.records import Latest, Quote


@dataclass(frozen=True, slots=True)
class Chosen:
    """The venue chosen for a direction, and since when."""

    venue: str
    since: datetime


@dataclass(frozen=True, slots=True)
class Switch:
    """A change of the chosen venue of a direction (``*``: the active venue)."""

    direction: str
    from_venue: str | None
    to_venue: str
    reason: str
    at: datetime


def derive_switches(
    last: Mapping[str, Chosen], records: Iterable[Latest]
) -> tuple[list[Switch], dict[str, Chosen]]:
    """The switches among ``rates.latest`` records, and the choice per direction after them.

    A record whose venue differs from the one chosen before it (``last``: the last stored
    switch of each direction) is a switch at the record's ``since``. A record older than
    the known choice is a redelivery and changes nothing (one as old, of another venue, is
    a switch made in the same instant: a choice made at start, then its venue gone); a
    record without a venue or ``since`` (no quote yet, or provisional at start) is not a
    choice.
    """
    state = dict(last)
    found: list[Switch] = []
    for record in records:
        if record.venue is None or record.since is None:
            continue
        previous = state.get(record.direction)
        if previous is not None and (
            record.venue == previous.venue or record.since < previous.since
        ):
            continue
        found.append(
            Switch(
                record.direction,
                previous.venue if previous is not None else None,
                record.venue,
                record.reason,
                record.since,
            )
        )
        state[record.direction] = Chosen(record.venue, record.since)
    return found, state


def quote_columns(quotes: Sequence[Quote]) -> tuple[list[Any], ...]:
    """Column arrays for ``INSERT ... SELECT FROM unnest(...)`` (one round trip per batch)."""
    return (
        [q.id for q in quotes],
        [q.venue for q in quotes],
        [q.direction for q in quotes],
        [q.value for q in quotes],
        [q.ts for q in quotes],
        [q.received_at for q in quotes],
        [
            None
            if q.derived_from is None
            else orjson.dumps([leg.to_dict() for leg in q.derived_from]).decode()
            for q in quotes
        ],
    )


def switch_columns(switches: Sequence[Switch]) -> tuple[list[Any], ...]:
    return (
        [s.direction for s in switches],
        [s.from_venue for s in switches],
        [s.to_venue for s in switches],
        [s.reason for s in switches],
        [s.at for s in switches],
    )


@dataclass
class Batch:
    """Records consumed but not yet durable, and the offsets to commit once they are."""

    quotes: dict[str, Quote] = field(default_factory=dict)
    latest: list[Latest] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    records: int = 0
    opened: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.offsets)

    def add(self, tp: TopicPartition, offset: int, item: Quote | Latest | None) -> None:
        if not self.offsets:
            self.opened = time.monotonic()
        self.offsets[tp] = offset + 1
        self.records += 1
        if isinstance(item, Quote):
            self.quotes[item.id] = item
        elif isinstance(item, Latest):
            self.latest.append(item)
